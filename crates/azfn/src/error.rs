//! Error types: what a handler returns, and what the runtime reports.

use std::fmt;

/// The error type handlers return: any error that is `Send + Sync`.
///
/// Handlers may return `Result<_, E>` for any `E: Into<Error>`, so `?` works on most errors,
/// `anyhow::Error` included.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The one shape of every error answer azfn gives, from the runtime, the built-in host and the
/// management API alike: `{"error": {"kind": kind, "message": message}}`. `kind` is a short
/// snake_case word a client can match on; `message` says what was wrong and where.
///
/// ```
/// let body = azfn::error::error_json("not_found", "no order with id \"o-9\"");
/// assert_eq!(body["error"]["kind"], "not_found");
/// assert_eq!(body["error"]["message"], "no order with id \"o-9\"");
/// ```
pub fn error_json(kind: &str, message: impl fmt::Display) -> serde_json::Value {
    serde_json::json!({"error": {"kind": kind, "message": message.to_string()}})
}

/// The `kind` of an error answer with this HTTP status, for errors that have no better name.
pub fn kind_for_status(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 | 403 => "unauthorized",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        410 => "gone",
        412 => "precondition_failed",
        413 => "too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "too_many_requests",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    }
}

/// A trigger payload that does not fit the handler's trigger type.
///
/// The invocation fails with a non-2xx answer, so the host applies the trigger's retry rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindError {
    message: String,
}

impl BindError {
    /// A new error with `message`, which should say what was wrong and where.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BindError {}

/// An output value that cannot be sent to the named binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputError {
    message: String,
}

impl OutputError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self { message: message.into() }
    }
}

impl fmt::Display for OutputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OutputError {}

/// Why an invocation failed; each kind maps to the HTTP status the runtime answers the host with.
#[derive(Debug)]
pub(crate) enum InvocationError {
    /// The request body is not an invocation envelope (400).
    Envelope(String),
    /// No handler is registered under the name (404).
    UnknownFunction { name: String, known: Vec<String> },
    /// The trigger payload does not fit the handler's type (422).
    Bind { binding: String, trigger_type: String, error: BindError },
    /// The handler returned an error (500).
    Handler(Error),
    /// The handler panicked (500).
    Panic(String),
    /// The handler's outputs cannot be encoded for their bindings (500).
    Output(OutputError),
}

impl InvocationError {
    /// The HTTP status for the host.
    pub(crate) fn status(&self) -> http::StatusCode {
        use http::StatusCode as S;
        match self {
            Self::Envelope(_) => S::BAD_REQUEST,
            Self::UnknownFunction { .. } => S::NOT_FOUND,
            Self::Bind { .. } => S::UNPROCESSABLE_ENTITY,
            Self::Handler(_) | Self::Panic(_) | Self::Output(_) => S::INTERNAL_SERVER_ERROR,
        }
    }

    /// A short machine-readable name of the kind.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Envelope(_) => "invalid_envelope",
            Self::UnknownFunction { .. } => "unknown_function",
            Self::Bind { .. } => "trigger_mismatch",
            Self::Handler(_) => "handler_error",
            Self::Panic(_) => "handler_panic",
            Self::Output(_) => "invalid_output",
        }
    }
}

impl fmt::Display for InvocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Envelope(m) => {
                write!(f, "the request body is not an invocation ({{\"Data\": {{...}}, \"Metadata\": {{...}}}}): {m}")
            }
            Self::UnknownFunction { name, known } => {
                write!(f, "no function named `{name}`; this handler serves: {}", known.join(", "))
            }
            Self::Bind { binding, trigger_type, error } => {
                write!(f, "the {trigger_type} payload in Data.{binding} does not fit the handler: {error}")
            }
            Self::Handler(e) => {
                write!(f, "the handler failed: {e}")?;
                let mut source = e.source();
                while let Some(s) = source {
                    write!(f, ": {s}")?;
                    source = s.source();
                }
                Ok(())
            }
            Self::Panic(m) => write!(f, "the handler panicked: {m}"),
            Self::Output(e) => write!(f, "the handler's outputs are invalid: {e}"),
        }
    }
}

/// Why the custom handler cannot start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartupError {
    /// `FUNCTIONS_CUSTOMHANDLER_PORT` is missing or not a port number.
    Port(String),
    /// host.json or a function.json cannot be read.
    Metadata(crate::function_json::MetadataError),
    /// The registered handlers do not match the function.json files; one line per problem.
    Registration(Vec<String>),
    /// The listening socket cannot be opened.
    Bind(std::io::Error),
    /// An app setting the runtime reads is not valid; the message names it.
    Setting(String),
}

impl fmt::Display for StartupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Port(m) => f.write_str(m),
            Self::Metadata(e) => write!(f, "cannot load the app's metadata: {e}"),
            Self::Registration(problems) => {
                writeln!(f, "the registered handlers do not match the function.json files:")?;
                for p in problems {
                    writeln!(f, "  - {p}")?;
                }
                Ok(())
            }
            Self::Bind(e) => write!(f, "cannot listen: {e}"),
            Self::Setting(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for StartupError {}

impl From<crate::function_json::MetadataError> for StartupError {
    fn from(e: crate::function_json::MetadataError) -> Self {
        Self::Metadata(e)
    }
}

/// What kind of JSON value `v` is, for error messages: "null", "a boolean", "a number", "a string",
/// "an array" or "an object".
///
/// ```
/// assert_eq!(azfn::error::json_kind(&serde_json::json!([1])), "an array");
/// ```
pub fn json_kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
