//! A stand-in for the task hub in unit tests of handlers that use [`Context::durable`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::Value;

use crate::context::Context;
use crate::durable::binding::{DurableCall, DurableSource};
use crate::durable::testing::{OrchestrationTest, Status, TestRun};
use crate::durable::{DurableError, EntityId, InstanceStatus, Registry, RuntimeStatus};

/// Records what a handler asks of its durable client ([`Context::durable`]), so that the handler is
/// unit-tested without storage; with [`running`](Self::running), it also runs each orchestration it
/// is asked to start, in process (as [`OrchestrationTest`] does: real activities, timers at once),
/// so that `status` answers with its outcome.
///
/// ```
/// use azfn::testing::DurableRecorder;
/// use azfn::durable::DurableCall;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let spec = azfn::FunctionSpec::parse("StartShipping", "function.json".as_ref(), r#"{"bindings": [
///     {"type": "httpTrigger", "direction": "in", "name": "req", "methods": ["post"]},
///     {"type": "http", "direction": "out", "name": "res"}]}"#).unwrap();
/// let durable = DurableRecorder::new();
/// let ctx = durable.context_for(spec);
/// // ... the handler runs with `ctx` and calls:
/// let id = ctx.durable().start_new("ShipOrder", serde_json::json!({"order": 1})).await.unwrap();
/// assert_eq!(id, "instance-1");
/// assert!(matches!(&durable.calls()[0], DurableCall::Started { orchestrator, .. } if orchestrator == "ShipOrder"));
/// # });
/// ```
#[derive(Debug, Clone, Default)]
pub struct DurableRecorder {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The orchestrations to run, with [`DurableRecorder::running`].
    registry: Option<Registry>,
    calls: Mutex<Vec<DurableCall>>,
    /// Started instances by id: their orchestrator, input and, when run, the run.
    instances: tokio::sync::Mutex<HashMap<String, Started>>,
}

struct Started {
    name: String,
    input: Value,
    run: Option<TestRun>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableRecorder").field("runs", &self.registry.is_some()).field("calls", &self.calls).finish()
    }
}

impl DurableRecorder {
    /// A recorder that only records: started instances stay `Pending`.
    pub fn new() -> Self {
        Self::default()
    }

    /// A recorder that also runs the orchestrations of `registry` it is asked to start, to their end
    /// or first wait, and refuses unknown orchestrators and inputs that do not fit, as the hub does.
    pub fn running(registry: Registry) -> Self {
        Self { inner: Arc::new(Inner { registry: Some(registry), ..Inner::default() }) }
    }

    /// A context for the function `name` (its `functions/<name>/function.json`, as
    /// [`context`](super::context)) whose durable client is this recorder.
    pub fn context(&self, name: &str) -> Context {
        self.context_for(super::spec(name))
    }

    /// A context for `spec` whose durable client is this recorder.
    pub fn context_for(&self, spec: crate::FunctionSpec) -> Context {
        Context::new(spec, "00000000-0000-4000-8000-000000000000").with_durable(DurableSource::Recorder(self.clone()))
    }

    /// Every call the handlers made, in order.
    pub fn calls(&self) -> Vec<DurableCall> {
        self.inner.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The instances started, as `(orchestrator, instance id, input)`.
    pub fn started(&self) -> Vec<(String, String, Value)> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                DurableCall::Started { orchestrator, instance_id, input } => Some((orchestrator, instance_id, input)),
                _ => None,
            })
            .collect()
    }

    fn record(&self, call: DurableCall) {
        self.inner.calls.lock().unwrap_or_else(|p| p.into_inner()).push(call);
    }

    pub(crate) async fn start(&self, name: &str, id: Option<&str>, input: Value) -> Result<String, DurableError> {
        if let Some(registry) = &self.inner.registry {
            if !registry.has_orchestrator(name) {
                return Err(DurableError::NotFound(format!(
                    "there is no orchestrator `{name}` (known: {})",
                    registry.orchestrator_names().join(", ")
                )));
            }
            registry
                .check_input(name, &input)
                .map_err(|e| DurableError::BadRequest(format!("the input does not fit orchestrator `{name}`: {e}")))?;
        }
        let mut instances = self.inner.instances.lock().await;
        let id = match id {
            Some(id) => {
                crate::durable::validate_instance_id(id)?;
                id.to_owned()
            }
            None => {
                (1..).map(|n| format!("instance-{n}")).find(|id| !instances.contains_key(id)).expect("an unused id")
            }
        };
        if let Some(existing) = instances.get(&id)
            && !is_terminal(existing)
        {
            if existing.name == name && existing.input == input {
                return Ok(id);
            }
            return Err(DurableError::Conflict(format!(
                "instance `{id}` already exists and is running {}; terminate it or use another id",
                existing.name
            )));
        }
        self.record(DurableCall::Started {
            orchestrator: name.to_owned(),
            instance_id: id.clone(),
            input: input.clone(),
        });
        let run = match &self.inner.registry {
            Some(registry) => Some(OrchestrationTest::new(registry.clone()).instance_id(&id).run(name, &input).await),
            None => None,
        };
        instances.insert(id.clone(), Started { name: name.to_owned(), input, run });
        Ok(id)
    }

    pub(crate) async fn status(&self, id: &str) -> Result<InstanceStatus, DurableError> {
        let instances = self.inner.instances.lock().await;
        let started = instances.get(id).ok_or_else(|| DurableError::no_instance(id))?;
        let mut status = InstanceStatus::new(&started.name, id, started.input.clone(), None, Utc::now());
        if let Some(run) = &started.run {
            status.runtime_status = match run.status() {
                Status::Running => RuntimeStatus::Running,
                Status::Completed => RuntimeStatus::Completed,
                Status::Failed => RuntimeStatus::Failed,
                Status::Terminated => RuntimeStatus::Terminated,
            };
            status.custom_status = run.custom_status().clone();
            status.output = match (run.output(), run.error()) {
                (Some(out), _) => out.clone(),
                (None, Some(error)) => Value::String(error.to_owned()),
                (None, None) => Value::Null,
            };
        }
        Ok(status)
    }

    pub(crate) async fn raise_event(&self, id: &str, event: &str, data: Value) -> Result<(), DurableError> {
        let mut instances = self.inner.instances.lock().await;
        let started = live(&mut instances, id, "raising an event")?;
        self.record(DurableCall::EventRaised {
            instance_id: id.to_owned(),
            event: event.to_owned(),
            data: data.clone(),
        });
        if let Some(run) = &mut started.run {
            run.raise_event(event, data).await;
        }
        Ok(())
    }

    pub(crate) async fn terminate(&self, id: &str, reason: &str) -> Result<(), DurableError> {
        let mut instances = self.inner.instances.lock().await;
        let started = live(&mut instances, id, "terminating")?;
        self.record(DurableCall::Terminated { instance_id: id.to_owned(), reason: reason.to_owned() });
        if let Some(run) = &mut started.run {
            run.terminate(reason).await;
        }
        Ok(())
    }

    pub(crate) fn signal_entity(&self, entity: &EntityId, operation: &str, input: Value) -> Result<(), DurableError> {
        self.record(DurableCall::EntitySignaled { entity: entity.clone(), operation: operation.to_owned(), input });
        Ok(())
    }
}

/// The started instance `id`, which must not have finished (when it was run): as the hub, which
/// answers 410 for an operation on a finished instance and 404 for an unknown one.
fn live<'a>(
    instances: &'a mut HashMap<String, Started>,
    id: &str,
    operation: &str,
) -> Result<&'a mut Started, DurableError> {
    let started = instances.get_mut(id).ok_or_else(|| DurableError::no_instance(id))?;
    if let Some(run) = &started.run
        && run.status() != Status::Running
    {
        return Err(DurableError::Gone {
            id: id.to_owned(),
            status: format!("{:?}", run.status()),
            operation: operation.to_owned(),
        });
    }
    Ok(started)
}

fn is_terminal(started: &Started) -> bool {
    started.run.as_ref().is_some_and(|r| r.status() != Status::Running)
}
