//! Build Azure Functions **custom handlers** in Rust.
//!
//! The Functions host starts your binary, gives it a port in `FUNCTIONS_CUSTOMHANDLER_PORT`, and POSTs
//! every invocation to `/{FunctionName}` as `{"Data": ..., "Metadata": ...}`. azfn turns those
//! payloads into typed triggers, runs your `async fn`, and answers with `{"Outputs", "Logs",
//! "ReturnValue"}` in exactly the form the host needs, so the host's quirks (double-encoded strings,
//! numbers as text, base64 blob content, the base64 attempt on output strings, 2xx-and-JSON-or-fail)
//! never reach your code.
//!
//! # Example
//!
//! `functions/Hello/function.json` declares the function for the host; the code registers its handler
//! under the same name, and [`run`] checks that the two match before it serves.
//!
//! ```no_run
//! use azfn::{App, Context, HttpRequest, HttpResponse, QueueMessage};
//!
//! async fn hello(req: HttpRequest, _ctx: Context) -> Result<HttpResponse, azfn::Error> {
//!     let name = req.query("name").unwrap_or("world");
//!     Ok(HttpResponse::ok().text(format!("Hello, {name}")))
//! }
//!
//! #[derive(serde::Deserialize)]
//! struct Order { id: String }
//!
//! async fn process(msg: QueueMessage<Order>, ctx: Context) -> Result<(), azfn::Error> {
//!     tracing::info!(order = %msg.body.id, "processing");
//!     ctx.write_blob_json("receipt", &serde_json::json!({"orderId": msg.body.id}))?;
//!     Ok(())
//! }
//!
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     azfn::run(App::new().function("Hello", hello).function("ProcessOrder", process)).await
//! }
//! ```
//!
//! # The parts
//!
//! - [`App`]: handlers registered by function name ([`App::function`], [`App::axum`]).
//! - [`triggers`]: one type per trigger ([`HttpRequest`], [`TimerInfo`], [`QueueMessage`],
//!   [`BlobInput`], [`ServiceBusMessage`], [`EventGridEvent`], [`RawTrigger`]).
//! - [`Context`]: the invocation id, metadata, and the output bindings (`send_json`, `write_blob`,
//!   `insert_entity`, ...). Handlers return `()`, [`HttpResponse`] or [`Return`].
//! - [`logs`]: `tracing` events inside a handler become the response's `Logs`.
//! - [`run`] / [`router`]: the server itself; [`cli::main`]: the app binary's entry point (it serves,
//!   and answers `cargo azfn`'s registration check).
//! - [`function_json`]: reading host.json and function.json.
//! - [`storage`]: storage connection settings (connection strings, Azurite, identity-based) and
//!   clients for blobs, queues and tables with timeouts and retries.
//! - [`durable`]: replay-based orchestrations on Azure Storage tables and queues.
//! - [`testing`]: unit-testing handlers without a host: triggers from host-shaped payloads, and the
//!   outputs a handler wrote, decoded.
//!
//! The developer tool, `cargo azfn` (crate `cargo-azfn`), creates apps and functions, runs them
//! locally under a built-in Functions host and packages them; none of it is linked into a handler.
//!
//! Failures never crash the process: a payload that does not fit the trigger type, a handler error
//! and a panic each become a non-2xx answer with a message, so the host's retry and poison rules apply.

pub mod app;
pub mod cli;
pub mod context;
pub mod durable;
pub mod encoding;
mod envelope;
pub mod error;
pub mod function_json;
pub mod http;
pub mod idempotency;
mod inline_wake;
pub mod logs;
pub mod metadata;
pub mod outputs;
pub mod schedule;
mod serve;
mod server;
pub mod storage;
pub mod telemetry;
pub mod testing;
pub mod triggers;

pub use app::App;
pub use context::Context;
pub use error::{BindError, Error, OutputError, StartupError};
pub use function_json::{AppMetadata, FunctionSpec};
pub use http::{HttpRequest, HttpResponse};
pub use metadata::{RetryContext, SysMetadata};
pub use outputs::{IntoOutputs, Return};
pub use server::{CustomHandler, HOST_PID_VAR, handler, router, run};
pub use triggers::{BlobInput, EventGridEvent, FromTrigger, QueueMessage, RawTrigger, ServiceBusMessage, TimerInfo};
