//! A delivered NATS message as the application sees it (Dapr's `NewMessage`).

use crate::publish::CONTENT_TYPE_HEADER;

/// Dapr's metadata key for the concrete subject (#1465): `Topic` on the message is the
/// subscribed pattern, `metadata["Topic"]` the subject it arrived on.
pub const TOPIC_KEY: &str = "Topic";

/// The application-facing metadata after the subject, and the content type, of a
/// delivery: every NATS header under its own name (the reference drops headers;
/// components-contrib#2201 asked for them). The host puts the subject first, under
/// [`TOPIC_KEY`], from the delivery it holds (the subject never crosses into the component
/// only to be copied back), so a header named `Topic` is left out: it cannot override the
/// subject.
pub fn metadata(headers: Option<Vec<(String, String)>>) -> (Vec<(String, String)>, Option<String>) {
    let Some(headers) = headers else {
        return (Vec::new(), None);
    };
    let mut metadata = Vec::with_capacity(headers.len());
    let mut content_type = None;
    for (name, value) in headers {
        if name == TOPIC_KEY {
            continue;
        }
        if content_type.is_none() && name.eq_ignore_ascii_case(CONTENT_TYPE_HEADER) {
            content_type = Some(value.clone());
        }
        metadata.push((name, value));
    }
    (metadata, content_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_under_their_names_but_never_topic() {
        let headers = vec![
            ("Nats-Msg-Id".to_string(), "a".to_string()),
            ("Content-Type".to_string(), "text/plain".to_string()),
            ("Topic".to_string(), "spoofed".to_string()),
        ];
        let (metadata, content_type) = metadata(Some(headers));
        assert!(metadata.iter().all(|(k, _)| k != TOPIC_KEY), "{metadata:?}");
        assert_eq!(
            metadata,
            [
                ("Nats-Msg-Id".to_string(), "a".to_string()),
                ("Content-Type".to_string(), "text/plain".to_string()),
            ]
        );
        assert_eq!(content_type.as_deref(), Some("text/plain"));
    }

    #[test]
    fn no_headers_no_metadata() {
        assert_eq!(metadata(None), (Vec::new(), None));
    }
}
