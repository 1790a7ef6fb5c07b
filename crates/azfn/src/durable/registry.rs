//! Orchestrators and activities registered by name, with typed inputs and outputs through serde.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::context::OrchestrationContext;

/// A boxed orchestrator or activity run: its JSON output or error text.
pub type BoxRun = Pin<Box<dyn Future<Output = Result<Value, String>> + Send>>;
type OrchestratorFn = Arc<dyn Fn(OrchestrationContext, Value) -> BoxRun + Send + Sync>;
type ActivityFn = Arc<dyn Fn(ActivityContext, Value) -> BoxRun + Send + Sync>;
/// Whether a JSON input fits an orchestrator's input type, and why not.
type InputCheck = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

/// What an activity knows about its call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityContext {
    /// The orchestration instance that called it.
    pub instance_id: String,
    /// The execution of that instance (a new one after each `continue_as_new` or restart).
    pub execution_id: String,
    /// The activity's name.
    pub name: String,
    /// The call's sequence id in the execution.
    pub task_id: u64,
}

impl ActivityContext {
    /// A key that names this call and no other, for the activity to pass to the services it calls
    /// (an `Idempotency-Key`, a payment reference): the same each time this call is delivered
    /// again, different for every other call, including the same task id in a later execution
    /// after `continue_as_new` (`{instance}:{execution}:{task}`).
    ///
    /// ```
    /// let ctx = azfn::durable::ActivityContext {
    ///     instance_id: "order-7".into(), execution_id: "e2".into(), name: "Charge".into(), task_id: 3,
    /// };
    /// assert_eq!(ctx.idempotency_key(), "order-7:e2:3");
    /// ```
    pub fn idempotency_key(&self) -> String {
        format!("{}:{}:{}", self.instance_id, self.execution_id, self.task_id)
    }
}

/// The orchestrators, activities and entities of an app.
#[derive(Clone, Default)]
pub struct Registry {
    orchestrators: BTreeMap<String, OrchestratorFn>,
    inputs: BTreeMap<String, InputCheck>,
    activities: BTreeMap<String, ActivityFn>,
    entities: BTreeMap<String, super::entity::EntityFn>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("orchestrators", &self.orchestrators.keys().collect::<Vec<_>>())
            .field("activities", &self.activities.keys().collect::<Vec<_>>())
            .field("entities", &self.entities.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn decode<I: DeserializeOwned>(input: Value, what: &str) -> Result<I, String> {
    serde_json::from_value(input).map_err(|e| format!("the input of {what} does not fit its type: {e}"))
}

fn encode<O: Serialize>(output: O, what: &str) -> Result<Value, String> {
    serde_json::to_value(output).map_err(|e| format!("the output of {what} cannot be serialized: {e}"))
}

/// Wraps a typed `async fn(ctx, I) -> Result<O, E>` as an untyped JSON one.
fn erase<C, F, Fut, I, O, E>(what: String, f: F) -> impl Fn(C, Value) -> BoxRun + Send + Sync + 'static
where
    F: Fn(C, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    I: DeserializeOwned + 'static,
    O: Serialize + 'static,
    E: fmt::Display + 'static,
{
    move |ctx, input| {
        let what = what.clone();
        match decode::<I>(input, &what) {
            Ok(i) => {
                let fut = f(ctx, i);
                Box::pin(async move { encode(fut.await.map_err(|e| e.to_string())?, &what) })
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the orchestrator `name`: `async fn(ctx, input: I) -> Result<O, E>`.
    ///
    /// ```
    /// use azfn::durable::{OrchestrationContext, Registry, TaskError};
    ///
    /// async fn hello_sequence(ctx: OrchestrationContext, cities: Vec<String>) -> Result<Vec<String>, TaskError> {
    ///     let mut out = Vec::new();
    ///     for city in cities {
    ///         out.push(ctx.call_activity("SayHello", city).await?);
    ///     }
    ///     Ok(out)
    /// }
    ///
    /// let registry = Registry::new().orchestrator("HelloSequence", hello_sequence);
    /// assert!(registry.has_orchestrator("HelloSequence"));
    /// ```
    pub fn orchestrator<F, Fut, I, O, E>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(OrchestrationContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        E: fmt::Display + 'static,
    {
        let run: OrchestratorFn = Arc::new(erase(format!("orchestrator `{name}`"), f));
        self.orchestrators.insert(name.to_owned(), run);
        let check: InputCheck = Arc::new(|v: &Value| {
            I::deserialize(v)
                .map(|_| ())
                .map_err(|e| format!("{e} (the input should fit {})", std::any::type_name::<I>()))
        });
        self.inputs.insert(name.to_owned(), check);
        self
    }

    /// Whether `input` fits the input type of the orchestrator `name`, so that a start with an
    /// input it cannot read is refused at once rather than failing later.
    pub fn check_input(&self, name: &str, input: &Value) -> Result<(), String> {
        self.inputs.get(name).map_or(Ok(()), |check| check(input))
    }

    /// Registers the activity `name`: `async fn(ctx, input: I) -> Result<O, E>`.
    pub fn activity<F, Fut, I, O, E>(mut self, name: &str, f: F) -> Self
    where
        F: Fn(ActivityContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        E: fmt::Display + 'static,
    {
        let run: ActivityFn = Arc::new(erase(format!("activity `{name}`"), f));
        self.activities.insert(name.to_owned(), run);
        self
    }

    /// Registers the entity `name`: `f(&mut state, &op)` applies one operation to the state (which
    /// starts as `S::default()`) and gives its result; an error leaves the state as it was. The
    /// operation `delete` is built in. See [`entity`](super::entity).
    pub fn entity<S, F>(mut self, name: &str, f: F) -> Self
    where
        S: Default + Serialize + DeserializeOwned + 'static,
        F: Fn(&mut S, &super::entity::EntityOp) -> Result<Value, String> + Send + Sync + 'static,
    {
        self.entities.insert(name.to_owned(), super::entity::entity_fn(f));
        self
    }

    /// The code of the entity `name`, or why there is none.
    pub(crate) fn entity_code(&self, name: &str) -> Result<&super::entity::EntityFn, String> {
        self.entities.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.entities.keys().map(String::as_str).collect();
            format!(
                "there is no entity `{name}` (known: {})",
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )
        })
    }

    /// The registered entity names.
    pub fn entity_names(&self) -> Vec<String> {
        self.entities.keys().cloned().collect()
    }

    /// The same registry without the orchestrator, activity or entity `name`: a worker of an
    /// older version, in the deterministic simulation's rolling deploys (feature `simulation`).
    #[cfg(feature = "simulation")]
    pub fn without(mut self, name: &str) -> Self {
        self.orchestrators.remove(name);
        self.inputs.remove(name);
        self.activities.remove(name);
        self.entities.remove(name);
        self
    }

    /// Whether an entity is registered under `name`.
    pub fn has_entity(&self, name: &str) -> bool {
        self.entities.contains_key(name)
    }

    /// Whether an activity is registered under `name`.
    pub fn has_activity(&self, name: &str) -> bool {
        self.activities.contains_key(name)
    }

    /// Whether an orchestrator is registered under `name`.
    pub fn has_orchestrator(&self, name: &str) -> bool {
        self.orchestrators.contains_key(name)
    }

    /// The registered orchestrator names.
    pub fn orchestrator_names(&self) -> Vec<String> {
        self.orchestrators.keys().cloned().collect()
    }

    /// Starts the orchestrator `name`'s code, or says it is unknown.
    pub(crate) fn start_orchestrator(
        &self,
        name: &str,
        ctx: OrchestrationContext,
        input: Value,
    ) -> Result<BoxRun, String> {
        let f = self.orchestrators.get(name).ok_or_else(|| {
            format!("no orchestrator named `{name}`; registered: {}", self.orchestrator_names().join(", "))
        })?;
        Ok(f(ctx, input))
    }

    /// Runs the activity `ctx.name` with `input`; a panic becomes an error.
    pub async fn run_activity(&self, ctx: ActivityContext, input: Value) -> Result<Value, String> {
        let Some(f) = self.activities.get(&ctx.name) else {
            return Err(format!(
                "no activity named `{}`; registered: {}",
                ctx.name,
                self.activities.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        };
        let name = ctx.name.clone();
        let fut = f(ctx, input);
        match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(fut)).await {
            Ok(r) => r,
            Err(panic) => Err(format!("activity `{name}` panicked: {}", crate::server::panic_text(&*panic))),
        }
    }
}
