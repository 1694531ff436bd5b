//! How a subscription comes by its consumer and starts listening on its deliver subject:
//! resuming the consumer of a failed instance, joining an existing durable (updated in
//! place, or refused by the binding rules of [`crate::binding`]), or creating one, and the
//! race between two replicas creating the same durable at once.
//!
//! The transport calls go through [`ConsumerApi`]: the host's connection in the component,
//! a fake server in the tests.

use crate::binding::{self, ExistingConsumer};
use crate::consumer::ConsumerPlan;
use crate::failure::{self, PubSubError, TransportFailure};

/// The transport calls that find, create and listen on consumers (WIT `connection`).
pub trait ConsumerApi {
    /// A consumer as the server describes it, kept whole for the caller.
    type Info;
    /// Listening on a deliver subject.
    type Listener;

    /// The consumer `name` of `stream`; none when it does not exist.
    fn consumer_info(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<Option<Self::Info>, TransportFailure>;

    /// Creates the consumer `plan` describes on `stream`, or updates the durable in place,
    /// pushing to `deliver_subject` (none: a fresh inbox the host picks).
    fn create_consumer(
        &self,
        stream: &str,
        plan: &ConsumerPlan,
        deliver_subject: Option<&str>,
    ) -> Result<Self::Info, TransportFailure>;

    /// Starts listening on `deliver_subject`, in `queue_group` when given.
    fn listen(
        &self,
        deliver_subject: &str,
        queue_group: Option<&str>,
    ) -> Result<Self::Listener, TransportFailure>;

    /// Stops listening.
    fn unsubscribe(&self, listener: &Self::Listener) -> Result<(), TransportFailure>;

    /// What the binding rules look at in a consumer.
    fn existing(info: &Self::Info) -> ExistingConsumer;

    /// The JetStream API prefix, named when no JetStream answers a request.
    fn api_prefix(&self) -> String;
}

/// The consumer a subscription got, and the listener on its deliver subject.
pub type Attached<A> = (<A as ConsumerApi>::Info, <A as ConsumerApi>::Listener);

/// What a subscription attaches to.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The stream whose consumer it is.
    pub stream: &'a str,
    /// The subscribed topic (the consumer's filter subject).
    pub topic: &'a str,
    /// The consumer the metadata asks for.
    pub plan: &'a ConsumerPlan,
}

/// How a subscription came by its consumer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// This instance created it (or believes so: see [`listen`]).
    Created,
    /// It existed and this instance joined it.
    Joined,
}

/// Binds to the consumer a failed instance was using (`resume-consumer`), so its
/// position is kept; none when that consumer is gone. The previous instance's listener
/// died with it, so the consumer is taken as unbound.
pub fn resume<A: ConsumerApi>(
    api: &A,
    target: &Target<'_>,
    name: &str,
) -> Result<Option<Attached<A>>, PubSubError> {
    let Some(existing) = consumer_info(api, target.stream, name)? else {
        return Ok(None);
    };
    let unbound = ExistingConsumer {
        push_bound: false,
        ..A::existing(&existing)
    };
    let deliver_subject =
        binding::check(&unbound, target.topic, target.plan.deliver_group.as_deref())
            .map_err(|err| PubSubError::Terminal(err.to_string()))?;
    let listener = listen_on(api, target, &deliver_subject)?;
    Ok(Some((existing, listener)))
}

/// Binds to or creates the consumer the plan describes, and listens on its deliver subject.
///
/// Why the read-back: two replicas of a durable starting together both find no consumer and
/// both create it, each with a fresh inbox. JetStream 2.9 lets the later create move the
/// deliver subject while nobody listens on the earlier one, which would leave the earlier
/// replica listening where nothing is sent. So the creator of a durable reads it back once it
/// listens (after that, a move is refused with "consumer name already in use") and, if the
/// deliver subject moved, joins the consumer where it now is, under the binding rules.
pub fn listen<A: ConsumerApi>(api: &A, target: &Target<'_>) -> Result<Attached<A>, PubSubError> {
    let (consumer, deliver_subject, bound) = bind_or_create(api, target)?;
    let listener = listen_on(api, target, &deliver_subject)?;
    let (Bound::Created, Some(durable)) = (bound, &target.plan.durable_name) else {
        return Ok((consumer, listener));
    };
    match consumer_info(api, target.stream, durable)? {
        Some(current) => {
            let mut current = A::existing(&current);
            if current.deliver_subject.as_deref() == Some(deliver_subject.as_str()) {
                return Ok((consumer, listener));
            }
            let _ = api.unsubscribe(&listener);
            // The replica that moved it listens there next. Without a queue group only one
            // subscriber may: count it as bound now, so exactly one of the two wins.
            if target.plan.deliver_group.is_none() {
                current.push_bound = true;
            }
            let (consumer, deliver_subject) = join(api, target, &current)?;
            let listener = listen_on(api, target, &deliver_subject)?;
            Ok((consumer, listener))
        }
        None => Ok((consumer, listener)),
    }
}

/// Finds the durable to join, or creates the consumer the plan describes. A create that
/// loses a race to another replica (the durable appeared since we looked) joins the winner.
fn bind_or_create<A: ConsumerApi>(
    api: &A,
    target: &Target<'_>,
) -> Result<(A::Info, String, Bound), PubSubError> {
    let Some(durable) = &target.plan.durable_name else {
        let (info, deliver_subject) = create(api, target)?;
        return Ok((info, deliver_subject, Bound::Created));
    };
    if let Some(existing) = consumer_info(api, target.stream, durable)? {
        let (info, deliver_subject) = join(api, target, &A::existing(&existing))?;
        return Ok((info, deliver_subject, Bound::Joined));
    }
    match create(api, target) {
        Ok((info, deliver_subject)) => Ok((info, deliver_subject, Bound::Created)),
        Err(err) => match consumer_info(api, target.stream, durable) {
            Ok(Some(existing)) => {
                let (info, deliver_subject) = join(api, target, &A::existing(&existing))?;
                Ok((info, deliver_subject, Bound::Joined))
            }
            _ => Err(err),
        },
    }
}

/// Joins an existing durable: the binding rules first (reference §5.4), then the plan is
/// sent with the durable's deliver subject, so the server updates it in place where it can
/// and its other subscribers keep listening where they do.
fn join<A: ConsumerApi>(
    api: &A,
    target: &Target<'_>,
    existing: &ExistingConsumer,
) -> Result<(A::Info, String), PubSubError> {
    let Target {
        stream,
        topic,
        plan,
    } = *target;
    let durable = &existing.name;
    let deliver_subject = binding::check(existing, topic, plan.deliver_group.as_deref())
        .map_err(|err| PubSubError::Terminal(err.to_string()))?;
    let info = api
        .create_consumer(stream, plan, Some(&deliver_subject))
        .map_err(|err| match err {
            TransportFailure::Jetstream(refusal) => PubSubError::Terminal(format!(
                "consumer name already in use: creating consumer {durable:?} on stream {stream:?}: {}",
                refusal.description
            )),
            other => failure::api_error("updating the consumer", &other, || api.api_prefix()),
        })?;
    Ok((info, deliver_subject))
}

/// Creates the consumer the plan describes, on a fresh inbox the host picks.
fn create<A: ConsumerApi>(api: &A, target: &Target<'_>) -> Result<(A::Info, String), PubSubError> {
    let Target {
        stream,
        topic,
        plan,
    } = *target;
    let info = api.create_consumer(stream, plan, None).map_err(|err| {
        failure::api_error(
            &format!("creating a consumer on stream {stream:?} for {topic}"),
            &err,
            || api.api_prefix(),
        )
    })?;
    let created = A::existing(&info);
    let deliver_subject = created.deliver_subject.ok_or_else(|| {
        PubSubError::Terminal(format!(
            "the server created consumer {:?} without a deliver subject",
            created.name
        ))
    })?;
    Ok((info, deliver_subject))
}

fn consumer_info<A: ConsumerApi>(
    api: &A,
    stream: &str,
    durable: &str,
) -> Result<Option<A::Info>, PubSubError> {
    api.consumer_info(stream, durable).map_err(|err| {
        failure::api_error(
            &format!("consumer info of {durable:?} on stream {stream:?}"),
            &err,
            || api.api_prefix(),
        )
    })
}

fn listen_on<A: ConsumerApi>(
    api: &A,
    target: &Target<'_>,
    deliver_subject: &str,
) -> Result<A::Listener, PubSubError> {
    api.listen(deliver_subject, target.plan.deliver_group.as_deref())
        .map_err(|err| failure::call_error(&format!("subscribing to {}", target.topic), &err))
}

#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests;
