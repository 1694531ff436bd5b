//! The deliveries a subscription handed to the component and that are not answered yet,
//! by token: where each answer goes, and the message the host keeps (its payload is for
//! the application).

use std::collections::VecDeque;

use super::ack_subject::Sequences;

/// A delivery handed out and not answered yet.
#[derive(Clone)]
pub(crate) struct Pending {
    /// Its reply (ack) subject.
    pub(crate) reply: async_nats::Subject,
    /// Its payload: it never crosses into the component, the host adds it to the message
    /// the application gets.
    pub(crate) payload: bytes::Bytes,
    /// Its numbers, read from the reply subject once: for the application's message.
    pub(crate) sequences: Sequences,
    /// Its subject and headers, so it can be handed to another instance if this one is
    /// lost. Only what that needs is kept (not the whole `async_nats::Message`, which
    /// would make every entry half as big again on the per-message path).
    pub(crate) subject: async_nats::Subject,
    headers: Option<async_nats::HeaderMap>,
    /// A handler is running for it on its own task, and will answer it.
    pub(crate) handling: bool,
}

impl Pending {
    /// A delivery of `message`, answered on `reply`.
    pub(crate) fn new(
        reply: async_nats::Subject,
        sequences: Sequences,
        message: async_nats::Message,
    ) -> Self {
        Self {
            reply,
            sequences,
            payload: message.payload,
            subject: message.subject,
            headers: message.headers,
            handling: false,
        }
    }

    /// The message again, as it arrived, to hand to another instance.
    pub(crate) fn into_message(self) -> async_nats::Message {
        let length = self.payload.len();
        async_nats::Message {
            subject: self.subject,
            reply: Some(self.reply),
            payload: self.payload,
            headers: self.headers,
            status: None,
            description: None,
            length,
        }
    }
}

/// Tokens are handed out in sequence and mostly answered in the order given, so the
/// deliveries live in a queue indexed by `token - first`: a lookup is an index, not a hash,
/// on the per-message path.
///
/// Messages a lost instance held wait here too, before they are handed out again: the
/// server awaits an answer for them as well, and the keep-alive covers them.
pub(crate) struct Unanswered {
    /// The token of `entries[0]`.
    first: u64,
    /// `None` where a delivery was answered while an older one was not.
    entries: VecDeque<Option<Pending>>,
    /// To be handed out again, one per batch, before anything new.
    replay: VecDeque<async_nats::Message>,
}

impl Unanswered {
    /// An empty set whose first token will be `first`.
    pub(crate) fn starting_at(first: u64) -> Self {
        Self {
            first,
            entries: VecDeque::new(),
            replay: VecDeque::new(),
        }
    }

    /// Queues `messages` to be handed out again before anything new.
    pub(crate) fn replay(&mut self, messages: VecDeque<async_nats::Message>) {
        self.replay.extend(messages);
    }

    /// The next message to hand out again, if any.
    pub(crate) fn next_replay(&mut self) -> Option<async_nats::Message> {
        self.replay.pop_front()
    }

    /// Takes every message still waiting to be handed out again.
    pub(crate) fn take_replay(&mut self) -> VecDeque<async_nats::Message> {
        std::mem::take(&mut self.replay)
    }

    /// Records a delivery under the next token, and returns that token.
    pub(crate) fn push(&mut self, pending: Pending) -> u64 {
        let token = self.first + self.entries.len() as u64;
        self.entries.push_back(Some(pending));
        token
    }

    fn index(&self, token: u64) -> Option<usize> {
        let index = usize::try_from(token.checked_sub(self.first)?).ok()?;
        (index < self.entries.len()).then_some(index)
    }

    /// The delivery `token`, while it is unanswered.
    pub(crate) fn get(&self, token: u64) -> Option<&Pending> {
        self.entries.get(self.index(token)?)?.as_ref()
    }

    /// Takes the delivery `token` out: it is being answered.
    pub(crate) fn remove(&mut self, token: u64) -> Option<Pending> {
        let index = self.index(token)?;
        let pending = self.entries.get_mut(index)?.take()?;
        while let Some(None) = self.entries.front() {
            self.entries.pop_front();
            self.first += 1;
        }
        Some(pending)
    }

    /// The reply subjects of every unanswered delivery, and of the messages waiting to be
    /// handed out again.
    pub(crate) fn replies(&self) -> Vec<async_nats::Subject> {
        let handed_out = self.entries.iter().flatten().map(|p| p.reply.clone());
        let waiting = self
            .replay
            .iter()
            .filter_map(|message| message.reply.clone());
        handed_out.chain(waiting).collect()
    }

    /// Marks the delivery `token` as being handled on a task of its own.
    pub(crate) fn set_handling(&mut self, token: u64) {
        if let Some(Some(pending)) = self.index(token).and_then(|i| self.entries.get_mut(i)) {
            pending.handling = true;
        }
    }

    /// Whether a handler running on a task of its own will still answer a delivery.
    pub(crate) fn any_handling(&self) -> bool {
        self.entries
            .iter()
            .flatten()
            .any(|pending| pending.handling)
    }

    /// Takes every unanswered delivery out that no running handler will answer; those stay
    /// until their handlers answer them.
    pub(crate) fn drain_idle(&mut self) -> Vec<Pending> {
        let mut idle = Vec::new();
        for entry in &mut self.entries {
            if entry.as_ref().is_some_and(|pending| !pending.handling) {
                idle.extend(entry.take());
            }
        }
        while let Some(None) = self.entries.front() {
            self.entries.pop_front();
            self.first += 1;
        }
        idle
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn message(reply: &str) -> async_nats::Message {
        async_nats::Message {
            subject: "topic".into(),
            reply: Some(reply.into()),
            payload: bytes::Bytes::from(reply.to_string()),
            headers: None,
            status: None,
            description: None,
            length: reply.len(),
        }
    }

    fn pending(reply: &str) -> Pending {
        let sequences = Sequences {
            delivered: 1,
            stream: 1,
            consumer: 1,
        };
        Pending::new(reply.into(), sequences, message(reply))
    }

    fn replies(unanswered: &Unanswered) -> Vec<String> {
        unanswered.replies().iter().map(|r| r.to_string()).collect()
    }

    #[test]
    fn messages_waiting_for_replay_are_kept_alive_and_come_out_in_order() {
        let mut unanswered = Unanswered::starting_at(1);
        unanswered.push(pending("a"));
        unanswered.replay(["b", "c"].into_iter().map(message).collect());
        assert_eq!(replies(&unanswered), vec!["a", "b", "c"]);
        let next = unanswered.next_replay().unwrap();
        assert_eq!(next.reply.unwrap().as_str(), "b");
        assert_eq!(replies(&unanswered), vec!["a", "c"]);
        assert_eq!(unanswered.take_replay().len(), 1);
        assert!(unanswered.next_replay().is_none());
        assert_eq!(replies(&unanswered), vec!["a"]);
    }

    #[test]
    fn tokens_in_sequence_answered_in_any_order() {
        let mut unanswered = Unanswered::starting_at(1);
        let tokens: Vec<u64> = ["a", "b", "c"]
            .into_iter()
            .map(|r| unanswered.push(pending(r)))
            .collect();
        assert_eq!(tokens, vec![1, 2, 3]);
        assert_eq!(unanswered.remove(2).unwrap().reply.as_str(), "b");
        assert!(unanswered.remove(2).is_none(), "answered once only");
        assert_eq!(unanswered.get(3).unwrap().payload.as_ref(), b"c");
        assert_eq!(unanswered.remove(1).unwrap().reply.as_str(), "a");
        // The queue advanced past both answered tokens; token numbering goes on.
        assert_eq!(unanswered.push(pending("d")), 4);
        assert!(unanswered.get(0).is_none() && unanswered.get(99).is_none());
        assert_eq!(replies(&unanswered), vec!["c", "d"]);
        assert!(!unanswered.any_handling());
        unanswered.set_handling(4);
        assert!(unanswered.any_handling());
        let idle: Vec<String> = unanswered
            .drain_idle()
            .iter()
            .map(|p| p.reply.to_string())
            .collect();
        assert_eq!(
            idle,
            vec!["c"],
            "a delivery being handled is left to its handler"
        );
        assert_eq!(unanswered.remove(4).unwrap().reply.as_str(), "d");
        assert!(unanswered.replies().is_empty());
        assert_eq!(unanswered.push(pending("e")), 5);
    }
}
