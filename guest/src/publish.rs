//! Turning a publish request into the NATS message to send.

/// The `Nats-Msg-Id` of a payload: the string `id` of a JSON object (a CloudEvent), so a
/// republished event is stored once (Dapr components-contrib#2200). Anything else — raw
/// bytes, arrays, a numeric id, the JSON `null` (which panics the reference) — has none.
pub fn message_id(data: &[u8]) -> Option<String> {
    // Cheap reject before parsing: only a JSON object can carry an id.
    let first = data.iter().find(|b| !b.is_ascii_whitespace())?;
    if *first != b'{' {
        return None;
    }
    match serde_json::from_slice::<serde_json::Value>(data).ok()? {
        serde_json::Value::Object(mut object) => match object.remove("id")? {
            serde_json::Value::String(id) if !id.is_empty() => Some(id),
            _ => None,
        },
        _ => None,
    }
}

/// Header carrying the payload's MIME type across NATS.
pub const CONTENT_TYPE_HEADER: &str = "Content-Type";
/// JetStream's deduplication header.
pub const MESSAGE_ID_HEADER: &str = "Nats-Msg-Id";

/// The headers of a published message: its message id and content type, when known.
pub fn headers(data: &[u8], content_type: Option<&str>) -> Vec<(String, String)> {
    let mut headers = Vec::new();
    if let Some(id) = message_id(data) {
        headers.push((MESSAGE_ID_HEADER.to_string(), id));
    }
    if let Some(content_type) = content_type.filter(|c| !c.is_empty()) {
        headers.push((CONTENT_TYPE_HEADER.to_string(), content_type.to_string()));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudevent_string_id_is_the_message_id() {
        let cases: &[(&[u8], Option<&str>)] = &[
            (br#"{"id": "ABCD", "data": "test"}"#, Some("ABCD")),
            (br#"  {"specversion":"1.0","id":"e-1"}"#, Some("e-1")),
            (br#"{"id": 5}"#, None),
            (br#"{"id": ""}"#, None),
            (br#"{"data": 1}"#, None),
            (br#"[{"id": "x"}]"#, None),
            (b"null", None),
            (b"", None),
            (b"message-1", None),
            (b"{not json", None),
            (&[0xff, 0xfe, b'{'], None),
        ];
        for (data, expected) in cases {
            assert_eq!(
                message_id(data).as_deref(),
                *expected,
                "{:?}",
                String::from_utf8_lossy(data)
            );
        }
    }

    #[test]
    fn headers_carry_id_and_content_type() {
        assert_eq!(
            headers(br#"{"id":"a"}"#, Some("application/cloudevents+json")),
            vec![
                ("Nats-Msg-Id".to_string(), "a".to_string()),
                (
                    "Content-Type".to_string(),
                    "application/cloudevents+json".to_string()
                )
            ]
        );
        assert!(headers(b"raw", None).is_empty());
    }
}
