//! What a JetStream delivery's reply (ack) subject says about it. Read here, on the
//! per-message path, without building an async-nats `jetstream::Message` (which clones the
//! whole JetStream context per message).

/// The numbers of a delivery, as its reply subject carries them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Sequences {
    /// How many times it has been delivered (1 the first time): the component's
    /// redelivery decisions (`backOff`) depend on it.
    pub(crate) delivered: u64,
    /// Its sequence in the stream.
    pub(crate) stream: u64,
    /// Its sequence in the consumer's deliveries.
    pub(crate) consumer: u64,
}

/// The numbers of the delivery with this reply subject.
///
/// Reads `$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>` (v1) or
/// `$JS.ACK.<domain>.<hash>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>[...]`
/// (v2, ADR-15). Stream and consumer names cannot contain dots, so the token count tells the
/// forms apart. None when the subject is neither.
pub(crate) fn sequences(reply: &str) -> Option<Sequences> {
    let rest = reply.strip_prefix("$JS.ACK.")?.as_bytes();
    // One pass over the bytes for the dots (this runs once per delivered message): the
    // token count tells the forms apart, and only the first eight tokens are read.
    let mut dots = [0usize; 8];
    let mut count = 0;
    for (at, &byte) in rest.iter().enumerate() {
        if byte == b'.' {
            if count < dots.len() {
                dots[count] = at;
            }
            count += 1;
        }
    }
    let first = match count + 1 {
        7 => 2,
        n if n >= 9 => 4,
        _ => return None,
    };
    let token = |i: usize| {
        let start = if i == 0 { 0 } else { dots[i - 1] + 1 };
        let end = if i < count { dots[i] } else { rest.len() };
        &rest[start..end]
    };
    // The timestamp after them must be a number too, or this is no ack subject; its value
    // is not needed, so its 19 digits are checked, not multiplied out.
    let timestamp = token(first + 3);
    if timestamp.is_empty() || !timestamp.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(Sequences {
        delivered: number(token(first))?,
        stream: number(token(first + 1))?,
        consumer: number(token(first + 2))?,
    })
}

/// A token of decimal digits as a number; None for anything else or an overflow.
fn number(token: &[u8]) -> Option<u64> {
    if token.is_empty() {
        return None;
    }
    token.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(reply: &str) -> Option<u64> {
        sequences(reply).map(|numbers| numbers.delivered)
    }

    #[test]
    fn v1_and_v2_ack_subjects() {
        assert_eq!(
            sequences("$JS.ACK.events.durable.3.100.7.1790230470084404000.42"),
            Some(Sequences {
                delivered: 3,
                stream: 100,
                consumer: 7
            })
        );
        assert_eq!(
            delivered("$JS.ACK.events.durable.3.100.7.1790230470084404000.42"),
            Some(3)
        );
        let numbers = Some(Sequences {
            delivered: 3,
            stream: 100,
            consumer: 7,
        });
        assert_eq!(
            sequences("$JS.ACK._.hash.events.durable.3.100.7.1790230470084404000.42"),
            numbers
        );
        assert_eq!(
            sequences("$JS.ACK.hub.hash.events.durable.3.100.7.1790230470084404000.42.rnd"),
            numbers
        );
        for bad in [
            "",
            "_INBOX.x",
            "$JS.ACK.a.b.c",
            "$JS.ACK.s.c.x.1.2.3.4",
            "$JS.ACK.s.c.1.2.3.4",
            "$JS.ACK.s.c.1.x.2.3.4",
            "$JS.ACK.s.c.-1.2.3.4.5",
            "$JS.ACK.s.c.99999999999999999999.2.3.4.5",
            "$JS.ACK.s.c..2.3.4.5",
            "$JS.ACK.s.c.1.2.3.ts.5",
            "$JS.ACK.h.s.c.1.2.3.4.5",
            "$JS.ACK.s.c.1.2.3..5",
        ] {
            assert_eq!(delivered(bad), None, "{bad}");
        }
    }
}
