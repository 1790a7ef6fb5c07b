//! What can go wrong when starting, querying or driving an orchestration.

use crate::storage::StorageError;

/// An error from the durable engine or its client; the management API maps each kind to a status.
#[derive(Debug, thiserror::Error)]
pub enum DurableError {
    /// A storage request failed.
    #[error("{0}")]
    Storage(#[from] StorageError),
    /// The request was malformed: a bad instance id, an unknown orchestrator, unreadable input (400).
    #[error("{0}")]
    BadRequest(String),
    /// No such instance or orchestrator (404).
    #[error("{0}")]
    NotFound(String),
    /// The instance has finished, so the operation no longer applies (410).
    #[error("instance `{id}` has already finished ({status}); {operation} no longer applies")]
    Gone {
        /// The instance.
        id: String,
        /// Its final runtime status.
        status: String,
        /// What was asked.
        operation: String,
    },
    /// The operation conflicts with the instance's state, e.g. starting an id that is running (409).
    #[error("{0}")]
    Conflict(String),
    /// The storage connection is missing or not usable by this build.
    #[error("{0}")]
    Setup(String),
    /// This worker cannot run the work, and another may: its registry lacks the orchestrator,
    /// activity or entity, or its code does not replay the instance's history (a rolling deploy
    /// runs old and new workers side by side). The work is left for another worker (503).
    #[error("{0}")]
    Elsewhere(String),
    /// Other workers kept winning the ETag race for the same instance or entity (a hot entity, a
    /// wide fan-in on many workers): the message is sent again to come back a little later (503).
    #[error("{0}")]
    Contended(String),
}

impl DurableError {
    /// The error for an unknown instance id.
    pub fn no_instance(instance_id: &str) -> Self {
        DurableError::NotFound(format!("no orchestration instance has the id `{instance_id}`"))
    }

    /// The HTTP status the management API answers with.
    pub fn status(&self) -> u16 {
        match self {
            DurableError::BadRequest(_) => 400,
            DurableError::NotFound(_) => 404,
            DurableError::Conflict(_) => 409,
            DurableError::Gone { .. } => 410,
            DurableError::Storage(_) | DurableError::Setup(_) => 500,
            DurableError::Elsewhere(_) | DurableError::Contended(_) => 503,
        }
    }
}

/// Checks an instance id: 1 to 256 characters, none of `/ \ # ?` (not allowed in table keys) and
/// no control characters.
///
/// ```
/// use azfn::durable::validate_instance_id;
/// assert!(validate_instance_id("order-42:0001").is_ok());
/// assert!(validate_instance_id("a/b").is_err());
/// assert!(validate_instance_id("").is_err());
/// assert!(validate_instance_id("line\u{2028}separator").is_err());
/// ```
pub fn validate_instance_id(id: &str) -> Result<(), DurableError> {
    let len = id.chars().count();
    if len == 0 || len > 256 {
        return Err(DurableError::BadRequest(format!(
            "an instance id must be 1 to 256 characters long; this one has {len}"
        )));
    }
    // The id is the instance's table partition key.
    if let Some(c) = id.chars().find(|c| crate::storage::is_forbidden_in_key(*c)) {
        return Err(DurableError::BadRequest(format!(
            "instance id {id:?} contains {c:?}; ids cannot contain `/`, `\\`, `#`, `?`, control characters or line separators"
        )));
    }
    Ok(())
}
