//! The gRPC status of a failed call: the component's exact text, with a code a Dapr
//! resiliency policy can match on (`matching.gRPCStatusCodes`).

use tonic::{Code, Status};

use crate::Error;

/// The status daprd gets for `err`. daprd passes a pub/sub component's status through
/// unchanged; only resiliency `matching` rules read the code, so the codes separate what
/// is worth retrying (`Unavailable`) from what is not.
pub(crate) fn status(err: &Error) -> Status {
    Status::new(code(err), err.to_string())
}

fn code(err: &Error) -> Code {
    match err {
        // The metadata (or a request field) names a bad value: retrying cannot help.
        Error::InvalidMetadata(_) => Code::InvalidArgument,
        // A server away, a PubAck timed out, a stream leader being elected.
        Error::Retriable(_) => Code::Unavailable,
        // The request cannot succeed as things stand: a closed component, a durable bound
        // elsewhere, a subject or server the sandbox refuses, credentials refused.
        Error::Terminal(_) => Code::FailedPrecondition,
        // A component that cannot load or that trapped is this process's failure.
        Error::Load(_) | Error::Policy(_) | Error::Trap(_) => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_failure_has_its_own_code_and_keeps_its_text() {
        let cases = [
            (
                Error::InvalidMetadata("natsURL: missing".into()),
                Code::InvalidArgument,
                "invalid metadata: natsURL: missing",
            ),
            (
                Error::Retriable("no server".into()),
                Code::Unavailable,
                "no server",
            ),
            (
                Error::Terminal("closed".into()),
                Code::FailedPrecondition,
                "closed",
            ),
            (
                Error::Trap("out of fuel".into()),
                Code::Internal,
                "the component trapped: out of fuel",
            ),
        ];
        for (err, code, text) in cases {
            let status = status(&err);
            assert_eq!(status.code(), code, "{err:?}");
            assert_eq!(status.message(), text);
        }
    }
}
