//! Blob trigger (`blobTrigger`).

use std::collections::BTreeMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::{FromTrigger, TriggerInput, parse_time};
use crate::encoding::{decode_base64, unwrap_text};
use crate::error::BindError;

/// A blob that triggered the function: its bytes and what the host tells about it.
///
/// The host sends blob content as base64 (the trigger value is a `byte[]`), which this type decodes.
/// The blob's path itself is not sent (its `BlobTrigger` key is dropped because it ends in "trigger"),
/// so the `{name}`-style parameters of the binding's `path` pattern are the way to know which blob it is.
///
/// ```
/// # use azfn::BlobInput;
/// async fn audit(blob: BlobInput, _ctx: azfn::Context) -> Result<(), azfn::Error> {
///     let name = blob.param("name").unwrap_or_default();
///     tracing::info!(%name, bytes = blob.content.len(), "new blob");
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BlobInput {
    /// The blob's content.
    pub content: Bytes,
    /// The blob's URI.
    pub uri: Option<String>,
    /// The blob's properties.
    pub properties: Option<BlobProperties>,
    /// The blob's user metadata.
    pub metadata: BTreeMap<String, String>,
    /// The values of the path pattern's parameters, e.g. `name` for `receipts/{name}`.
    pub params: BTreeMap<String, String>,
}

impl BlobInput {
    /// A path pattern parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }

    /// The content as UTF-8 text.
    pub fn text(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.content)
    }

    /// The content parsed as JSON.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.content)
    }
}

/// The blob properties the host sends (Azure.Storage.Blobs' `BlobProperties`), with the common fields typed.
#[derive(Debug, Clone, PartialEq)]
pub struct BlobProperties {
    /// `ContentLength`.
    pub content_length: Option<u64>,
    /// `ContentType`.
    pub content_type: Option<String>,
    /// `LastModified`.
    pub last_modified: Option<DateTime<Utc>>,
    /// `CreatedOn`.
    pub created_on: Option<DateTime<Utc>>,
    /// `BlobType`.
    pub blob_type: Option<String>,
    /// The whole object as sent.
    pub raw: Value,
}

impl BlobProperties {
    fn from_value(raw: Value) -> Self {
        let text = |k: &str| match raw.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        Self {
            content_length: text("ContentLength").and_then(|s| s.parse().ok()),
            content_type: text("ContentType"),
            last_modified: text("LastModified").and_then(|s| parse_time(&s)),
            created_on: text("CreatedOn").and_then(|s| parse_time(&s)),
            blob_type: text("BlobType"),
            raw,
        }
    }
}

/// The names of the `{parameters}` of a blob path pattern such as `receipts/{name}.{ext}`.
pub(crate) fn pattern_params(pattern: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else { break };
        let name = &after[..end];
        if !name.is_empty() {
            names.push(name.to_owned());
        }
        rest = &after[end + 1..];
    }
    names
}

impl FromTrigger for BlobInput {
    const TRIGGER_TYPE: Option<&'static str> = Some("blobTrigger");

    fn from_trigger(input: &TriggerInput<'_>) -> Result<Self, BindError> {
        let value = input.require_value()?;
        let Value::String(s) = &value else {
            return Err(BindError::new(format!(
                "the blob content should be a base64 string, got {}",
                crate::error::json_kind(&value)
            )));
        };
        let as_text = input.binding.data_type.as_deref().is_some_and(|d| d.eq_ignore_ascii_case("string"));
        let content = if as_text {
            Bytes::from(unwrap_text(s).into_owned())
        } else {
            match decode_base64(s) {
                Some(bytes) => Bytes::from(bytes),
                None => Bytes::from(unwrap_text(s).into_owned()),
            }
        };
        let metadata = match input.meta_json("Metadata") {
            Some(Value::Object(m)) => m
                .into_iter()
                .map(|(k, v)| (k, v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
                .collect(),
            _ => BTreeMap::new(),
        };
        let params = pattern_params(input.binding.property("path").unwrap_or_default())
            .into_iter()
            .filter_map(|name| input.meta_text(&name).map(|v| (name, v)))
            .collect();
        Ok(Self {
            content,
            uri: input.meta_text("Uri"),
            properties: input.meta_json("Properties").filter(Value::is_object).map(BlobProperties::from_value),
            metadata,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::triggers::test_support::*;
    use serde_json::json;

    #[test]
    fn derived_blob_request() {
        let req = fixture("derived-blob-trigger.request.json");
        let b: BlobInput = parse(&req, &binding("blobTrigger", "receipt", json!({"path": "receipts/{name}"}))).unwrap();
        assert_eq!(b.text().unwrap(), r#"{"orderId":"o-1","total":12.5}"#);
        assert_eq!(b.param("name"), Some("o-1.json"));
        assert_eq!(b.uri.as_deref(), Some("http://127.0.0.1:10000/devstoreaccount1/receipts/o-1.json"));
        let p = b.properties.unwrap();
        assert_eq!(p.content_length, Some(30));
        assert_eq!(p.content_type.as_deref(), Some("application/json"));
        assert_eq!(p.blob_type.as_deref(), Some("Block"));
        assert_eq!(b.metadata.get("source").map(String::as_str), Some("ProcessOrder"));
    }

    #[test]
    fn binary_content_survives() {
        let req = json!({"Data": {"b": "AAH/gA=="}, "Metadata": {}});
        let b: BlobInput = parse(&req, &binding("blobTrigger", "b", json!({"path": "c/{name}"}))).unwrap();
        assert_eq!(&b.content[..], &[0, 1, 255, 128]);
        assert!(b.params.is_empty());
    }

    #[test]
    fn string_data_type_is_text() {
        let req = json!({"Data": {"b": "\"abcd\""}, "Metadata": {}});
        let b: BlobInput = parse(&req, &binding("blobTrigger", "b", json!({"dataType": "string"}))).unwrap();
        assert_eq!(b.text().unwrap(), "abcd");
    }

    #[test]
    fn pattern_parameters() {
        assert_eq!(pattern_params("receipts/{name}"), ["name"]);
        assert_eq!(pattern_params("in/{stem}.{ext}"), ["stem", "ext"]);
        assert!(pattern_params("plain/path").is_empty());
    }

    #[test]
    fn non_string_content_is_refused() {
        let req = json!({"Data": {"b": {"x": 1}}, "Metadata": {}});
        let err = parse::<BlobInput>(&req, &binding("blobTrigger", "b", json!({}))).unwrap_err();
        assert!(err.to_string().contains("base64 string, got an object"), "{err}");
    }
}
