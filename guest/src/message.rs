//! A delivered NATS message as the application sees it (Dapr's `NewMessage`).

use crate::publish::CONTENT_TYPE_HEADER;

/// Dapr's metadata key for the concrete subject (#1465): `Topic` on the message is the
/// subscribed pattern, `metadata["Topic"]` the subject it arrived on.
pub const TOPIC_KEY: &str = "Topic";

/// The application-facing metadata and content type of a delivery: `Topic` = the
/// subject, then every NATS header under its own name (the reference drops headers;
/// components-contrib#2201 asked for them). A header named `Topic` cannot override the
/// subject.
pub fn metadata(
    subject: String,
    headers: Vec<(String, String)>,
) -> (Vec<(String, String)>, Option<String>) {
    let mut metadata = Vec::with_capacity(headers.len() + 1);
    metadata.push((TOPIC_KEY.to_string(), subject));
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
    fn subject_first_then_headers() {
        let headers = vec![
            ("Nats-Msg-Id".to_string(), "a".to_string()),
            ("Content-Type".to_string(), "text/plain".to_string()),
            ("Topic".to_string(), "spoofed".to_string()),
        ];
        let (metadata, content_type) = metadata("orders.eu".to_string(), headers);
        assert_eq!(metadata[0], ("Topic".to_string(), "orders.eu".to_string()));
        assert_eq!(metadata.iter().filter(|(k, _)| k == "Topic").count(), 1);
        assert!(metadata.contains(&("Nats-Msg-Id".to_string(), "a".to_string())));
        assert_eq!(content_type.as_deref(), Some("text/plain"));
    }
}
