//! The built-in Functions host (issue 3, in progress): what `azfn start` uses to run an app without
//! Core Tools.
//!
//! - [`invocation`]: building invocation payloads exactly as the real host does.
//! - [`routes`]: HTTP route templates with constraints, 404 and 405.
//! - [`schedule`]: NCRONTAB and interval schedules for timer triggers.
//! - [`response`]: applying the handler's answer (outputs, `res`, logs) exactly as the real host does.

pub mod invocation;
pub mod response;
pub mod routes;
pub mod schedule;
