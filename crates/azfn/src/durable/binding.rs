//! The durable client a handler gets from its [`Context`](crate::Context), as the orchestration
//! client binding is in Durable Functions: start orchestrations, raise events, read their status,
//! terminate them, signal entities, and answer an HTTP caller with the management URLs.
//!
//! It serves the task hub and registry the app declared with [`App::durable`](crate::App::durable)
//! (nothing else to name or configure), and starts an instance the way the management API does: the
//! first episode runs in place, in the same request, with the control queue only as the fallback.
//! In a unit test, [`testing::DurableRecorder`](crate::testing::DurableRecorder) stands in for the
//! hub: it records what the handler asked for, or runs the orchestration in process.
//!
//! ```
//! use azfn::{Context, HttpRequest, HttpResponse};
//!
//! async fn start_shipping(req: HttpRequest, ctx: Context) -> Result<HttpResponse, azfn::Error> {
//!     let order: serde_json::Value = req.json()?;
//!     let id = ctx.durable().start_new("ShipOrder", &order).await?;
//!     Ok(ctx.durable().check_status_response(&req, &id))
//! }
//! ```

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Value, json};

use super::client::DurableClient;
use super::entity::EntityId;
use super::error::DurableError;
use super::functions::DurableApp;
use super::store::InstanceStatus;
use crate::http::{HttpRequest, HttpResponse};
use crate::testing::DurableRecorder;

/// Where a handler's durable calls go.
#[derive(Debug, Clone, Default)]
pub(crate) enum DurableSource {
    /// The app's task hub (registered with `App::durable`).
    Hub(Arc<DurableApp>),
    /// A unit test's recorder.
    Recorder(DurableRecorder),
    /// The app declared no orchestrations.
    #[default]
    None,
}

/// A handler's durable client: see the [module documentation](self).
///
/// Get it with [`Context::durable`](crate::Context::durable); it is cheap to get again.
#[derive(Debug, Clone)]
pub struct Durable {
    source: DurableSource,
    /// The host's HTTP route prefix (`api`), for the management URLs.
    route_prefix: String,
}

fn to_value(what: &str, value: impl Serialize) -> Result<Value, DurableError> {
    serde_json::to_value(value).map_err(|e| DurableError::BadRequest(format!("the {what} does not serialize: {e}")))
}

impl Durable {
    pub(crate) fn new(source: DurableSource, route_prefix: &str) -> Self {
        Self { source, route_prefix: route_prefix.to_owned() }
    }

    /// The full client of the app's task hub (listing, purging, suspending, entity state...).
    ///
    /// Fails with [`DurableError::Setup`] when the app has no orchestrations, or in a unit test.
    pub async fn client(&self) -> Result<DurableClient, DurableError> {
        match &self.source {
            DurableSource::Hub(app) => app.client().await,
            DurableSource::Recorder(_) => Err(DurableError::Setup(
                "a DurableRecorder stands in for the task hub in unit tests: it has no full DurableClient; use the \
                 methods of ctx.durable() (start_new, status, raise_event, terminate, signal_entity)"
                    .to_owned(),
            )),
            DurableSource::None => Err(missing()),
        }
    }

    /// Starts the orchestrator `orchestrator` with `input` under a new instance id; returns the id.
    pub async fn start_new(&self, orchestrator: &str, input: impl Serialize) -> Result<String, DurableError> {
        self.start(orchestrator, None, to_value("input", input)?).await
    }

    /// Starts `orchestrator` as the instance `instance_id`: a retry of the same start (same
    /// orchestrator and input) while it runs answers with that instance; a finished instance is
    /// started afresh (see [`DurableClient::start`]).
    pub async fn start_with_id(
        &self,
        orchestrator: &str,
        instance_id: &str,
        input: impl Serialize,
    ) -> Result<String, DurableError> {
        self.start(orchestrator, Some(instance_id), to_value("input", input)?).await
    }

    async fn start(&self, name: &str, id: Option<&str>, input: Value) -> Result<String, DurableError> {
        match &self.source {
            DurableSource::Hub(app) => app.client().await?.start(name, id, input).await,
            DurableSource::Recorder(r) => r.start(name, id, input).await,
            DurableSource::None => Err(missing()),
        }
    }

    /// The instance's status, with its input, output and custom status read back from blobs.
    pub async fn status(&self, instance_id: &str) -> Result<InstanceStatus, DurableError> {
        match &self.source {
            DurableSource::Hub(app) => Ok(app.client().await?.status(instance_id, false).await?.status),
            DurableSource::Recorder(r) => r.status(instance_id).await,
            DurableSource::None => Err(missing()),
        }
    }

    /// Sends the external event `event` with `data` to a running instance.
    pub async fn raise_event(&self, instance_id: &str, event: &str, data: impl Serialize) -> Result<(), DurableError> {
        let data = to_value("event data", data)?;
        match &self.source {
            DurableSource::Hub(app) => app.client().await?.raise_event(instance_id, event, data).await,
            DurableSource::Recorder(r) => r.raise_event(instance_id, event, data).await,
            DurableSource::None => Err(missing()),
        }
    }

    /// Terminates a running instance with `reason`.
    pub async fn terminate(&self, instance_id: &str, reason: &str) -> Result<(), DurableError> {
        match &self.source {
            DurableSource::Hub(app) => app.client().await?.terminate(instance_id, reason).await,
            DurableSource::Recorder(r) => r.terminate(instance_id, reason).await,
            DurableSource::None => Err(missing()),
        }
    }

    /// Signals the entity `entity` to run `operation` with `input` (one-way).
    pub async fn signal_entity(
        &self,
        entity: &EntityId,
        operation: &str,
        input: impl Serialize,
    ) -> Result<(), DurableError> {
        let input = to_value("operation input", input)?;
        match &self.source {
            DurableSource::Hub(app) => app.client().await?.signal_entity(entity, operation, input, None).await,
            DurableSource::Recorder(r) => r.signal_entity(entity, operation, input),
            DurableSource::None => Err(missing()),
        }
    }

    /// The management URLs of `instance_id`, built from the URL `req` came in on (its scheme and
    /// host) and the app's route prefix (without a key: in Azure, add a key of the `Orchestrators`
    /// function or a host key as `?code=`): `id`, `statusQueryGetUri`,
    /// `sendEventPostUri`, `terminatePostUri`, `purgeHistoryDeleteUri`, `suspendPostUri`,
    /// `resumePostUri` and `restartPostUri`, as Durable Functions' `CreateHttpManagementPayload`.
    pub fn management_urls(&self, req: &HttpRequest, instance_id: &str) -> Value {
        super::api::Links::for_handler(req, &self.route_prefix).start_body(instance_id)
    }

    /// `202 Accepted` with the management URLs as its JSON body and `Location` set to the status
    /// URL, as Durable Functions' `CreateCheckStatusResponse`: what a handler that starts an
    /// orchestration usually answers.
    pub fn check_status_response(&self, req: &HttpRequest, instance_id: &str) -> HttpResponse {
        let links = super::api::Links::for_handler(req, &self.route_prefix);
        HttpResponse::accepted()
            .header("location", &links.status(instance_id))
            .header("retry-after", "1")
            .json(&links.start_body(instance_id))
    }
}

fn missing() -> DurableError {
    DurableError::Setup(
        "ctx.durable() needs the app's orchestrations: register them with App::durable(Registry::new()...) on the \
         App that serves this function; in a unit test, get the context from azfn::testing::DurableRecorder"
            .to_owned(),
    )
}

/// One call a handler made on its durable client, as a [`DurableRecorder`] saw it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum DurableCall {
    /// `start_new` or `start_with_id`.
    Started {
        /// The orchestrator.
        orchestrator: String,
        /// The instance id it got.
        instance_id: String,
        /// Its input.
        input: Value,
    },
    /// `raise_event`.
    EventRaised {
        /// The instance.
        instance_id: String,
        /// The event's name.
        event: String,
        /// Its data.
        data: Value,
    },
    /// `terminate`.
    Terminated {
        /// The instance.
        instance_id: String,
        /// The reason given.
        reason: String,
    },
    /// `signal_entity`.
    EntitySignaled {
        /// The entity.
        entity: EntityId,
        /// The operation.
        operation: String,
        /// Its input.
        input: Value,
    },
}

impl DurableCall {
    /// The call as JSON, for messages.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Started { orchestrator, instance_id, input } => {
                json!({"started": orchestrator, "instanceId": instance_id, "input": input})
            }
            Self::EventRaised { instance_id, event, data } => {
                json!({"eventRaised": event, "instanceId": instance_id, "data": data})
            }
            Self::Terminated { instance_id, reason } => json!({"terminated": instance_id, "reason": reason}),
            Self::EntitySignaled { entity, operation, input } => {
                json!({"entitySignaled": entity.to_string(), "operation": operation, "input": input})
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::{ActivityContext, OrchestrationContext, Registry, RuntimeStatus, TaskError};
    use crate::testing::DurableRecorder;

    fn spec() -> crate::FunctionSpec {
        crate::FunctionSpec::parse(
            "StartGreeting",
            "function.json".as_ref(),
            r#"{"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req", "route": "greet"},
                {"type": "http", "direction": "out", "name": "res"}]}"#,
        )
        .unwrap()
    }

    /// An HTTP invocation as the host sends it: the query both in `Url` and, decoded, in `Query`.
    fn request(url: &str, query: Value) -> HttpRequest {
        let req = json!({"Url": url, "Method": "POST", "Query": query, "Headers": {}});
        let invocation = json!({"Data": {"req": req}, "Metadata": {}});
        crate::testing::trigger_from_invocation(&invocation, spec().trigger()).unwrap()
    }

    async fn greet(ctx: OrchestrationContext, name: String) -> Result<Vec<String>, TaskError> {
        let first: String = ctx.call_activity("SayHello", name.clone()).await?;
        let second: String = ctx.call_activity("SayHello", format!("{name} again")).await?;
        Ok(vec![first, second])
    }

    async fn say_hello(_ctx: ActivityContext, name: String) -> Result<String, String> {
        Ok(format!("Hello {name}!"))
    }

    #[test]
    fn management_urls_point_at_the_apps_management_api() {
        let durable = Durable::new(DurableSource::None, "api");
        let req = request("https://shop.azurewebsites.net/api/greet?code=k%2B1&x=2", json!({"code": "k+1", "x": "2"}));
        let urls = durable.management_urls(&req, "abc");
        // The caller's `code` is the starter function's key, which `Orchestrators` does not take.
        assert_eq!(urls["id"], "abc");
        assert_eq!(urls["statusQueryGetUri"], "https://shop.azurewebsites.net/api/orchestrators/instances/abc");
        assert_eq!(
            urls["sendEventPostUri"],
            "https://shop.azurewebsites.net/api/orchestrators/instances/abc/raiseEvent/{eventName}"
        );
        let res = Durable::new(DurableSource::None, "")
            .check_status_response(&request("http://127.0.0.1:7071/greet", json!({})), "a:1");
        assert_eq!(res.status.as_u16(), 202);
        assert_eq!(res.header_value("location"), Some("http://127.0.0.1:7071/orchestrators/instances/a:1"));
    }

    #[tokio::test]
    async fn without_a_hub_every_call_says_what_to_register() {
        let ctx = crate::Context::new(spec(), "id");
        let err = ctx.durable().start_new("Greet", "Ada").await.unwrap_err();
        assert!(err.to_string().contains("App::durable"), "{err}");
        assert!(err.to_string().contains("DurableRecorder"), "{err}");
    }

    #[tokio::test]
    async fn a_recorder_records_and_a_running_one_runs() {
        let recorder = DurableRecorder::new();
        let ctx = recorder.context_for(spec());
        let id = ctx.durable().start_new("Greet", "Ada").await.unwrap();
        ctx.durable().raise_event(&id, "Go", true).await.unwrap();
        assert_eq!(ctx.durable().status(&id).await.unwrap().runtime_status, RuntimeStatus::Pending);
        assert_eq!(recorder.started(), vec![("Greet".to_owned(), id.clone(), json!("Ada"))]);
        assert_eq!(recorder.calls().len(), 2);

        let registry = Registry::new().orchestrator("Greet", greet).activity("SayHello", say_hello);
        let running = DurableRecorder::running(registry);
        let durable = running.context_for(spec()).durable();
        let id = durable.start_with_id("Greet", "order-7", "Ada").await.unwrap();
        let status = durable.status(&id).await.unwrap();
        assert_eq!(status.runtime_status, RuntimeStatus::Completed);
        assert_eq!(status.output, json!(["Hello Ada!", "Hello Ada again!"]));
        // As the hub: an unknown orchestrator, an input that does not fit, an event to a finished one.
        assert!(matches!(durable.start_new("Nope", 1).await, Err(DurableError::NotFound(_))));
        assert!(matches!(durable.start_new("Greet", 42).await, Err(DurableError::BadRequest(_))));
        assert!(matches!(durable.raise_event(&id, "Go", 1).await, Err(DurableError::Gone { .. })));
    }
}
