//! `CircuitBreaker`: a durable entity that guards a flaky dependency for every orchestration at once
//! (the distributed circuit breaker). `PlaceOrderSaga` asks it before `ChargePayment`.
//!
//! Closed, it allows every call and counts consecutive failures; after `threshold` of them it
//! opens: calls fail fast (`allow` answers `false`) until `coolDownSeconds` have passed; then it
//! lets one trial through (half-open): a success closes it, a failure opens it again.

use azfn::durable::EntityOp;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The breaker's settings, sent with `allow` (so that every caller can tune it without a deploy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Consecutive failures that open the breaker.
    pub threshold: u32,
    /// How long it stays open before it lets one trial through.
    pub cool_down_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { threshold: 3, cool_down_seconds: 30 }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Breaker {
    /// Consecutive failures while closed.
    pub failures: u32,
    /// When it opened; `None` while closed.
    pub opened_at: Option<DateTime<Utc>>,
    /// A trial call is under way (half-open).
    pub trial: bool,
    /// The settings of the last `allow`.
    pub settings: Settings,
}

impl Breaker {
    /// `closed`, `open` or `halfOpen`.
    pub fn state(&self) -> &'static str {
        match (self.opened_at, self.trial) {
            (None, _) => "closed",
            (Some(_), true) => "halfOpen",
            (Some(_), false) => "open",
        }
    }
}

/// Applies `allow` (input: optional [`Settings`]; answers whether the call may go ahead),
/// `success`, `failure` or `get` (answers `{state, failures}`).
pub fn circuit_breaker(b: &mut Breaker, op: &EntityOp) -> Result<Value, String> {
    match op.name.as_str() {
        "allow" => {
            if !op.value.is_null() {
                b.settings = op.input()?;
            }
            let allowed = match b.opened_at {
                None => true,
                Some(_) if b.trial => false,
                Some(at) => {
                    let cooled = op.now >= at + chrono::Duration::seconds(b.settings.cool_down_seconds as i64);
                    if cooled {
                        b.trial = true;
                    }
                    cooled
                }
            };
            Ok(json!(allowed))
        }
        "success" => {
            *b = Breaker { settings: b.settings, ..Breaker::default() };
            Ok(Value::Null)
        }
        "failure" => {
            if b.trial {
                b.trial = false;
                b.opened_at = Some(op.now);
            } else if b.opened_at.is_none() {
                b.failures += 1;
                if b.failures >= b.settings.threshold {
                    b.opened_at = Some(op.now);
                }
            }
            Ok(Value::Null)
        }
        "get" => Ok(json!({"state": b.state(), "failures": b.failures})),
        other => Err(format!("CircuitBreaker has no operation `{other}` (allow, success, failure, get, delete)")),
    }
}
