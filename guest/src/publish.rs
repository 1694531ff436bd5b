//! Turning a publish request into the NATS message to send, and which entries of a bulk
//! publish fail when its batch is refused.

use std::fmt;

/// Header carrying the payload's MIME type across NATS.
pub const CONTENT_TYPE_HEADER: &str = "Content-Type";
/// JetStream's deduplication header.
pub const MESSAGE_ID_HEADER: &str = "Nats-Msg-Id";
/// Request metadata keys that never become headers: `Topic` names the subject on the
/// delivery side (Dapr's `metadata["Topic"]`), so a header of that name would lie.
pub const RESERVED_KEYS: &[&str] = &["Topic"];

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

/// A request metadata entry that cannot travel as a NATS header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderError {
    /// The metadata key.
    pub key: String,
    /// Why it cannot be a header.
    pub problem: &'static str,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "request metadata {:?} cannot be sent as a NATS header: {}",
            self.key, self.problem
        )
    }
}

/// The headers of a published message, in order: the request metadata (entries given
/// later win), then `Nats-Msg-Id` from the CloudEvent id unless the metadata set one
/// (which lets raw payloads be deduplicated too), then `Content-Type` when known.
pub fn headers(
    data: &[u8],
    content_type: Option<&str>,
    metadata: &[(String, String)],
) -> Result<Vec<(String, String)>, HeaderError> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for (key, value) in metadata {
        if RESERVED_KEYS.contains(&key.as_str()) {
            continue;
        }
        check_header(key, value)?;
        headers.retain(|(existing, _)| existing != key);
        headers.push((key.clone(), value.clone()));
    }
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(MESSAGE_ID_HEADER))
        && let Some(id) = message_id(data)
    {
        headers.push((MESSAGE_ID_HEADER.to_string(), id));
    }
    if let Some(content_type) = content_type.filter(|c| !c.is_empty()) {
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case(CONTENT_TYPE_HEADER));
        headers.push((CONTENT_TYPE_HEADER.to_string(), content_type.to_string()));
    }
    Ok(headers)
}

/// The refusals of a bulk publish of `count` entries whose whole batch the host refused:
/// the entries refused already (each with its own error, in entry order) keep it, every
/// other entry gets `err`, so the caller learns the fate of each entry by its position.
pub fn refuse_batch<E: Clone>(count: usize, refused: Vec<(u32, E)>, err: &E) -> Vec<(u32, E)> {
    let mut own = refused.into_iter().peekable();
    (0u32..)
        .take(count)
        .map(|index| match own.next_if(|(at, _)| *at == index) {
            Some(entry) => entry,
            None => (index, err.clone()),
        })
        .collect()
}

/// NATS header names are printable ASCII without `:` or spaces; values have no line breaks.
fn check_header(key: &str, value: &str) -> Result<(), HeaderError> {
    let problem = if key.is_empty() {
        Some("the name is empty")
    } else if !key.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        Some("names must be printable ASCII without ':' or spaces")
    } else if value.contains(['\r', '\n']) {
        Some("values must not contain line breaks")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(HeaderError {
            key: key.to_string(),
            problem,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

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
    fn headers_carry_metadata_id_and_content_type() {
        let headers = headers(
            br#"{"id":"a"}"#,
            Some("application/cloudevents+json"),
            &pairs(&[
                ("traceparent", "00-1"),
                ("Topic", "x"),
                ("tenant", "t1"),
                ("tenant", "t2"),
            ]),
        );
        assert_eq!(
            headers.unwrap(),
            pairs(&[
                ("traceparent", "00-1"),
                ("tenant", "t2"),
                ("Nats-Msg-Id", "a"),
                ("Content-Type", "application/cloudevents+json")
            ])
        );
        assert!(super::headers(b"raw", None, &[]).unwrap().is_empty());
    }

    #[test]
    fn metadata_message_id_wins_over_the_cloudevent_id() {
        let headers = headers(
            br#"{"id":"ce"}"#,
            None,
            &pairs(&[("Nats-Msg-Id", "explicit")]),
        )
        .unwrap();
        assert_eq!(headers, pairs(&[("Nats-Msg-Id", "explicit")]));
    }

    #[test]
    fn a_refused_batch_fails_every_entry_and_keeps_the_errors_of_those_refused_already() {
        let refused = vec![(1, "bad header"), (3, "bad header too")];
        assert_eq!(
            refuse_batch(5, refused, &"batch refused"),
            [
                (0, "batch refused"),
                (1, "bad header"),
                (2, "batch refused"),
                (3, "bad header too"),
                (4, "batch refused"),
            ]
        );
        assert_eq!(
            refuse_batch(2, vec![], &"batch refused"),
            [(0, "batch refused"), (1, "batch refused")]
        );
        assert_eq!(refuse_batch(0, vec![], &"batch refused"), []);
    }

    #[test]
    fn unsendable_metadata_names_the_key() {
        let err = headers(b"x", None, &pairs(&[("bad key", "v")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "request metadata \"bad key\" cannot be sent as a NATS header: names must be printable ASCII without ':' or spaces"
        );
        let err = headers(b"x", None, &pairs(&[("k", "a\r\nb")])).unwrap_err();
        assert!(err.to_string().contains("line breaks"), "{err}");
    }
}
