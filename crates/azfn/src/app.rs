//! Registering handlers by function name, and checking them against function.json.

use std::any::Any;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use axum::routing::MethodRouter;
use futures_util::future::BoxFuture;
use serde_json::value::RawValue;

use crate::context::Context;
use crate::error::{BindError, Error, InvocationError, StartupError};
use crate::function_json::AppMetadata;
use crate::http::HttpRequest;
use crate::outputs::IntoOutputs;
use crate::triggers::{FromTrigger, TriggerInput};

/// The trigger value a typed handler is called with.
pub(crate) enum TriggerArg {
    /// `Data[<trigger name>]` from an invocation envelope (or `None` when absent).
    Wire(Option<Box<RawValue>>),
    /// An HTTP request already built: forwarded by the host (HTTP-only functions in forwarding
    /// mode), or read together with the invocation's envelope.
    Request(Box<HttpRequest>),
    /// The trigger value, read together with the envelope, did not fit.
    Invalid(BindError),
}

/// A handler with its types erased.
pub(crate) type BoxedHandler =
    Arc<dyn Fn(TriggerArg, Context) -> BoxFuture<'static, Result<(), InvocationError>> + Send + Sync>;

/// How a function is served.
#[derive(Clone)]
pub(crate) enum HandlerKind {
    /// An async fn taking a trigger type.
    Typed(BoxedHandler),
    /// A plain axum handler for an HTTP function.
    Axum(Box<MethodRouter>),
}

#[derive(Clone)]
pub(crate) struct Registration {
    /// The trigger type the handler takes (`None`: any).
    pub(crate) trigger_type: Option<&'static str>,
    /// The handler's trigger type's Rust name, for messages.
    pub(crate) type_name: &'static str,
    /// Whether the handler takes an [`HttpRequest`], which the runtime then reads together with
    /// the envelope (one pass over the payload instead of two).
    pub(crate) takes_http_request: bool,
    pub(crate) kind: HandlerKind,
}

/// The functions of an app: each function name bound to its handler.
///
/// ```no_run
/// use azfn::{App, Context, HttpRequest, HttpResponse, QueueMessage};
///
/// async fn hello(req: HttpRequest, _ctx: Context) -> Result<HttpResponse, azfn::Error> {
///     Ok(HttpResponse::ok().text(format!("Hello, {}", req.query("name").unwrap_or("world"))))
/// }
///
/// async fn work(msg: QueueMessage<String>, _ctx: Context) -> Result<(), azfn::Error> {
///     tracing::info!(body = %msg.body, "working");
///     Ok(())
/// }
///
/// #[tokio::main]
/// async fn main() -> std::process::ExitCode {
///     let app = App::new().function("Hello", hello).function("Work", work);
///     azfn::run(app).await
/// }
/// ```
#[derive(Clone, Default)]
pub struct App {
    pub(crate) registrations: BTreeMap<String, Registration>,
    duplicates: Vec<String>,
    /// The task hub of [`App::durable`], which every handler's [`Context::durable`] reaches.
    pub(crate) durable: Option<Arc<crate::durable::DurableApp>>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App").field("functions", &self.registrations.keys().collect::<Vec<_>>()).finish()
    }
}

impl App {
    /// An app with no functions.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `handler` for the function `name` (its folder name under `functions/`).
    ///
    /// The handler is an `async fn(T, Context) -> Result<R, E>` where `T` is a trigger type
    /// ([`HttpRequest`], [`QueueMessage<T>`](crate::QueueMessage), ...), `R` is `()`,
    /// [`HttpResponse`](crate::HttpResponse) or [`Return<T>`](crate::Return), and `E` converts
    /// into [`Error`].
    pub fn function<T, F, Fut, R, E>(mut self, name: impl Into<String>, handler: F) -> Self
    where
        T: FromTrigger,
        F: Fn(T, Context) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: IntoOutputs,
        E: Into<Error>,
    {
        let boxed: BoxedHandler = Arc::new(move |arg: TriggerArg, ctx: Context| {
            let handler = handler.clone();
            Box::pin(async move {
                let trigger = bind::<T>(arg, &ctx)?;
                let result = handler(trigger, ctx.clone()).await.map_err(|e| InvocationError::Handler(e.into()))?;
                result.into_outputs(&ctx).map_err(InvocationError::Output)
            })
        });
        let reg = Registration {
            trigger_type: T::TRIGGER_TYPE,
            type_name: std::any::type_name::<T>(),
            takes_http_request: std::any::TypeId::of::<T>() == std::any::TypeId::of::<HttpRequest>(),
            kind: HandlerKind::Typed(boxed),
        };
        self.insert(name.into(), reg);
        self
    }

    /// Registers a plain axum handler for the HTTP function `name`.
    ///
    /// It is mounted at the function's route (`/{routePrefix}/{route}`), so it serves forwarded
    /// requests as they are; in the default protocol the runtime rebuilds the request from the
    /// invocation, runs the handler, and sends its response through the `http` output.
    ///
    /// ```
    /// use axum::{extract::Query, routing::get};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Who { name: Option<String> }
    ///
    /// let app = azfn::App::new().axum("Hello", get(|Query(who): Query<Who>| async move {
    ///     format!("Hello, {}", who.name.as_deref().unwrap_or("world"))
    /// }));
    /// ```
    pub fn axum(mut self, name: impl Into<String>, handler: MethodRouter) -> Self {
        let reg = Registration {
            trigger_type: Some("httpTrigger"),
            type_name: "an axum handler",
            takes_http_request: true,
            kind: HandlerKind::Axum(Box::new(handler)),
        };
        self.insert(name.into(), reg);
        self
    }

    fn insert(&mut self, name: String, reg: Registration) {
        if self.registrations.insert(name.clone(), reg).is_some() {
            self.duplicates.push(name);
        }
    }

    /// The registered function names.
    pub fn function_names(&self) -> impl Iterator<Item = &str> {
        self.registrations.keys().map(String::as_str)
    }

    /// Checks the handlers against the app's function.json files: every enabled function has a
    /// handler, every handler has a function.json, and each handler takes its function's trigger type.
    pub fn check(&self, metadata: &AppMetadata) -> Result<(), StartupError> {
        let mut problems = Vec::new();
        for name in &self.duplicates {
            problems.push(format!("`{name}` is registered more than once"));
        }
        for (name, spec) in &metadata.functions {
            if spec.json.disabled || self.registrations.contains_key(name) {
                continue;
            }
            problems.push(format!(
                "function `{name}` ({}) has no handler: register one with `App::function(\"{name}\", ...)`",
                spec.source.display()
            ));
        }
        for (name, reg) in &self.registrations {
            let Some(spec) = metadata.functions.get(name) else {
                let hint = metadata
                    .functions
                    .keys()
                    .find(|k| k.eq_ignore_ascii_case(name))
                    .map(|k| format!(" (function names are case-sensitive: there is `{k}`)"))
                    .unwrap_or_default();
                problems.push(format!(
                    "handler `{name}` has no function.json: expected {}{hint}",
                    metadata.root.join("functions").join(name).join("function.json").display()
                ));
                continue;
            };
            let trigger = spec.trigger();
            if let Some(expected) = reg.trigger_type
                && !trigger.is_type(expected)
            {
                problems.push(format!(
                    "function `{name}`: {} declares a `{}` trigger, but its handler takes {} (a `{expected}`)",
                    spec.source.display(),
                    trigger.binding_type,
                    reg.type_name
                ));
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(StartupError::Registration(problems)) }
    }
}

/// Builds the handler's trigger argument.
pub(crate) fn bind<T: FromTrigger>(arg: TriggerArg, ctx: &Context) -> Result<T, InvocationError> {
    let binding = ctx.function().trigger();
    let bind_error = |error| InvocationError::Bind {
        binding: binding.name.clone(),
        trigger_type: binding.binding_type.clone(),
        error,
    };
    match arg {
        TriggerArg::Wire(value) => {
            let input = TriggerInput::from_context(binding, value.as_deref(), ctx);
            T::from_trigger(&input).map_err(bind_error)
        }
        TriggerArg::Invalid(error) => Err(bind_error(error)),
        TriggerArg::Request(req) => {
            let any: Box<dyn Any> = req;
            any.downcast::<T>().map(|b| *b).map_err(|_| {
                bind_error(crate::error::BindError::new(format!(
                    "a forwarded HTTP request cannot be given to a handler that takes {}",
                    std::any::type_name::<T>()
                )))
            })
        }
    }
}
