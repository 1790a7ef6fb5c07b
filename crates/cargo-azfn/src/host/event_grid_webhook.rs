//! The Event Grid extension's webhook, `/runtime/webhooks/eventgrid?functionName={name}`, as the real
//! host serves it (Event Grid WebJobs extension `EventGridExtensionConfigProvider.ProcessAsync` and
//! `HttpRequestProcessor.ProcessAsync`; docs/host-fidelity.md). An Event Grid subscription, or curl,
//! can then drive an `eventGridTrigger` function locally as it would in Azure:
//!
//! - `OPTIONS` with `WebHook-Request-Origin` (the CloudEvents abuse-protection handshake): 200 with
//!   `WebHook-Allowed-Origin` echoing an Event Grid origin (`eventgrid.azure.net` otherwise);
//! - `POST` with `aeg-event-type: SubscriptionValidation`: 200 `{"validationResponse": code}`, from
//!   the `Microsoft.EventGrid.SubscriptionValidationEvent`'s `data.validationCode`;
//! - `POST` with `aeg-event-type: Notification`: one invocation per event (an array in the Event Grid
//!   schema, a single CloudEvent or a CloudEvents batch), run side by side; 202 when all succeed, 500
//!   with the first error otherwise (Event Grid then redelivers the batch);
//! - `aeg-event-type: Unsubscribe`: 202; a missing or unknown `aeg-event-type`: 400;
//! - no `functionName`, or one that is not an Event Grid function: 404.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use super::front::error;
use super::invocation;
use super::invoker::Invoker;

/// The path of the webhook.
pub const PATH: &str = "/runtime/webhooks/eventgrid";

/// Answers one request to the webhook.
pub async fn handle(
    invoker: Arc<Invoker>,
    method: &http::Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let function = function_name(query);
    let spec = invoker
        .meta
        .functions
        .values()
        .find(|s| s.name.eq_ignore_ascii_case(&function) && s.trigger().is_type("eventGridTrigger"))
        .cloned();
    let found = spec.ok_or_else(|| error(StatusCode::NOT_FOUND, format!("cannot find function: '{function}'")));
    protocol(method, headers, body, found, |spec, events| async move {
        let binding = spec.trigger().name.clone();
        let runs = events.into_iter().map(|event| {
            let (invoker, name, binding) = (invoker.clone(), spec.name.clone(), binding.clone());
            async move {
                let inv = invocation::event_grid(&name, &binding, &event);
                invoker.invoke(&name, "eventGridTrigger", inv).await
            }
        });
        let results = futures_util::future::join_all(runs).await;
        match results.into_iter().find_map(Result::err) {
            None => StatusCode::ACCEPTED.into_response(),
            Some(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    })
    .await
}

/// The `functionName` query parameter (its name matched without regard to case).
pub fn function_name(query: Option<&str>) -> String {
    super::front::query_pairs(query)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("functionName"))
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// The part of Event Grid's webhook protocol every extension shares (`HttpRequestProcessor.ProcessAsync`,
/// which the Blobs extension links in too): the handshake, subscription validation and
/// unsubscription; `notify` is given the events of a `Notification` and the `target` found for the
/// request (`Err`: the answer when none was).
pub async fn protocol<T, F, Fut>(
    method: &http::Method,
    headers: &HeaderMap,
    body: &[u8],
    target: Result<T, Response>,
    notify: F,
) -> Response
where
    F: FnOnce(T, Vec<Value>) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if method == http::Method::OPTIONS {
        // Event Grid's own origins are echoed; any other caller is told Event Grid's.
        let origin = header("webhook-request-origin")
            .filter(|o| {
                let o = o.to_ascii_lowercase();
                ["eventgrid.azure.net", "eventgrid.azure.us", "eventgrid.azure.cn"]
                    .iter()
                    .any(|known| o.ends_with(known))
            })
            .unwrap_or_else(|| "eventgrid.azure.net".to_owned());
        return (StatusCode::OK, [("webhook-allowed-origin", origin)]).into_response();
    }
    let target = match target {
        Ok(t) => t,
        Err(response) => return response,
    };
    if method != http::Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "use POST (or OPTIONS for the CloudEvents handshake)");
    }
    let kind = header("aeg-event-type").unwrap_or_default();
    let events = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(events)) => events,
        Ok(one @ Value::Object(_)) => vec![one],
        Ok(_) | Err(_) if kind.eq_ignore_ascii_case("Unsubscribe") => Vec::new(),
        Ok(other) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body should be an event or an array of events, not {other}"),
            );
        }
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("the body is not JSON: {e}")),
    };
    match kind.to_ascii_lowercase().as_str() {
        "subscriptionvalidation" => {
            let code = events
                .iter()
                .find(|e| e["eventType"] == "Microsoft.EventGrid.SubscriptionValidationEvent")
                .and_then(|e| e["data"]["validationCode"].as_str());
            match code {
                Some(code) => (StatusCode::OK, axum::Json(json!({"validationResponse": code}))).into_response(),
                None => error(
                    StatusCode::BAD_REQUEST,
                    "a SubscriptionValidation request needs a Microsoft.EventGrid.SubscriptionValidationEvent with data.validationCode",
                ),
            }
        }
        "notification" => notify(target, events).await,
        "unsubscribe" => StatusCode::ACCEPTED.into_response(),
        "" => error(StatusCode::BAD_REQUEST, "the request has no aeg-event-type header"),
        other => error(StatusCode::BAD_REQUEST, format!("unknown aeg-event-type {other:?}")),
    }
}
