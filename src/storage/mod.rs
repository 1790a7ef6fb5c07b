//! Azure Storage access, behind one module so the crates underneath can change
//! (see `docs/adr/0001-azure-crates.md`).
//!
//! - [`resolve`]: a connection setting (`AzureWebJobsStorage`, or a binding's `connection`) to
//!   service endpoints and a credential, in every form the Functions runtime accepts.
//! - [`QueueClient`], [`BlobClient`], [`TableClient`]: the REST operations azfn's tools need,
//!   authorized with Shared Key or a SAS (Azurite, connection strings). Entra ID tokens for
//!   identity-based connections are the next step (ADR 0001).

mod auth;
mod blob;
mod client;
mod connection;
mod queue;
mod table;
mod xml;

pub use blob::{Blob, BlobClient, BlobItem};
pub use client::StorageError;
pub use connection::{ConnectionError, Credential, StorageAccount, resolve};
pub use queue::{QueueClient, ReceivedMessage};
pub use table::{Continuation, Entity, TableClient, TableOp, odata_string};
