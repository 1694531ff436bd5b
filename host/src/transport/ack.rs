//! How a delivery is answered: JetStream's ack protocol, the body sent to a delivery's
//! reply subject.

/// An answer to a delivery, as the component chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AckKind {
    /// `+ACK`: processed.
    Ack,
    /// `-NAK`: redeliver, after the given delay in ns when present.
    Nak(Option<u64>),
    /// `+WPI`: still working, restart the ack-wait timer.
    InProgress,
    /// `+TERM`: never redeliver.
    Term,
}

impl AckKind {
    /// The wire body of this answer.
    pub(crate) fn body(&self) -> bytes::Bytes {
        match self {
            AckKind::Ack => bytes::Bytes::from_static(b"+ACK"),
            AckKind::Nak(None) => bytes::Bytes::from_static(b"-NAK"),
            AckKind::Nak(Some(delay_ns)) => {
                bytes::Bytes::from(format!("-NAK {{\"delay\":{delay_ns}}}"))
            }
            AckKind::InProgress => bytes::Bytes::from_static(b"+WPI"),
            AckKind::Term => bytes::Bytes::from_static(b"+TERM"),
        }
    }
}
