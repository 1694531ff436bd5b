//! What a JetStream delivery's reply (ack) subject says about it. Read here, on the
//! per-message path, without building an async-nats `jetstream::Message` (which clones the
//! whole JetStream context per message) or converting the timestamp through a date type.

/// The delivery facts the component needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckInfo {
    pub(crate) stream_sequence: u64,
    pub(crate) consumer_sequence: u64,
    pub(crate) delivered: u64,
    pub(crate) timestamp_ns: i64,
}

/// Parses `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (v1) or
/// `$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[...]`
/// (v2, ADR-15). Stream and consumer names cannot contain dots, so the token count tells the
/// forms apart. None when the subject is neither.
pub(crate) fn parse(reply: &str) -> Option<AckInfo> {
    let rest = reply.strip_prefix("$JS.ACK.")?;
    let mut tokens = [""; 12];
    let mut count = 0;
    for token in rest.split('.') {
        if count == tokens.len() {
            break;
        }
        tokens[count] = token;
        count += 1;
    }
    let first = match count {
        7 => 2,
        n if n >= 9 => 4,
        _ => return None,
    };
    Some(AckInfo {
        delivered: tokens[first].parse().ok()?,
        stream_sequence: tokens[first + 1].parse().ok()?,
        consumer_sequence: tokens[first + 2].parse().ok()?,
        timestamp_ns: tokens[first + 3].parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_ack_subjects() {
        let expected = AckInfo {
            delivered: 3,
            stream_sequence: 100,
            consumer_sequence: 7,
            timestamp_ns: 1_790_230_470_084_404_000,
        };
        assert_eq!(
            parse("$JS.ACK.events.durable.3.100.7.1790230470084404000.42"),
            Some(expected)
        );
        assert_eq!(
            parse("$JS.ACK._.hash.events.durable.3.100.7.1790230470084404000.42"),
            Some(expected)
        );
        assert_eq!(
            parse("$JS.ACK.hub.hash.events.durable.3.100.7.1790230470084404000.42.rnd"),
            Some(expected)
        );
        for bad in [
            "",
            "_INBOX.x",
            "$JS.ACK.a.b.c",
            "$JS.ACK.s.c.x.1.2.3.4",
            "$JS.ACK.s.c.1.2.3.4",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
