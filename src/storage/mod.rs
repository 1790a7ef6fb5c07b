//! Azure Storage access, behind one module so the crates underneath can change
//! (see `docs/adr/0001-azure-crates.md`).
//!
//! Today: resolving a connection setting (`AzureWebJobsStorage`, or a binding's `connection`) to
//! service endpoints and a credential, in every form the Functions runtime accepts.

mod connection;

pub use connection::{ConnectionError, Credential, StorageAccount, resolve};
