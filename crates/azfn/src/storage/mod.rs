//! Azure Storage access, behind one module so the crates underneath can change
//! (see `docs/adr/0001-azure-crates.md`).
//!
//! - [`resolve`]: a connection setting (`AzureWebJobsStorage`, or a binding's `connection`) to
//!   service endpoints and a credential, in every form the Functions runtime accepts.
//! - [`QueueClient`], [`BlobClient`], [`TableClient`]: the REST operations azfn's tools need,
//!   authorized with Shared Key or a SAS (Azurite, connection strings), or with Entra ID tokens
//!   from the platform's managed identity endpoint for identity-based connections ([`ManagedIdentity`]).
//! - `memory` (feature `simulation`): the same clients over an account in memory, with injected
//!   faults, for the durable engine's deterministic simulation.

mod auth;
mod blob;
mod client;
mod connection;
#[cfg(feature = "simulation")]
pub mod memory;
mod queue;
mod retry;
mod table;
mod token;
mod xml;

pub use blob::{Blob, BlobClient, BlobItem};
pub use client::StorageError;
pub use connection::{ConnectionError, Credential, StorageAccount, resolve};
pub use queue::{QueueClient, ReceivedMessage};
pub use retry::RetryPolicy;
pub(crate) use table::is_forbidden_in_key;
pub use table::{Continuation, Entity, TableClient, TableOp, is_valid_key, odata_string};
pub use token::{AppCredential, AppProof, IdentityEndpoint, ManagedIdentity, STORAGE_RESOURCE, TokenSource};
