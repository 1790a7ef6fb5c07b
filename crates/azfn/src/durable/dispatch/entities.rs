//! Entity operations on a worker: each entity's waiting operations are applied together in one
//! ETag-guarded write of its row, and what they produced is sent after the write.
//!
//! Operations for one entity that arrive while its row is being written wait for the entity's lock
//! in this process; whoever takes the lock next applies all that waited (up to
//! [`MAX_ENTITY_BATCH`]) in one write, and tells the others how it went. A hot entity on W workers
//! therefore costs about one read and one write per batch, not per operation (Durable Functions
//! batches an entity's queued operations the same way).

use tracing::Instrument as _;

use super::{Dispatcher, Held, MAX_ATTEMPTS, Told, Turn, turn};
use crate::durable::clock;
use crate::durable::entity::{EntityFn, EntityId, EntityRequest, EntityRow, Outcome, Outgoing, Reply};
use crate::durable::error::DurableError;
use crate::durable::history::Event;
use crate::durable::messages::ControlMessage;
use crate::telemetry;

/// Operations applied to one entity in one write at most.
pub(crate) const MAX_ENTITY_BATCH: usize = 100;

/// An entity operation waiting to be applied with others in one write, and where its outcome goes.
pub(super) struct EntityWaiting {
    request: EntityRequest,
    done: tokio::sync::oneshot::Sender<Result<(), Told>>,
}

impl Dispatcher {
    /// Applies an operation to an entity under the entity's ETag (reloading after a lost race),
    /// with the other operations for it waiting in this process, then sends what they produced
    /// (replies, signals, a lock passed on). The messages are stored in the row with the write, and
    /// a process that finds them there unsent sends them before its own write: a crash after a
    /// write loses nothing. A redelivered operation changes nothing.
    pub(super) async fn entity_message(&self, instance_id: &str, request: EntityRequest) -> Result<(), DurableError> {
        let span = telemetry::entity_span(instance_id, &request.operation);
        self.apply_entity_request(instance_id, request).instrument(span).await
    }

    /// [`entity_message`](Self::entity_message), inside the operation's span.
    async fn apply_entity_request(&self, instance_id: &str, mut request: EntityRequest) -> Result<(), DurableError> {
        let entity = EntityId::from_instance_id(instance_id)
            .ok_or_else(|| DurableError::BadRequest(format!("{instance_id:?} is not an entity id (@name@key)")))?;
        self.hub.resolve(&mut request.input).await?;
        let code = match self.registry.entity_code(&entity.name) {
            Ok(code) => Some(code.clone()),
            // Locks need no code, and an orchestration's operation goes through the row (which
            // answers it with the error) so that its sequence number is used up; a client's
            // signal to an unknown entity is dropped without a row.
            Err(_) if request.runs_without_code() => None,
            Err(e) => {
                match request.caller {
                    Some(caller) => self.reply(Reply { caller, result: Err(e) }).await?,
                    None => tracing::warn!(entity = %entity, "a signal `{}` was dropped: {e}", request.operation),
                }
                return Ok(());
            }
        };
        // One write at a time per entity in this process; the ETag covers other processes.
        let slot = self.cache.lock().expect("cache lock").slot(instance_id);
        let (done, mut outcome) = tokio::sync::oneshot::channel();
        slot.entity_waiting.lock().expect("waiting lock").push(EntityWaiting { request, done });
        let mut held = match turn(&slot, &mut outcome).await {
            Turn::Told(told) => return told,
            Turn::Lock(held) => held,
        };
        // Whoever takes the lock applies every operation waiting, so none is left waiting.
        let batch: Vec<EntityWaiting> = {
            let mut waiting = slot.entity_waiting.lock().expect("waiting lock");
            let n = waiting.len().min(MAX_ENTITY_BATCH);
            waiting.drain(..n).collect()
        };
        if !batch.is_empty() {
            let requests: Vec<EntityRequest> = batch.iter().map(|w| w.request.clone()).collect();
            let result = self.write_entity(&mut held, &entity, code.as_ref(), &requests).await;
            let told = Told::of(&result);
            for w in batch {
                let _ = w.done.send(told.clone());
            }
        }
        drop(held);
        Told::answer(outcome.await)
    }

    /// Applies `requests` (in order) to the entity's row in one write, retrying lost ETag races
    /// after a short random pause, then sends what they produced.
    async fn write_entity(
        &self,
        held: &mut Held,
        entity: &EntityId,
        code: Option<&EntityFn>,
        requests: &[EntityRequest],
    ) -> Result<(), DurableError> {
        let instance_id = entity.instance_id();
        for attempt in 0..MAX_ATTEMPTS {
            if attempt > 0 {
                // Other workers write the same row: meet them less often.
                tokio::time::sleep(clock::jitter(std::time::Duration::from_millis(5 * attempt as u64))).await;
            }
            let (mut row, etag) = match self.hub.store().load_entity(&instance_id).await? {
                Some((row, etag)) => (row, Some(etag)),
                None => (EntityRow::default(), None),
            };
            // What the last write left to send and this process has not sent: sent before this
            // write drops it from the row.
            let leftover: Vec<Outgoing> =
                std::mem::take(&mut row.outbox).into_iter().filter(|m| !held.entity_sent.contains(&m.key())).collect();
            if !leftover.is_empty() {
                let (sent, result) = self.send_outgoing(leftover).await;
                held.entity_sent.extend(sent);
                result?;
            }
            // A large state lives in a blob (the row holds 1 MiB): read it back to apply the
            // operations; written again only if they change it.
            let stored_state = row.state.clone();
            if let Some(state) = row.state.as_mut() {
                self.hub.resolve(state).await?;
            }
            let state_before = row.state.clone();
            let now = self.hub.now();
            let mut out = Outcome::default();
            for request in requests {
                let one = row.apply(code, entity, request.clone(), now);
                out.changed |= one.changed;
                out.outgoing.extend(one.outgoing);
                out.failed_signals.extend(one.failed_signals);
            }
            if out.changed {
                for m in out.outgoing.iter_mut() {
                    if let Outgoing::Entity { entity, request, .. } = m {
                        self.hub.offload(entity, &mut request.input).await?;
                    }
                }
                row.outbox = out.outgoing.clone();
                let state_changed = row.state != state_before;
                match (&mut row.state, state_changed) {
                    (Some(state), true) => self.hub.offload(&instance_id, state).await?,
                    // Deleted: no state, no blob.
                    (None, true) => {}
                    (_, false) => row.state.clone_from(&stored_state),
                }
                // The blob of a state replaced by this write, or of this write's own state if it
                // does not land: deleted once it is no longer referenced (best effort).
                let new_blob = row.state.clone().filter(|_| state_changed);
                match self.hub.store().save_entity(&instance_id, &row, etag.as_deref()).await {
                    Ok(_) => {
                        held.entity_sent.clear();
                        if state_changed && let Some(old) = &stored_state {
                            self.forget_blob(old).await;
                        }
                    }
                    // Someone else wrote first, or this write's answer was lost and a retry met
                    // it: read again (the operations then show as applied, and are answered).
                    Err(e) if e.is_conflict() || e.is_precondition_failed() => {
                        // (A write whose answer was lost may have landed: its blob is kept.)
                        if let Some(new) = new_blob.filter(|_| !e.ambiguous) {
                            self.forget_blob(&new).await;
                        }
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            for failed in out.failed_signals {
                tracing::warn!(entity = %entity, "{failed}");
            }
            let (sent, result) = self.send_outgoing(out.outgoing).await;
            held.entity_sent.extend(sent);
            return result;
        }
        Err(DurableError::Contended(format!(
            "entity {entity}: other workers kept writing first; the operations will be retried"
        )))
    }

    /// Deletes the blob an entity's former state was offloaded to, if it was (best effort: a
    /// blob left behind costs storage, nothing else).
    async fn forget_blob(&self, state: &serde_json::Value) {
        if let Err(e) = self.hub.delete_referenced(state).await {
            tracing::debug!("an entity's former state blob was not deleted: {e}");
        }
    }

    /// Sends an entity's messages: results to orchestrations (applied in place when possible),
    /// requests to entities through the control queue. Gives the keys of those sent, and the
    /// first error.
    async fn send_outgoing(&self, messages: Vec<Outgoing>) -> (Vec<String>, Result<(), DurableError>) {
        let mut sent = Vec::new();
        let mut first_error = None;
        for m in messages {
            let key = m.key();
            let result = match m {
                Outgoing::Orchestration(reply) => self.reply(reply).await,
                Outgoing::Entity { entity, request, fire_at } => {
                    self.hub.send_control(&ControlMessage::entity(&entity, request, fire_at), self.hub.now()).await
                }
            };
            match result {
                Ok(()) => sent.push(key),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        (sent, first_error.map_or(Ok(()), Err))
    }

    /// Gives an entity operation's result to the orchestration that called it (in place when it
    /// can, else through the control queue).
    async fn reply(&self, reply: Reply) -> Result<(), DurableError> {
        let Reply { caller, result } = reply;
        let event = match result {
            Ok(result) => Event::TaskCompleted { id: caller.task_id, result },
            Err(error) => Event::TaskFailed { id: caller.task_id, error },
        };
        let msg = ControlMessage::event(&caller.instance_id, Some(&caller.execution_id), event);
        // As a possible redelivery: a reply sent again (after a crash, or a lost send) may find the
        // orchestration already past it, with its own messages from then still to send. No local
        // chain: no held message would cover it.
        self.apply_or_send(msg, true, None).await.map(|_| ())
    }
}
