//! Undoing the host's value encodings.
//!
//! The Functions host converts every binding value before it sends it to a custom handler
//! (`ScriptInvocationContextExtensions.GetHttpScriptInvocationContextValue` in
//! Azure/azure-functions-host): strings, numbers and booleans are passed through
//! `JsonConvert.SerializeObject`, so the string `hi` arrives as the JSON string `"\"hi\""` and the
//! number `4` as `"4"`; byte arrays arrive as base64; objects stay objects. These helpers take such a
//! value back to what the host had, and accept the plain forms too, because the docs' examples and
//! older hosts send them.

use std::borrow::Cow;

use base64::Engine as _;
use serde_json::Value;

/// The text a host string stands for: one JSON-string layer is removed when present.
///
/// `"\"HelloWorld\""` (the host's form) gives `HelloWorld`; `HelloWorld` (the docs' form) stays as it is.
pub fn unwrap_text(s: &str) -> Cow<'_, str> {
    let trimmed = s.trim();
    if trimmed.len() >= 2
        && trimmed.starts_with('"')
        && trimmed.ends_with('"')
        && let Ok(inner) = serde_json::from_str::<String>(trimmed)
    {
        return Cow::Owned(inner);
    }
    Cow::Borrowed(s)
}

/// A JSON string read without copying when it has no escapes (serde's own `Cow<str>` always copies
/// outside a `#[serde(borrow)]` field, e.g. as a map key).
pub(crate) struct BorrowedText<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for BorrowedText<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = BorrowedText<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(BorrowedText(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BorrowedText(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BorrowedText(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

/// A scalar value as text: strings are unwrapped, numbers and booleans printed; objects, arrays and null give `None`.
pub fn value_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(unwrap_text(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        _ => None,
    }
}

/// A value that carries JSON: objects and arrays are taken as they are, strings are unwrapped and parsed.
pub fn value_json(v: &Value) -> Result<Cow<'_, Value>, serde_json::Error> {
    match v {
        Value::String(s) => serde_json::from_str(&unwrap_text(s)).map(Cow::Owned),
        other => Ok(Cow::Borrowed(other)),
    }
}

/// Deserializes `T` from message text: as JSON first, then as a JSON string holding the text,
/// so that `String` bodies accept any text and typed bodies report the JSON error.
pub fn text_to<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, serde_json::Error> {
    match serde_json::from_str::<T>(text) {
        Ok(v) => Ok(v),
        Err(json_err) => serde_json::from_value::<T>(Value::String(text.to_owned())).map_err(|_| json_err),
    }
}

/// The standard base64 engine the host uses (`Convert.ToBase64String`).
pub const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Decodes base64 as .NET's `Convert.FromBase64String` would, or gives `None`.
pub fn decode_base64(s: &str) -> Option<Vec<u8>> {
    BASE64.decode(s.trim()).ok()
}

/// Encodes bytes as base64.
pub fn encode_base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Decodes `%XX` escapes (a `%` not followed by two hex digits stays as it is); bytes that are not
/// UTF-8 become U+FFFD.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes every byte but the unreserved ones of RFC 3986 (letters, digits, `-_.~`) and
/// those in `keep`.
pub fn percent_encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unwraps_one_layer_only() {
        // host-test-default-invocation.request.json: "myqueueItem": "\"HelloWorld\""
        assert_eq!(unwrap_text("\"HelloWorld\""), "HelloWorld");
        assert_eq!(unwrap_text("HelloWorld"), "HelloWorld");
        assert_eq!(unwrap_text("\"\\\"x\\\"\""), "\"x\"");
        // A string that only looks quoted but is not valid JSON stays as it is.
        assert_eq!(unwrap_text("\"a\" and \"b\""), "\"a\" and \"b\"");
    }

    #[test]
    fn scalars_become_text() {
        assert_eq!(value_text(&json!("4")).unwrap(), "4");
        assert_eq!(value_text(&json!(4)).unwrap(), "4");
        assert_eq!(value_text(&json!(true)).unwrap(), "true");
        assert!(value_text(&json!({})).is_none());
    }

    #[test]
    fn json_from_double_encoded_string() {
        // derived-queue-trigger.request.json
        let v = json!("\"{\\\"orderId\\\":42,\\\"note\\\":\\\"hi\\\"}\"");
        assert_eq!(value_json(&v).unwrap().as_ref(), &json!({"orderId": 42, "note": "hi"}));
        assert_eq!(value_json(&json!({"a": 1})).unwrap().as_ref(), &json!({"a": 1}));
    }

    #[test]
    fn text_to_prefers_json_and_falls_back_to_string() {
        assert_eq!(text_to::<String>("plain words").unwrap(), "plain words");
        assert_eq!(text_to::<String>("\"quoted\"").unwrap(), "quoted");
        assert_eq!(text_to::<String>("42").unwrap(), "42");
        assert_eq!(text_to::<u32>("42").unwrap(), 42);
        let err = text_to::<u32>("forty").unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
    }
}
