//! Logging: `tracing` events inside a handler go into the response's `Logs`.
//!
//! The host writes each `Logs` line to the function's log (category `Function.<Name>.User`) at
//! Information level, after the invocation returns, and only for 2xx answers. So each line carries
//! its level as a prefix and the invocation id; `ERROR` events are also written to stderr, which the
//! host logs at Error level as they happen. When an invocation fails, the runtime prints the lines it
//! captured to stdout, so that they are not lost with the ignored body.
//!
//! Events outside an invocation go to stdout (`INFO` and below) or stderr (`WARN`, `ERROR`; the host
//! logs stderr lines containing "warn" as warnings and the others as errors), and so do events in an
//! invocation's span after it answered (a task the handler left running, such as a started
//! orchestration's first steps).
//!
//! While traces are exported (see [`telemetry`](crate::telemetry)), a line written inside an
//! invocation ends with its trace id: `[invocation 3f2a…, trace 4bf92f…]`.
//!
//! [`run`](crate::run) installs this layer with an `EnvFilter` read from `RUST_LOG` (default
//! `info`), and the OpenTelemetry layer when exporting. To compose your own subscriber, add
//! [`layer()`] and [`telemetry::layer()`](crate::telemetry::layer) to it.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// The name of the span the runtime opens around each invocation.
pub(crate) const SPAN_NAME: &str = "azfn.invocation";

thread_local! {
    /// The invocation whose span this thread is about to open: the layer's `on_new_span` runs
    /// synchronously inside the span macro, on the same thread, and takes it from here.
    static NEXT_INVOCATION: RefCell<Option<crate::Context>> = const { RefCell::new(None) };
}

/// Hands an invocation's context to the next invocation span opened on this thread; the layer keeps
/// it in the span and adds the events inside the span to the context's log lines.
#[derive(Debug)]
pub(crate) struct Capture(());

impl Capture {
    /// Call right before opening the `azfn.invocation` span, on the same thread.
    pub(crate) fn begin(ctx: &crate::Context) -> Self {
        NEXT_INVOCATION.with(|next| *next.borrow_mut() = Some(ctx.clone()));
        Self(())
    }

    /// Call right after opening the span: clears the hand-off if no layer claimed it.
    pub(crate) fn opened(self) {
        NEXT_INVOCATION.with(|next| next.borrow_mut().take());
    }
}

/// The layer that routes events to invocation logs, stdout and stderr (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct CaptureLayer {
    _private: (),
}

/// The azfn log layer, to add to a subscriber of your own.
pub fn layer() -> CaptureLayer {
    CaptureLayer::default()
}

/// Installs the azfn subscriber: [`layer()`] with `RUST_LOG` filtering (default `info`), and the
/// OpenTelemetry layer when the environment asks for exporting (call it inside the Tokio runtime).
/// Does nothing when a global subscriber is already set.
pub fn init() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    if tracing::dispatcher::has_been_set() {
        return;
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Without export, no OpenTelemetry layer at all (not even an empty one in the stack).
    let _ = match crate::telemetry::layer() {
        Some(telemetry) => tracing_subscriber::registry().with(telemetry).with(filter).with(layer()).try_init(),
        None => tracing_subscriber::registry().with(filter).with(layer()).try_init(),
    };
}

/// A span's trace id, kept by the layer once the span records its `azfn.trace_id` field.
struct TraceTag(String);

/// Reads the `azfn.trace_id` field of a span record.
#[derive(Default)]
struct TraceIdVisitor(Option<String>);

impl Visit for TraceIdVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == crate::telemetry::TRACE_ID_FIELD {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == crate::telemetry::TRACE_ID_FIELD {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

/// Renders an event as `message key=value ...`.
#[derive(Default)]
struct LineVisitor {
    message: String,
    fields: String,
}

impl Visit for LineVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

fn level_name(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

impl<S> Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != SPAN_NAME {
            return;
        }
        let invocation = NEXT_INVOCATION.with(|next| next.borrow_mut().take());
        if let (Some(invocation), Some(span)) = (invocation, ctx.span(id)) {
            span.extensions_mut().insert(invocation);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut visitor = TraceIdVisitor::default();
        values.record(&mut visitor);
        if let (Some(trace), Some(span)) = (visitor.0, ctx.span(id)) {
            span.extensions_mut().insert(TraceTag(trace));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = LineVisitor::default();
        event.record(&mut line);
        let level = level_name(meta.level());
        let mut invocation = None;
        let mut trace = String::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                let extensions = span.extensions();
                if invocation.is_none() {
                    invocation = extensions.get::<crate::Context>().cloned();
                }
                if trace.is_empty()
                    && let Some(TraceTag(id)) = extensions.get::<TraceTag>()
                {
                    trace = id.clone();
                }
                // The trace id is looked for only while exporting; otherwise the walk ends at the
                // invocation, as it always did.
                if invocation.is_some() && (!trace.is_empty() || !crate::telemetry::enabled()) {
                    break;
                }
            }
        }
        match invocation {
            Some(inv) => {
                let tag = if trace.is_empty() { String::new() } else { format!(", trace {trace}") };
                let text = format!("{level} {}{} [invocation {}{tag}]", line.message, line.fields, inv.invocation_id());
                if *meta.level() == Level::ERROR {
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "{level} {}: {}{} [invocation {}{tag}]",
                        inv.function_name(),
                        line.message,
                        line.fields,
                        inv.invocation_id()
                    );
                }
                // After the invocation answered (a task it left running), the line goes to the
                // process's output, as an event outside an invocation does.
                if let Err(text) = inv.push_log(text)
                    && *meta.level() != Level::ERROR
                {
                    write_outside(meta.level(), &format!("{}: {text}", inv.function_name()));
                }
            }
            None => {
                let tag = if trace.is_empty() { String::new() } else { format!(" [trace {trace}]") };
                let text = format!("{level} {}: {}{}{tag}", meta.target(), line.message, line.fields);
                write_outside(meta.level(), &text);
            }
        }
    }
}

/// Writes a line that no invocation takes: `WARN` and `ERROR` to stderr, the rest to stdout.
fn write_outside(level: &Level, text: &str) {
    if *level <= Level::WARN {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    } else {
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt as _;

    /// The context of an invocation `id` of an HTTP function `Hello`.
    fn hello_invocation(id: &str) -> crate::Context {
        let spec = crate::FunctionSpec::parse(
            "Hello",
            "Hello/function.json".as_ref(),
            r#"{"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req"}]}"#,
        )
        .unwrap();
        crate::Context::new(spec, id)
    }

    #[test]
    fn events_in_the_invocation_span_are_captured_with_level_and_id() {
        let subscriber = tracing_subscriber::registry().with(layer());
        tracing::subscriber::with_default(subscriber, || {
            let invocation = hello_invocation("inv-1");
            let capture = Capture::begin(&invocation);
            let span = tracing::error_span!(SPAN_NAME);
            capture.opened();
            span.in_scope(|| {
                tracing::info!(name = "Ada", "greeting");
                let _inner = tracing::info_span!("inner").entered();
                tracing::warn!("careful");
            });
            tracing::info!("outside");
            let lines = invocation.take_logs();
            assert_eq!(lines, ["INFO greeting name=Ada [invocation inv-1]", "WARN careful [invocation inv-1]"]);
        });
    }

    #[test]
    fn lines_logged_after_the_answer_go_to_the_process_output() {
        let subscriber = tracing_subscriber::registry().with(layer());
        tracing::subscriber::with_default(subscriber, || {
            let invocation = hello_invocation("inv-3");
            let capture = Capture::begin(&invocation);
            let span = tracing::error_span!(SPAN_NAME);
            capture.opened();
            span.in_scope(|| tracing::info!("in time"));
            assert_eq!(invocation.take_logs(), ["INFO in time [invocation inv-3]"]);
            // A task the handler left running logs after the response was built.
            span.in_scope(|| tracing::info!("late"));
            assert!(invocation.take_logs().is_empty());
            assert_eq!(invocation.push_log("x".into()), Err("x".into()), "no longer collected");
        });
    }

    #[test]
    fn a_span_that_records_its_trace_id_tags_the_lines_inside_it() {
        let subscriber = tracing_subscriber::registry().with(layer());
        tracing::subscriber::with_default(subscriber, || {
            let invocation = hello_invocation("inv-2");
            let capture = Capture::begin(&invocation);
            let span = tracing::error_span!(SPAN_NAME, azfn.trace_id = tracing::field::Empty);
            capture.opened();
            // What `telemetry::continue_trace` records when exporting.
            span.record(crate::telemetry::TRACE_ID_FIELD, tracing::field::display("4bf92f3577b34da6a3ce929d0e0e4736"));
            span.in_scope(|| {
                let _episode = tracing::error_span!("azfn.orchestration").entered();
                tracing::info!("inside");
            });
            assert_eq!(
                invocation.take_logs(),
                ["INFO inside [invocation inv-2, trace 4bf92f3577b34da6a3ce929d0e0e4736]"]
            );
        });
    }
}
