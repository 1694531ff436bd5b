//! What a JetStream delivery's reply (ack) subject says about it. Read here, on the
//! per-message path, without building an async-nats `jetstream::Message` (which clones the
//! whole JetStream context per message).

/// How many times the delivery with this reply subject has been delivered (1 the first
/// time): the component's redelivery decisions (`backOff`) depend on it.
///
/// Reads `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (v1) or
/// `$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[...]`
/// (v2, ADR-15). Stream and consumer names cannot contain dots, so the token count tells the
/// forms apart. None when the subject is neither.
pub(crate) fn delivered(reply: &str) -> Option<u64> {
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
    // The numbers after the count must be numbers too, or this is no ack subject.
    for number in &tokens[first + 1..first + 4] {
        number.parse::<i64>().ok()?;
    }
    tokens[first].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_ack_subjects() {
        assert_eq!(
            delivered("$JS.ACK.events.durable.3.100.7.1790230470084404000.42"),
            Some(3)
        );
        assert_eq!(
            delivered("$JS.ACK._.hash.events.durable.3.100.7.1790230470084404000.42"),
            Some(3)
        );
        assert_eq!(
            delivered("$JS.ACK.hub.hash.events.durable.3.100.7.1790230470084404000.42.rnd"),
            Some(3)
        );
        for bad in [
            "",
            "_INBOX.x",
            "$JS.ACK.a.b.c",
            "$JS.ACK.s.c.x.1.2.3.4",
            "$JS.ACK.s.c.1.2.3.4",
            "$JS.ACK.s.c.1.x.2.3.4",
        ] {
            assert_eq!(delivered(bad), None, "{bad}");
        }
    }
}
