//! `cargo azfn`: the developer tool for Azure Functions custom handlers built with [`azfn`].
//!
//! | command | what it does | module |
//! |---|---|---|
//! | `cargo azfn init <dir>` | a new app from nothing | [`init`] |
//! | `cargo azfn new <kind> <Name>` | a function, orchestrator or activity added to the app | [`scaffold`] |
//! | `cargo azfn start [--watch]` | build, then run under Core Tools or the built-in host | [`host`], [`cargo_build`] |
//! | `cargo azfn invoke <Function>` | one function run through the running host | [`invoke`] |
//! | `cargo azfn package` | the app laid out (and zipped) for deployment, glibc checked | [`package`], [`glibc`] |
//!
//! The tools these commands need besides Cargo (Azurite, Zig and cargo-zigbuild) are installed on
//! first use, pinned, into a per-user cache ([`tool_cache`]).
//!
//! None of this is linked into a deployed handler: the handler links only the `azfn` runtime, and
//! this tool talks to it as the Functions host does (a process, a port, HTTP), plus one command of
//! its own, `<handler> check` (see `azfn::cli`).

pub mod cargo_build;
pub mod cli;
pub mod cross;
pub mod glibc;
pub mod host;
pub mod init;
pub mod invoke;
pub mod package;
pub mod scaffold;
pub mod tool_cache;
