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
    /// By name, then by version (`""` for code registered without one).
    orchestrators: BTreeMap<String, BTreeMap<String, OrchestratorFn>>,
    inputs: BTreeMap<(String, String), InputCheck>,
    default_version: Option<String>,
    activities: BTreeMap<String, ActivityFn>,
    entities: BTreeMap<String, super::entity::EntityFn>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("orchestrators", &self.orchestrator_versions())
            .field("default_version", &self.default_version)
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
    pub fn orchestrator<F, Fut, I, O, E>(self, name: &str, f: F) -> Self
    where
        F: Fn(OrchestrationContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        E: fmt::Display + 'static,
    {
        self.orchestrator_version(name, "", f)
    }

    /// Registers version `version` of the orchestrator `name`, beside its other versions.
    ///
    /// An instance runs the code of the version it was started with for its whole life (each
    /// episode, after every `continue_as_new`), so that instances in flight keep their steps while
    /// new ones start on new code: change an orchestrator's steps by registering the new code as a
    /// new version, and keep the old one until no instance of it is left (the dashboard says when).
    /// A new start takes [`version_for_start`](Self::version_for_start). `""` is the version of
    /// code registered with [`orchestrator`](Self::orchestrator).
    ///
    /// ```
    /// use azfn::durable::{OrchestrationContext, Registry, TaskError};
    ///
    /// async fn v1(ctx: OrchestrationContext, order: String) -> Result<String, TaskError> {
    ///     ctx.call_activity("Ship", order).await
    /// }
    /// async fn v2(ctx: OrchestrationContext, order: String) -> Result<String, TaskError> {
    ///     let shipped: String = ctx.call_activity("Ship", &order).await?;
    ///     ctx.call_activity::<String>("Notify", &order).await?;
    ///     Ok(shipped)
    /// }
    ///
    /// let registry = Registry::new()
    ///     .orchestrator_version("Fulfil", "1", v1)
    ///     .orchestrator_version("Fulfil", "2", v2);
    /// assert_eq!(registry.version_for_start("Fulfil").as_deref(), Some("2"));
    /// assert_eq!(registry.clone().default_version("1").version_for_start("Fulfil").as_deref(), Some("1"));
    /// assert!(registry.has_orchestrator_version("Fulfil", Some("1")));
    /// assert!(!registry.has_orchestrator_version("Fulfil", None));
    /// ```
    pub fn orchestrator_version<F, Fut, I, O, E>(mut self, name: &str, version: &str, f: F) -> Self
    where
        F: Fn(OrchestrationContext, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        I: DeserializeOwned + 'static,
        O: Serialize + 'static,
        E: fmt::Display + 'static,
    {
        let what = if version.is_empty() {
            format!("orchestrator `{name}`")
        } else {
            format!("orchestrator `{name}` version {version}")
        };
        let run: OrchestratorFn = Arc::new(erase(what, f));
        self.orchestrators.entry(name.to_owned()).or_default().insert(version.to_owned(), run);
        let check: InputCheck = Arc::new(|v: &Value| {
            I::deserialize(v)
                .map(|_| ())
                .map_err(|e| format!("{e} (the input should fit {})", std::any::type_name::<I>()))
        });
        self.inputs.insert((name.to_owned(), version.to_owned()), check);
        self
    }

    /// Sets the version new starts take when the orchestrator has it (as `defaultVersion` does in
    /// Durable Functions); the runtime sets it from the app setting `AZFN_DURABLE_DEFAULT_VERSION`.
    /// Pin it to the old version while a rolling deploy is under way, so that no instance starts on
    /// a version the workers not yet upgraded lack, then move it on.
    pub fn default_version(mut self, version: &str) -> Self {
        self.default_version = Some(version.to_owned()).filter(|v| !v.is_empty());
        self
    }

    /// The version a new start of `name` takes: the default version if `name` has it, else its
    /// highest version (numbers compared as numbers, `2` before `10`); `None` for code registered
    /// without a version (or no orchestrator `name`).
    pub fn version_for_start(&self, name: &str) -> Option<String> {
        let versions = self.orchestrators.get(name)?;
        if let Some(v) = &self.default_version
            && versions.contains_key(v)
        {
            return Some(v.clone());
        }
        versions.keys().max_by(|a, b| version_order(a, b)).filter(|v| !v.is_empty()).cloned()
    }

    /// The app's default version for new starts, if one is set.
    pub fn default_version_setting(&self) -> Option<&str> {
        self.default_version.as_deref()
    }

    /// Whether the orchestrator `name` has code for `version` (`None`: registered without one).
    pub fn has_orchestrator_version(&self, name: &str, version: Option<&str>) -> bool {
        self.orchestrators.get(name).is_some_and(|v| v.contains_key(version.unwrap_or("")))
    }

    /// Every registered orchestrator with its versions (`""` for code without one), in order.
    pub fn orchestrator_versions(&self) -> Vec<(String, Vec<String>)> {
        self.orchestrators
            .iter()
            .map(|(name, versions)| {
                let mut v: Vec<String> = versions.keys().cloned().collect();
                v.sort_by(|a, b| version_order(a, b));
                (name.clone(), v)
            })
            .collect()
    }

    /// Whether `input` fits the input type of the orchestrator `name`, so that a start with an
    /// input it cannot read is refused at once rather than failing later.
    /// (The code checked is the version a new start takes.)
    pub fn check_input(&self, name: &str, input: &Value) -> Result<(), String> {
        let key = (name.to_owned(), self.version_for_start(name).unwrap_or_default());
        self.inputs.get(&key).map_or(Ok(()), |check| check(input))
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
        self.inputs.retain(|(n, _), _| n != name);
        self.activities.remove(name);
        self.entities.remove(name);
        self
    }

    /// The same registry without version `version` of the orchestrator `name`: a worker of a
    /// release before that version, in the deterministic simulation (feature `simulation`).
    #[cfg(feature = "simulation")]
    pub fn without_version(mut self, name: &str, version: &str) -> Self {
        if let Some(versions) = self.orchestrators.get_mut(name) {
            versions.remove(version);
        }
        self.inputs.remove(&(name.to_owned(), version.to_owned()));
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

    /// Starts the code of version `version` of the orchestrator `name`, or says it is unknown.
    pub(crate) fn start_orchestrator(
        &self,
        name: &str,
        version: Option<&str>,
        ctx: OrchestrationContext,
        input: Value,
    ) -> Result<BoxRun, String> {
        let versions = self.orchestrators.get(name).ok_or_else(|| {
            format!("no orchestrator named `{name}`; registered: {}", self.orchestrator_names().join(", "))
        })?;
        let f = versions.get(version.unwrap_or("")).ok_or_else(|| {
            let known: Vec<String> = self
                .orchestrator_versions()
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.into_iter().map(|v| if v.is_empty() { "(none)".to_owned() } else { v }).collect())
                .unwrap_or_default();
            format!(
                "orchestrator `{name}` has no version {} here; registered versions: {}",
                version.unwrap_or("(none)"),
                known.join(", ")
            )
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

/// Orders versions as people number them: `""` first, then segment by segment (split on `.`),
/// numbers as numbers and before words, words as text.
///
/// ```
/// use std::cmp::Ordering;
/// use azfn::durable::registry::version_order;
/// assert_eq!(version_order("2", "10"), Ordering::Less);
/// assert_eq!(version_order("1.2", "1.10"), Ordering::Less);
/// assert_eq!(version_order("", "1"), Ordering::Less);
/// assert_eq!(version_order("2024-06", "2024-06"), Ordering::Equal);
/// ```
pub fn version_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    if a.is_empty() || b.is_empty() {
        return (!a.is_empty()).cmp(&!b.is_empty());
    }
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(p), Some(q)) => {
                let order = match (p.parse::<u64>(), q.parse::<u64>()) {
                    (Ok(m), Ok(n)) => m.cmp(&n),
                    (Ok(_), Err(_)) => Ordering::Less,
                    (Err(_), Ok(_)) => Ordering::Greater,
                    (Err(_), Err(_)) => p.cmp(q),
                };
                if order != Ordering::Equal {
                    return order;
                }
            }
        }
    }
}
