//! Starting, querying and controlling orchestration instances from outside (the management API uses
//! it; any handler can too).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::dispatch::Dispatcher;
use super::entity::{EntityId, EntityRequest};
use super::error::{DurableError, validate_instance_id};
use super::history::Event;
use super::hub::TaskHub;
use super::messages::{Command, ControlMessage};
use super::registry::Registry;
use super::store::{InstanceStatus, ListFilter, Purge, RuntimeStatus};
use crate::storage::Continuation;

/// How long after a start its guard message shows up (see [`DurableClient::start`]).
pub const START_GUARD_DELAY: std::time::Duration = std::time::Duration::from_secs(10);

/// A missing instance table (nothing started yet on this hub) read as no instance.
fn missing_table<T>(e: crate::storage::StorageError) -> Result<Option<T>, DurableError> {
    if e.is_not_found() { Ok(None) } else { Err(e.into()) }
}

/// An entity and its state, as the management API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct EntityView {
    /// The entity.
    pub entity: EntityId,
    /// Its state.
    pub state: Value,
    /// When the state last changed.
    pub last_modified: Option<DateTime<Utc>>,
}

/// A client of a task hub.
#[derive(Debug, Clone)]
pub struct DurableClient {
    hub: Arc<TaskHub>,
    registry: Arc<Registry>,
    dispatcher: Option<Arc<Dispatcher>>,
}

/// An instance's status with its values read back from blobs, and its history when asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceView {
    /// The status.
    pub status: InstanceStatus,
    /// The current execution's history (with `show_history`).
    pub history: Option<Vec<Event>>,
}

/// One version of one orchestrator: whether this worker has its code, whether new starts take it,
/// and how many instances of it have not finished ([`DurableClient::versions`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VersionUse {
    /// The orchestrator.
    pub name: String,
    /// The version (`""`: code registered without one).
    pub version: String,
    /// Whether this worker has the code of this version.
    pub registered: bool,
    /// Whether new starts of the orchestrator take this version here.
    pub starts_new: bool,
    /// Instances of this version not finished yet (pending, running, suspended).
    pub in_flight: u64,
    /// Whether its code can be removed: no instance of it is left, and new starts take another.
    pub removable: bool,
}

impl DurableClient {
    /// A client for `hub` that starts the orchestrators of `registry`.
    pub fn new(hub: Arc<TaskHub>, registry: Arc<Registry>) -> Self {
        Self { hub, registry, dispatcher: None }
    }

    /// A client that runs a new instance's first episode in place (saving a control-queue hop)
    /// with `dispatcher`, falling back to the control queue.
    pub fn with_dispatcher(dispatcher: Arc<Dispatcher>, registry: Arc<Registry>) -> Self {
        Self { hub: dispatcher.hub().clone(), registry, dispatcher: Some(dispatcher) }
    }

    /// Starts the orchestrator `name` with `input` as instance `instance_id` (a new id when `None`);
    /// returns the id.
    ///
    /// A start is safe to retry: starting an id again with the same orchestrator and input while
    /// its first start is pending or running answers with that instance (and makes sure it runs);
    /// with another orchestrator or input it is refused (409). A finished instance is started
    /// afresh. Whatever fails part-way, the instance either runs or does not exist within a few
    /// seconds: a delayed copy of the start message (a *guard*) is queued before anything is
    /// written, and starts an instance whose start went no further.
    pub async fn start(&self, name: &str, instance_id: Option<&str>, input: Value) -> Result<String, DurableError> {
        self.start_as(name, instance_id, input, true).await
    }

    /// A start that is a retry by construction, as one whose id comes from an `Idempotency-Key`:
    /// like [`start`](Self::start), except that an instance that exists with the same orchestrator
    /// and input is answered with whatever its status, finished included, and never started again
    /// (a client that retries after a lost 202 must not charge the card twice); with another
    /// orchestrator or input it is refused (409).
    pub async fn start_once(&self, name: &str, instance_id: &str, input: Value) -> Result<String, DurableError> {
        validate_instance_id(instance_id)?;
        // Most retries find the instance: answered without sending or writing anything.
        if let Some((existing, _)) = self.hub.store().status(instance_id).await.or_else(missing_table)? {
            return self.same_start(existing, name, &input).await;
        }
        self.start_as(name, Some(instance_id), input, false).await
    }

    async fn start_as(
        &self,
        name: &str,
        instance_id: Option<&str>,
        input: Value,
        replace_finished: bool,
    ) -> Result<String, DurableError> {
        if !self.registry.has_orchestrator(name) {
            return Err(DurableError::NotFound(format!(
                "there is no orchestrator `{name}` (known: {})",
                self.registry.orchestrator_names().join(", ")
            )));
        }
        self.registry
            .check_input(name, &input)
            .map_err(|e| DurableError::BadRequest(format!("the input does not fit orchestrator `{name}`: {e}")))?;
        let id = match instance_id {
            Some(id) => id.to_owned(),
            None => super::clock::new_id(),
        };
        validate_instance_id(&id)?;
        if id.starts_with(super::entity::ENTITY_PREFIX) {
            return Err(DurableError::BadRequest(format!(
                "instance id {id:?} starts with `@`, which is kept for entities (`@name@key`)"
            )));
        }
        self.hub.ensure_created().await?;
        let store = self.hub.store();
        let now = self.hub.now();
        let original_input = input.clone();
        let mut input = input;
        self.hub.offload(&id, &mut input).await?;
        let mut status = InstanceStatus::new(name, &id, input.clone(), None, now);
        status.start_input = Some(super::store::input_fingerprint(&original_input));
        status.version = self.registry.version_for_start(name);
        let start =
            Event::ExecutionStarted { name: name.to_owned(), input, parent: None, version: status.version.clone() };

        let mut guard = ControlMessage::event(&id, Some(&status.execution_id), start.clone());
        guard.guard = true;
        guard.recover = true;
        // Not part of the start's trace: it usually finds the instance started and does nothing,
        // 10 s later, which would stretch every start's trace by 10 s.
        guard.traceparent = None;
        guard.fire_at = Some(now + chrono::Duration::from_std(START_GUARD_DELAY).expect("small"));
        let guard = self.hub.send_control_held(&guard, now).await?;

        // With a dispatcher, the status and the first episode go in one insert, and the guard is
        // taken back once the start has handed its work over.
        if let Some(d) = &self.dispatcher
            && d.start_new(status.clone(), start.clone(), Some(guard.clone())).await?
        {
            return Ok(id);
        }

        // Insert first (one request in the common case); an existing instance may be replaced only
        // when it has finished.
        let taken = |id: &str| DurableError::Conflict(format!("instance `{id}` was started by someone else just now"));
        match store.commit(&mut status, None, &[], &[], &[]).await {
            Ok(_) => {}
            Err(e) if e.is_conflict() => {
                let Some((existing, etag)) = store.status(&id).await? else { return Err(taken(&id)) };
                if existing.execution_id == status.execution_id {
                    // This call's own insert, whose answer was lost.
                } else if !existing.runtime_status.is_terminal() || !replace_finished {
                    return self.same_start(existing, name, &original_input).await;
                } else {
                    match store.commit(&mut status, Some(&etag), &[], &[], &[]).await {
                        Ok(_) => {}
                        Err(e) if e.is_precondition_failed() && e.ambiguous => {}
                        Err(e) if e.is_conflict() || e.is_precondition_failed() => return Err(taken(&id)),
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        let msg = ControlMessage::event(&id, Some(&status.execution_id), start);
        let started = match &self.dispatcher {
            // As a possible redelivery: the insert above may have been this start's own, with its
            // first episode, whose answer was lost.
            Some(d) => d.apply_or_send(msg, true, None).await.map(|_| ()),
            None => self.hub.send_control(&msg, now).await,
        };
        match started {
            // The start is applied (its outbox sent) or queued (the worker that takes it holds it
            // until its work is handed over): the guard has nothing left to do, and were it to
            // show up while that worker runs the first call, it would send the call again.
            Ok(()) => {
                if let Err(e) = self.hub.recall_control(&guard).await {
                    tracing::debug!(instance = %id, error = %e, "the start's guard could not be taken back; it will find the instance started");
                }
            }
            // The instance is written and its guard queued: it starts when the guard shows up.
            Err(e) => {
                tracing::warn!(instance = %id, error = %e, "starting in place failed; the start's guard will run it")
            }
        }
        Ok(id)
    }

    /// A start of an id that already exists (pending or running, or finished for a keyed start):
    /// the same start retried (same orchestrator and input) gets the instance, a pending one sent
    /// its start message again in case the first start stopped after writing it (duplicates are
    /// dropped); another start is refused.
    async fn same_start(&self, existing: InstanceStatus, name: &str, input: &Value) -> Result<String, DurableError> {
        let id = existing.instance_id.clone();
        // The input it was started with: the current one is another after a `continue_as_new`.
        let same_input = match &existing.start_input {
            Some(fingerprint) => *fingerprint == super::store::input_fingerprint(input),
            None => {
                let mut existing_input = existing.input.clone();
                self.hub.resolve(&mut existing_input).await?;
                existing_input == *input
            }
        };
        if existing.name != name || !same_input {
            return Err(DurableError::Conflict(format!(
                "instance `{id}` already exists and is {:?}, running {} with another input; terminate it or use another id",
                existing.runtime_status, existing.name
            )));
        }
        if existing.runtime_status == RuntimeStatus::Pending {
            let start = Event::ExecutionStarted {
                name: existing.name.clone(),
                input: existing.input.clone(),
                parent: None,
                version: existing.version.clone(),
            };
            let mut msg = ControlMessage::event(&id, Some(&existing.execution_id), start);
            msg.recover = true;
            self.hub.send_control(&msg, self.hub.now()).await?;
        }
        Ok(id)
    }

    /// An instance's status (values read back from blobs), with its history if `show_history`.
    pub async fn status(&self, instance_id: &str, show_history: bool) -> Result<InstanceView, DurableError> {
        validate_instance_id(instance_id)?;
        let (mut status, history) = if show_history {
            let loaded = self.hub.store().load(instance_id).await.map_err(|e| not_found_table(e, instance_id))?;
            let loaded = loaded.ok_or_else(|| DurableError::no_instance(instance_id))?;
            let mut history = loaded.history;
            for e in history.iter_mut() {
                self.hub.resolve_event(e).await?;
            }
            (loaded.status, Some(history))
        } else {
            (self.existing(instance_id).await?, None)
        };
        for v in [&mut status.input, &mut status.output, &mut status.custom_status] {
            self.hub.resolve(v).await?;
        }
        Ok(InstanceView { status, history })
    }

    /// Sends the event `name` with `data` to a running instance.
    pub async fn raise_event(&self, instance_id: &str, name: &str, data: Value) -> Result<(), DurableError> {
        if name.is_empty() {
            return Err(DurableError::BadRequest("an event needs a name".into()));
        }
        self.running(instance_id, "raising an event").await?;
        let key = super::clock::new_id();
        let event = Event::EventRaised { name: name.to_owned(), input: data, key };
        self.hub.send_control(&ControlMessage::event(instance_id, None, event), self.hub.now()).await
    }

    /// Terminates a running instance.
    pub async fn terminate(&self, instance_id: &str, reason: &str) -> Result<(), DurableError> {
        self.running(instance_id, "terminating").await?;
        let event = Event::ExecutionTerminated { reason: reason.to_owned() };
        self.hub.send_control(&ControlMessage::event(instance_id, None, event), self.hub.now()).await
    }

    /// Rewinds a Failed instance: takes it back to before the failed activities and
    /// sub-orchestrations that ended it, and runs them again, keeping what succeeded; `reason` is
    /// recorded in its history ([`rewind`](super::rewind)). The rewind is checked first, here and in
    /// every failed sub-orchestration it waits for: one that could not end differently is refused
    /// (409) with the reason, and nothing is changed.
    pub async fn rewind(&self, instance_id: &str, reason: &str) -> Result<(), DurableError> {
        validate_instance_id(instance_id)?;
        let mut to_check = vec![instance_id.to_owned()];
        while let Some(id) = to_check.pop() {
            to_check.extend(self.check_rewind(&id, instance_id).await?);
        }
        let rewind = Command::Rewind { reason: reason.to_owned(), parent_execution: None };
        let msg = ControlMessage::command(instance_id, rewind);
        let Some(d) = &self.dispatcher else { return self.hub.send_control(&msg, self.hub.now()).await };
        // Applied in place, so that the instance is Running when the answer comes; a delayed copy
        // (a guard, as a start has) is queued first, and taken back once the rewind is applied and
        // its sends are out: if this process dies in between, the copy comes back, finds the
        // rewind applied (it has the same id) and sends what it still owes.
        let now = self.hub.now();
        let mut guard = msg.clone();
        guard.recover = true;
        guard.fire_at = Some(now + chrono::Duration::from_std(START_GUARD_DELAY).expect("small"));
        let guard = self.hub.send_control_held(&guard, now).await?;
        match d.apply_message(&msg, false, None).await {
            Ok(_) => {
                if let Err(e) = self.hub.recall_control(&guard).await {
                    tracing::debug!(instance = %instance_id, error = %e, "the rewind's guard could not be taken back; it will find the rewind applied");
                }
            }
            // The guard applies it in a few seconds.
            Err(e) => tracing::warn!(instance = %instance_id, error = %e, "rewinding in place failed; its guard will"),
        }
        Ok(())
    }

    /// Whether the instance `id` (`root` or one of its sub-orchestrations) can be rewound; gives
    /// its failed sub-orchestrations, which are rewound with it.
    async fn check_rewind(&self, id: &str, root: &str) -> Result<Vec<String>, DurableError> {
        let what = if id == root { format!("instance {id}") } else { format!("its sub-orchestration {id}") };
        let refuse = |why: String| DurableError::Conflict(format!("{what} cannot be rewound: {why}"));
        let view = self.status(id, true).await?;
        let status = &view.status;
        if status.runtime_status != RuntimeStatus::Failed {
            return Err(refuse(format!("it is {:?}; only a Failed instance is rewound", status.runtime_status)));
        }
        let history = view.history.as_deref().unwrap_or_default();
        let (history, _) =
            super::rewind::rewound(&self.registry, status, history, "", "", "rewind-check").map_err(refuse)?;
        let mut children = Vec::new();
        for e in super::rewind::waiting(&history) {
            let Event::SubOrchestrationCreated { instance_id: child, name, .. } = e else { continue };
            match self.hub.store().status(child).await.or_else(missing_table)? {
                Some((s, _)) if s.runtime_status == RuntimeStatus::Failed => children.push(child.clone()),
                Some((s, _)) if s.runtime_status == RuntimeStatus::Terminated => {
                    return Err(refuse(format!(
                        "its sub-orchestration {child} ({name}) was terminated; a rewind runs failures again, not terminations"
                    )));
                }
                _ => {}
            }
        }
        Ok(children)
    }

    /// Suspends a running instance: events wait until it is resumed.
    pub async fn suspend(&self, instance_id: &str) -> Result<(), DurableError> {
        self.running(instance_id, "suspending").await?;
        let mut msg = ControlMessage::command(instance_id, Command::Suspend);
        msg.sent_at = Some(self.hub.now());
        self.hub.send_control(&msg, self.hub.now()).await
    }

    /// Resumes a suspended instance.
    pub async fn resume(&self, instance_id: &str) -> Result<(), DurableError> {
        self.running(instance_id, "resuming").await?;
        let mut msg = ControlMessage::command(instance_id, Command::Resume);
        msg.sent_at = Some(self.hub.now());
        self.hub.send_control(&msg, self.hub.now()).await
    }

    /// Deletes a finished instance's status, history and offloaded values.
    ///
    /// Refused (409) while the instance runs, while its messages to entities (a critical
    /// section's releases) are still being sent, and when it is started again meanwhile; each row
    /// is deleted only if unchanged since read ([`InstanceStore::purge`](super::store::InstanceStore::purge)).
    pub async fn purge(&self, instance_id: &str) -> Result<(), DurableError> {
        self.purge_execution(instance_id, None).await
    }

    /// [`purge`](Self::purge), only while the instance is still in the execution `execution_id`
    /// (when given): a run of the same id started or rewound since is kept (409).
    pub async fn purge_execution(&self, instance_id: &str, execution_id: Option<&str>) -> Result<(), DurableError> {
        validate_instance_id(instance_id)?;
        let purged = self
            .hub
            .store()
            .purge_execution(instance_id, execution_id)
            .await
            .map_err(|e| not_found_table(e, instance_id))?;
        match purged {
            Purge::Deleted(_) => self.hub.delete_large(instance_id).await,
            Purge::Missing => Err(DurableError::no_instance(instance_id)),
            Purge::NotFinished(status) => Err(DurableError::Conflict(format!(
                "instance `{instance_id}` is {status:?}; terminate it before purging its history"
            ))),
            Purge::Unsent(n) => Err(DurableError::Conflict(format!(
                "instance `{instance_id}` has finished, but {n} of its messages to entities (lock releases) are \
                 not sent yet; purge it again in a few seconds"
            ))),
            Purge::Changed => Err(DurableError::Conflict(format!(
                "instance `{instance_id}` was started again (or rewound) while it was being purged; it is kept"
            ))),
        }
    }

    /// Signals `entity` to apply `operation` with `input` (one-way), no earlier than `at` when given.
    pub async fn signal_entity(
        &self,
        entity: &EntityId,
        operation: &str,
        input: Value,
        at: Option<DateTime<Utc>>,
    ) -> Result<(), DurableError> {
        let id = super::clock::new_id();
        self.send_signal(entity, operation, input, at, id).await
    }

    /// Like [`signal_entity`](Self::signal_entity), safe to retry: signals sent with the same
    /// `key` to one entity are applied once (while the entity remembers the key: 30 minutes, or its
    /// last 1,500 operations). Use one key per operation, e.g. the client's request id.
    pub async fn signal_entity_once(
        &self,
        entity: &EntityId,
        operation: &str,
        input: Value,
        at: Option<DateTime<Utc>>,
        key: &str,
    ) -> Result<(), DurableError> {
        if key.is_empty() || key.len() > 200 {
            return Err(DurableError::BadRequest("an idempotency key has 1 to 200 characters".to_owned()));
        }
        self.send_signal(entity, operation, input, at, format!("key|{key}")).await
    }

    async fn send_signal(
        &self,
        entity: &EntityId,
        operation: &str,
        input: Value,
        at: Option<DateTime<Utc>>,
        id: String,
    ) -> Result<(), DurableError> {
        entity.validate()?;
        self.registry.entity_code(&entity.name).map_err(DurableError::NotFound)?;
        if operation.is_empty() {
            return Err(DurableError::BadRequest("an entity operation needs a name (?op=...)".to_owned()));
        }
        self.hub.ensure_created().await?;
        let request = EntityRequest { id, operation: operation.to_owned(), input, ..EntityRequest::default() };
        let msg = ControlMessage::entity(&entity.instance_id(), request, at);
        self.hub.send_control(&msg, self.hub.now()).await
    }

    /// The state of `entity`, or `None` when it does not exist (never used, or deleted).
    pub async fn entity_state(&self, entity: &EntityId) -> Result<Option<EntityView>, DurableError> {
        entity.validate()?;
        match self.hub.store().load_entity(&entity.instance_id()).await {
            Ok(Some((row, _))) => match row.state {
                Some(mut state) => {
                    // (A large state lives in a blob.)
                    self.hub.resolve(&mut state).await?;
                    Ok(Some(EntityView { entity: entity.clone(), state, last_modified: row.last_modified }))
                }
                None => Ok(None),
            },
            Ok(None) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// One page of existing entities (of `name`, or all), at most `top`, and the next page's token.
    pub async fn list_entities(
        &self,
        name: Option<&str>,
        top: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<(Vec<EntityView>, Option<String>), DurableError> {
        let continuation = match continuation.filter(|t| !t.is_empty()) {
            Some(t) => Some(
                Continuation::from_token(t)
                    .ok_or_else(|| DurableError::BadRequest(format!("{t:?} is not a continuation token")))?,
            ),
            None => None,
        };
        match self.hub.store().list_entities(name, top, continuation.as_ref()).await {
            Ok((items, next)) => {
                let mut views = Vec::with_capacity(items.len());
                for (entity, row) in items {
                    if let Some(mut state) = row.state {
                        // (A large state lives in a blob.)
                        self.hub.resolve(&mut state).await?;
                        views.push(EntityView { entity, state, last_modified: row.last_modified });
                    }
                }
                Ok((views, next.map(|c| c.to_token())))
            }
            Err(e) if e.is_not_found() => Ok((Vec::new(), None)),
            Err(e) => Err(e.into()),
        }
    }

    /// Purges every finished instance matching `filter` (its status, history and blob-offloaded
    /// values); gives how many were deleted. Instances that have not finished are left alone.
    pub async fn purge_many(&self, filter: &ListFilter) -> Result<usize, DurableError> {
        // The ids first, then the deletes: deleting while paging would move the pages.
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let (items, next) = self.list(filter, Some(500), token.as_deref()).await?;
            ids.extend(items.into_iter().filter(|s| s.runtime_status.is_terminal()).map(|s| s.instance_id));
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        let mut deleted = 0;
        for id in ids {
            // Purged by someone else meanwhile, started again, or still releasing entities: skipped.
            match self.hub.store().purge(&id).await {
                Ok(Purge::Deleted(_)) => {
                    self.hub.delete_large(&id).await?;
                    deleted += 1;
                }
                Ok(_) => {}
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(deleted)
    }

    /// Starts a finished instance again with its original input: under the same id, or (with
    /// `new_instance_id`) under a new one, which may also copy one that is still running. Gives
    /// the id that runs.
    pub async fn restart(&self, instance_id: &str, new_instance_id: bool) -> Result<String, DurableError> {
        let status = self.existing(instance_id).await?;
        if !new_instance_id && !status.runtime_status.is_terminal() {
            return Err(DurableError::Conflict(format!(
                "instance `{instance_id}` is {:?}: only a finished instance restarts under its own id \
                 (restartWithNewInstanceId=true starts a copy)",
                status.runtime_status
            )));
        }
        let mut input = status.input.clone();
        self.hub.resolve(&mut input).await?;
        let id = (!new_instance_id).then_some(instance_id);
        self.start(&status.name, id, input).await
    }

    /// The task hub this client works on.
    pub fn hub(&self) -> &Arc<TaskHub> {
        &self.hub
    }

    /// The orchestrators, activities and entities this client starts and signals.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Every version of every orchestrator, registered here or still run by an instance: what a
    /// rolling deploy needs to know before removing an old version's code (all unfinished
    /// instances are read, page by page).
    pub async fn versions(&self) -> Result<Vec<VersionUse>, DurableError> {
        let filter = ListFilter {
            statuses: vec![RuntimeStatus::Pending, RuntimeStatus::Running, RuntimeStatus::Suspended],
            ..ListFilter::default()
        };
        let mut counts: std::collections::BTreeMap<(String, String), u64> = Default::default();
        let mut token: Option<String> = None;
        loop {
            let (page, next) = self.list(&filter, Some(1000), token.as_deref()).await?;
            for s in page {
                *counts.entry((s.name, s.version.unwrap_or_default())).or_default() += 1;
            }
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        for (name, versions) in self.registry.orchestrator_versions() {
            for v in versions {
                counts.entry((name.clone(), v)).or_default();
            }
        }
        let mut out: Vec<VersionUse> = counts
            .into_iter()
            .map(|((name, version), in_flight)| {
                let registered = self
                    .registry
                    .has_orchestrator_version(&name, Some(&version).filter(|v| !v.is_empty()).map(String::as_str));
                let starts_new = self.registry.has_orchestrator(&name)
                    && self.registry.version_for_start(&name).unwrap_or_default() == version;
                VersionUse {
                    removable: !starts_new && in_flight == 0,
                    name,
                    version,
                    registered,
                    starts_new,
                    in_flight,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| super::registry::version_order(&a.version, &b.version)));
        Ok(out)
    }

    /// One page of instances matching `filter` (at most `top`), and the token of the next page.
    pub async fn list(
        &self,
        filter: &ListFilter,
        top: Option<u32>,
        continuation: Option<&str>,
    ) -> Result<(Vec<InstanceStatus>, Option<String>), DurableError> {
        let continuation = match continuation.filter(|t| !t.is_empty()) {
            Some(t) => Some(
                Continuation::from_token(t)
                    .ok_or_else(|| DurableError::BadRequest(format!("{t:?} is not a continuation token")))?,
            ),
            None => None,
        };
        match self.hub.store().list(filter, top, continuation.as_ref()).await {
            Ok((items, next)) => Ok((items, next.map(|c| c.to_token()))),
            Err(e) if e.is_not_found() => Ok((Vec::new(), None)),
            Err(e) => Err(e.into()),
        }
    }

    /// The status of an instance that must exist (400 for a bad id, 404 for an unknown one).
    async fn existing(&self, instance_id: &str) -> Result<InstanceStatus, DurableError> {
        validate_instance_id(instance_id)?;
        let found = self.hub.store().status(instance_id).await.map_err(|e| not_found_table(e, instance_id))?;
        Ok(found.ok_or_else(|| DurableError::no_instance(instance_id))?.0)
    }

    /// Checks the instance exists and has not finished.
    async fn running(&self, instance_id: &str, operation: &str) -> Result<InstanceStatus, DurableError> {
        let status = self.existing(instance_id).await?;
        if status.runtime_status.is_terminal() {
            return Err(DurableError::Gone {
                id: instance_id.to_owned(),
                status: format!("{:?}", status.runtime_status),
                operation: operation.to_owned(),
            });
        }
        Ok(status)
    }
}

/// A missing table means no instance has been started yet: not found, not a failure.
fn not_found_table(e: crate::storage::StorageError, instance_id: &str) -> DurableError {
    if e.is_not_found() { DurableError::no_instance(instance_id) } else { e.into() }
}
