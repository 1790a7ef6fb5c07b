//! The app functions that serve a task hub: [`App::durable`] registers them.
//!
//! | function | trigger | does |
//! |---|---|---|
//! | `DurableControl` | queue `{hub}-control` | one orchestration episode per message |
//! | `DurableWork` | queue `{hub}-work` | one activity call per message |
//! | `Orchestrators` | HTTP `orchestrators/{*path}` | the management API ([`api`](super::api)) |
//! | `Dashboard` | HTTP `dashboard/{*path}` | the dashboard page ([`dashboard`](super::dashboard)) |
//!
//! Each needs its `functions/<Name>/function.json`, like any function (see the orders app).

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::client::DurableClient;
use super::dispatch::Dispatcher;
use super::error::DurableError;
use super::hub::TaskHub;
use super::messages::{ControlMessage, WorkMessage, from_queue_text};
use super::registry::Registry;
use crate::{App, Context, HttpRequest, QueueMessage};

/// The control-queue function's name.
pub const CONTROL_FUNCTION: &str = "DurableControl";
/// The work-queue function's name.
pub const WORK_FUNCTION: &str = "DurableWork";
/// The management API function's name.
pub const API_FUNCTION: &str = "Orchestrators";
/// The task hub [`App::durable`] uses.
pub const DEFAULT_HUB: &str = "azfn";

/// The app setting naming the version new starts of a versioned orchestrator take
/// ([`Registry::default_version`]).
pub const DEFAULT_VERSION_SETTING: &str = "AZFN_DURABLE_DEFAULT_VERSION";

/// The durable side of an app: its registry, and the hub it connects to on first use.
#[derive(Debug)]
pub struct DurableApp {
    hub_name: String,
    registry: Arc<Registry>,
    dispatcher: OnceCell<Arc<Dispatcher>>,
}

impl DurableApp {
    /// The orchestrations of `registry` on the hub `hub_name`.
    ///
    /// The app setting `AZFN_DURABLE_DEFAULT_VERSION`, when set, is the version new starts take
    /// ([`Registry::default_version`]), over what the code set: it can be changed without a build.
    pub fn new(hub_name: &str, registry: Registry) -> Self {
        let registry = match std::env::var(DEFAULT_VERSION_SETTING) {
            Ok(v) if !v.trim().is_empty() => registry.default_version(v.trim()),
            _ => registry,
        };
        Self { hub_name: hub_name.to_owned(), registry: Arc::new(registry), dispatcher: OnceCell::new() }
    }

    /// The dispatcher, connected (from `AzureWebJobsStorage`) on first use.
    pub async fn dispatcher(&self) -> Result<&Arc<Dispatcher>, DurableError> {
        self.dispatcher
            .get_or_try_init(|| async {
                let hub = Arc::new(TaskHub::from_env(&self.hub_name)?);
                hub.ensure_created().await?;
                Ok::<_, DurableError>(Arc::new(Dispatcher::new(hub, self.registry.clone())))
            })
            .await
    }

    /// A client of the hub.
    pub async fn client(&self) -> Result<DurableClient, DurableError> {
        let d = self.dispatcher().await?;
        Ok(DurableClient::with_dispatcher(d.clone(), self.registry.clone()))
    }
}

impl App {
    /// Serves the orchestrators and activities of `registry` on the task hub `azfn`: registers the
    /// functions `DurableControl` (queue `azfn-control`), `DurableWork` (queue `azfn-work`),
    /// `Orchestrators` (the management API on `orchestrators/{*path}`) and `Dashboard` (the
    /// dashboard page on `dashboard/{*path}`).
    ///
    /// ```
    /// use azfn::durable::{ActivityContext, OrchestrationContext, Registry, TaskError};
    ///
    /// async fn greet(ctx: OrchestrationContext, name: String) -> Result<String, TaskError> {
    ///     ctx.call_activity("SayHello", name).await
    /// }
    /// async fn say_hello(_ctx: ActivityContext, name: String) -> Result<String, String> {
    ///     Ok(format!("Hello {name}!"))
    /// }
    ///
    /// let app = azfn::App::new().durable(Registry::new().orchestrator("Greet", greet).activity("SayHello", say_hello));
    /// assert!(app.function_names().any(|f| f == "DurableControl"));
    /// ```
    pub fn durable(self, registry: Registry) -> Self {
        self.durable_on(DEFAULT_HUB, registry)
    }

    /// Like [`durable`](Self::durable) on the task hub `hub` (queues `{hub}-control` and `{hub}-work`
    /// in the functions' function.json files must match). An app has one task hub: a second call
    /// is refused at start-up, as any function registered twice.
    pub fn durable_on(self, hub: &str, registry: Registry) -> Self {
        let rt = Arc::new(DurableApp::new(hub, registry));
        // A second call registers the same functions again, which start-up refuses.
        let mut app = self;
        app.durable = Some(rt.clone());
        let (control, work, api) = (rt.clone(), rt.clone(), rt);
        app.function(CONTROL_FUNCTION, move |msg: QueueMessage, _ctx: Context| {
            let rt = control.clone();
            async move {
                let body: ControlMessage = engine_message(&msg.text)?;
                rt.dispatcher().await?.control(body, msg.dequeue_count).await
            }
        })
        .function(WORK_FUNCTION, move |msg: QueueMessage, _ctx: Context| {
            let rt = work.clone();
            async move {
                let body: WorkMessage = engine_message(&msg.text)?;
                rt.dispatcher().await?.work(body, msg.dequeue_count).await
            }
        })
        .function(API_FUNCTION, move |req: HttpRequest, _ctx: Context| {
            let rt = api.clone();
            async move {
                // The route parameter, percent-decoded by the router.
                let path = req.param("path").unwrap_or_default().to_owned();
                let client = match rt.client().await {
                    Ok(c) => c,
                    Err(e) => return Ok::<_, DurableError>(super::api::error_response(&e)),
                };
                let hub = rt.dispatcher().await?.hub().clone();
                Ok(super::api::handle(&client, &hub, &req, &path).await)
            }
        })
        .function(super::dashboard::DASHBOARD_FUNCTION, |req: HttpRequest, _ctx: Context| async move {
            let path = req.param("path").unwrap_or_default().to_owned();
            Ok::<_, DurableError>(super::dashboard::serve(&req, &path))
        })
    }
}

/// An engine message from its queue text, or a bad-request error that says which.
fn engine_message<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, DurableError> {
    from_queue_text(text).map_err(|e| {
        DurableError::BadRequest(format!("the queue message is not a {}: {e}", std::any::type_name::<T>()))
    })
}
