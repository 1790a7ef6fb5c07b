//! Reading the envelope the host POSTs for an invocation (`{"Data": {...}, "Metadata": {...}}`).
//!
//! The body is read once and borrowed: `Metadata` and the non-trigger `Data` entries stay raw JSON
//! until a handler asks for them (most never do). The trigger's entry is kept raw too, except an
//! HTTP request for a handler that takes an [`HttpRequest`](crate::HttpRequest), which is read in
//! the same pass (it is the hot path, and reading it twice was a good part of its cost).

use std::borrow::Cow;

use serde_json::value::RawValue;

use crate::encoding::BorrowedText;
use crate::http::request::Wire;

/// The envelope the host POSTs, borrowed from the body. Entries stay raw JSON until a handler
/// needs them, except an HTTP trigger for a handler that takes an [`HttpRequest`](crate::HttpRequest), which is read in
/// the same pass.
pub(crate) struct Envelope<'a> {
    /// The non-trigger `Data` entries.
    pub(crate) data: Vec<(Cow<'a, str>, &'a RawValue)>,
    /// The trigger binding's entry.
    pub(crate) trigger: Option<TriggerValue<'a>>,
    pub(crate) metadata: Option<&'a RawValue>,
}

/// The trigger's `Data` entry: raw, or already read as the host's HTTP request object.
pub(crate) enum TriggerValue<'a> {
    Raw(&'a RawValue),
    Http(Wire<'a>),
}

/// Reads an [`Envelope`] for the function whose trigger binding is `trigger`.
#[derive(Clone, Copy)]
pub(crate) struct EnvelopeSeed<'s> {
    /// The trigger binding's name.
    pub(crate) trigger: &'s str,
    /// Read the trigger as the host's HTTP request object.
    pub(crate) http: bool,
}

impl<'de, 's> serde::de::DeserializeSeed<'de> for EnvelopeSeed<'s> {
    type Value = Envelope<'de>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, 's> serde::de::Visitor<'de> for EnvelopeSeed<'s> {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object with `Data` and `Metadata`")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut envelope = Envelope { data: Vec::new(), trigger: None, metadata: None };
        while let Some(BorrowedText(key)) = map.next_key::<BorrowedText<'de>>()? {
            match &*key {
                "Data" | "data" => map.next_value_seed(DataSeed { seed: self, envelope: &mut envelope })?,
                "Metadata" | "metadata" => envelope.metadata = map.next_value::<Option<&'de RawValue>>()?,
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(envelope)
    }
}

/// Reads `Data` into an [`Envelope`]: `null`, or an object of binding names to values.
struct DataSeed<'s, 'e, 'de> {
    seed: EnvelopeSeed<'s>,
    envelope: &'e mut Envelope<'de>,
}

impl<'de> serde::de::DeserializeSeed<'de> for DataSeed<'_, '_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DataSeed<'_, '_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of binding names to values")
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(BorrowedText(name)) = map.next_key::<BorrowedText<'de>>()? {
            if name != self.seed.trigger {
                self.envelope.data.push((name, map.next_value::<&'de RawValue>()?));
            } else if self.seed.http {
                self.envelope.trigger = Some(TriggerValue::Http(map.next_value()?));
            } else {
                self.envelope.trigger = Some(TriggerValue::Raw(map.next_value()?));
            }
        }
        Ok(())
    }
}

/// Reads the envelope; when the HTTP request in it does not fit, reads it again with the request
/// left raw, so that binding it reports what was wrong (and the envelope's own errors stay its own).
pub(crate) fn read_envelope<'a>(body: &'a [u8], seed: EnvelopeSeed<'_>) -> Result<Envelope<'a>, serde_json::Error> {
    use serde::de::DeserializeSeed as _;
    let read = |seed: EnvelopeSeed<'_>| {
        let mut de = serde_json::Deserializer::from_slice(body);
        let envelope = seed.deserialize(&mut de)?;
        de.end().map(|()| envelope)
    };
    match read(seed) {
        Err(_) if seed.http => read(EnvelopeSeed { http: false, ..seed }),
        result => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trigger_is_read_as_asked_and_the_rest_stays_raw() {
        // Shape of `HttpRequestExtensions.GetRequestAsJObject` plus an input binding (see tests/fixtures).
        let body = br#"{"Data":{"req":{"Url":"http://h/api/x","Method":"GET","Headers":{"A":["1"]}},"order":{"RowKey":"o-1"}},"Metadata":{"sys":{}},"Extra":[1]}"#;
        let seed = EnvelopeSeed { trigger: "req", http: true };
        let envelope = read_envelope(body, seed).unwrap();
        assert!(matches!(envelope.trigger, Some(TriggerValue::Http(_))));
        assert_eq!(envelope.data.len(), 1);
        assert_eq!((&*envelope.data[0].0, envelope.data[0].1.get()), ("order", r#"{"RowKey":"o-1"}"#));
        assert_eq!(envelope.metadata.map(RawValue::get), Some(r#"{"sys":{}}"#));

        let raw = read_envelope(body, EnvelopeSeed { http: false, ..seed }).unwrap();
        assert!(matches!(raw.trigger, Some(TriggerValue::Raw(r)) if r.get().starts_with(r#"{"Url""#)));
    }

    #[test]
    fn a_request_that_does_not_fit_is_left_raw_and_a_bad_envelope_is_an_error() {
        let seed = EnvelopeSeed { trigger: "req", http: true };
        let body = br#"{"Data":{"req":{"Headers":{"A":{"b":1}}}},"Metadata":{}}"#;
        let envelope = read_envelope(body, seed).unwrap();
        assert!(matches!(envelope.trigger, Some(TriggerValue::Raw(_))));
        assert!(read_envelope(br#"{"Data":{"req":null},"Metadata":{}}"#, seed).is_ok());
        assert!(read_envelope(br#"{"Data":null}"#, seed).unwrap().trigger.is_none());
        let err = read_envelope(br#"{"Data":[1],"Metadata":{}}"#, seed).err().unwrap();
        assert!(err.to_string().contains("an object of binding names"), "{err}");
        assert!(read_envelope(br#"{"Data":{}} trailing"#, seed).is_err());
    }
}
