//! One invocation through the built-in host: read the input bindings, POST the invocation to the
//! handler, apply its answer as the real host does, write the outputs, and log a console line.

use std::sync::Arc;
use std::time::Instant;

use super::bindings::Bindings;
use super::console::Console;
use super::invocation::Invocation;
use super::response::{Applied, apply};
use super::worker::Worker;
use crate::function_json::{AppMetadata, FunctionSpec};

/// Runs invocations of the app's functions.
#[derive(Debug)]
pub struct Invoker {
    /// The app's host.json and function.json files.
    pub meta: AppMetadata,
    /// Storage for inputs and outputs.
    pub bindings: Arc<Bindings>,
    /// The handler process.
    pub worker: Arc<Worker>,
    /// Where console lines go.
    pub console: Console,
}

impl Invoker {
    /// The function's metadata, or an error naming the known functions.
    pub fn spec(&self, function: &str) -> Result<&FunctionSpec, String> {
        self.meta.functions.get(function).ok_or_else(|| {
            format!(
                "no function named {function:?}; the app has: {}",
                self.meta.functions.keys().cloned().collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// Runs `inv` for `function` (triggered by `trigger`, for the console line).
    pub async fn invoke(&self, function: &str, trigger: &str, mut inv: Invocation) -> Result<Applied, String> {
        let id = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let result = match self.spec(function) {
            Ok(spec) => self.run(spec, &id, &mut inv).await,
            Err(e) => Err(e),
        };
        let outcome = result.as_ref().map(|_| ()).map_err(String::as_str);
        self.console.invocation(function, trigger, &id, started.elapsed(), outcome);
        result
    }

    async fn run(&self, spec: &FunctionSpec, id: &str, inv: &mut Invocation) -> Result<Applied, String> {
        self.bindings.read_inputs(spec, inv).await?;
        let body = serde_json::to_vec(&inv.to_json()).map_err(|e| e.to_string())?;
        let (status, content_type, answer) = self.worker.invoke(&spec.name, id, body).await?;
        let applied = match apply(spec, &inv.metadata, status, content_type.as_deref(), &answer) {
            Ok(a) => a,
            Err(e) => {
                // The runtime puts the error (and the captured logs) in a failed answer's body.
                let detail = String::from_utf8_lossy(&answer);
                let detail = detail.trim();
                return Err(if detail.is_empty() {
                    e
                } else {
                    format!("{e}: {}", detail.chars().take(2000).collect::<String>())
                });
            }
        };
        self.console.logs(&spec.name, &applied.logs);
        for w in &applied.writes {
            self.bindings.write(spec, w).await.map_err(|e| format!("writing outputs: {e}"))?;
        }
        Ok(applied)
    }
}
