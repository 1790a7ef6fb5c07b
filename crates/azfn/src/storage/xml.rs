//! Just enough XML for the storage services' answers: their elements are flat and attribute-free.

/// The unescaped text of the first `<tag>…</tag>`.
pub(crate) fn first(xml: &str, tag: &str) -> Option<String> {
    blocks(xml, tag).into_iter().next().map(unescape)
}

/// The raw inner text of every `<tag>…</tag>` (nested elements included), in order.
pub(crate) fn blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start + open.len()..];
        let Some(end) = after.find(&close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&apos;", "'").replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_and_entities() {
        let xml = "<QueueMessagesList><QueueMessage><MessageId>a</MessageId><MessageText>x&lt;y</MessageText></QueueMessage><QueueMessage><MessageId>b</MessageId></QueueMessage></QueueMessagesList>";
        assert_eq!(blocks(xml, "QueueMessage").len(), 2);
        assert_eq!(blocks(xml, "MessageId"), ["a", "b"]);
        assert_eq!(first(xml, "MessageText").as_deref(), Some("x<y"));
    }
}
