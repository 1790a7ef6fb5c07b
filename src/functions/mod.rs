//! The orders app: the functions this binary serves, one module per function.
//!
//! Each function has its metadata in `functions/<Name>/function.json` and its handler here; `app()`
//! binds the two by name. To add a function, write both and add a line to `app()`.

mod audit_receipt;
mod catalog_events;
mod create_order;
mod get_order;
mod hello;
mod model;
mod orchestrations;
mod order_events;
mod order_summary;
mod process_order;

use azfn::App;

/// Every function of the orders app.
pub fn app() -> App {
    App::new()
        .function("Hello", hello::hello)
        .function("CreateOrder", create_order::create_order)
        .function("GetOrder", get_order::get_order)
        .function("ProcessOrder", process_order::process_order)
        .function("AuditReceipt", audit_receipt::audit_receipt)
        .function("OrderSummary", order_summary::order_summary)
        .function("OrderEvents", order_events::order_events)
        .function("CatalogEvents", catalog_events::catalog_events)
        .durable(orchestrations::registry())
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers for the handlers' tests.
    use azfn::{Context, FunctionSpec};

    /// The function's spec, read from `functions/<name>/function.json`.
    pub fn spec(name: &str) -> FunctionSpec {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("functions").join(name).join("function.json");
        let text = std::fs::read_to_string(&path).unwrap();
        FunctionSpec::parse(name, &path, &text).unwrap()
    }

    /// A context for the function with no metadata.
    pub fn context(name: &str) -> Context {
        Context::new(spec(name), "00000000-0000-4000-8000-000000000000")
    }

    /// An HTTP request as the host sends it for `GET`/`POST` `url` with an optional JSON body.
    pub fn http_request(method: &str, url: &str, body: Option<&str>) -> azfn::HttpRequest {
        use azfn::FromTrigger as _;
        let query: serde_json::Map<String, serde_json::Value> = url
            .split_once('?')
            .map(|(_, q)| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, serde_json::Value::String(v)))
            .collect();
        let mut req = serde_json::json!({"Url": url, "Method": method, "Query": query, "Headers": {"Content-Type": ["application/json"]}});
        if let Some(b) = body {
            req["Body"] = serde_json::Value::String(b.to_owned());
        }
        let binding: azfn::function_json::Binding =
            serde_json::from_value(serde_json::json!({"type": "httpTrigger", "direction": "in", "name": "req"}))
                .unwrap();
        let meta = serde_json::Map::new();
        azfn::HttpRequest::from_trigger(&azfn::triggers::TriggerInput::new(
            &binding,
            Some(&serde_json::value::to_raw_value(&req).unwrap()),
            &meta,
        ))
        .unwrap()
    }
}
