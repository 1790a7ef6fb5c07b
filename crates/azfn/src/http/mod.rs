//! HTTP triggers and responses, in both of the host's protocols.

pub(crate) mod forward;
pub mod request;
pub(crate) mod response;

pub use request::{BodyError, HttpRequest, Identities};
pub use response::HttpResponse;
