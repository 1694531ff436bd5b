//! A JetStream server in memory for the consumer logic's tests: it keeps consumers by name,
//! records every call in a line of text, fails the calls a test scripts, and lets another
//! replica act just before a given call (the races the logic has to survive). Scripts name
//! a call by its kind and its number among the calls of that kind, counting from 1.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

use super::ConsumerApi;
use crate::binding::ExistingConsumer;
use crate::consumer::ConsumerPlan;
use crate::failure::TransportFailure;

/// The consumers on the server, by name.
pub(crate) type Consumers = BTreeMap<String, ExistingConsumer>;

/// Which transport call a scripted failure or rival action applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Call {
    Info,
    Create,
    Listen,
    Unsubscribe,
}

type Rival = Box<dyn FnOnce(&mut Consumers)>;

/// The fake. A listener is the deliver subject it listens on.
#[derive(Default)]
pub(crate) struct FakeServer {
    consumers: RefCell<Consumers>,
    calls: RefCell<Vec<String>>,
    counts: RefCell<BTreeMap<Call, usize>>,
    failures: RefCell<BTreeMap<(Call, usize), TransportFailure>>,
    rivals: RefCell<BTreeMap<(Call, usize), Rival>>,
    inboxes: Cell<u32>,
    /// Creates consumers without a deliver subject, as a server that made a pull consumer.
    pub(crate) pull_only: Cell<bool>,
}

/// The API prefix the fake reports.
pub(crate) const API_PREFIX: &str = "$JS.hub.API";

impl FakeServer {
    /// A server holding `consumers`.
    pub(crate) fn with(consumers: impl IntoIterator<Item = ExistingConsumer>) -> Self {
        let server = Self::default();
        for consumer in consumers {
            server.put(consumer);
        }
        server
    }

    /// Adds or replaces a consumer, as another client would.
    pub(crate) fn put(&self, consumer: ExistingConsumer) {
        self.consumers
            .borrow_mut()
            .insert(consumer.name.clone(), consumer);
    }

    /// The `nth` `call` fails with `failure` (after any rival action on it).
    pub(crate) fn fail(&self, call: Call, nth: usize, failure: TransportFailure) {
        self.failures.borrow_mut().insert((call, nth), failure);
    }

    /// Just before the `nth` `call`, another replica does `rival` to the server's consumers.
    pub(crate) fn before(
        &self,
        call: Call,
        nth: usize,
        rival: impl FnOnce(&mut Consumers) + 'static,
    ) {
        self.rivals
            .borrow_mut()
            .insert((call, nth), Box::new(rival));
    }

    /// Every call so far, one line each.
    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    /// The consumer `name` as the server holds it now.
    pub(crate) fn consumer(&self, name: &str) -> Option<ExistingConsumer> {
        self.consumers.borrow().get(name).cloned()
    }

    /// Records the call, lets a rival act, then fails it if a failure was scripted.
    fn enter(&self, call: Call, line: String) -> Result<(), TransportFailure> {
        self.calls.borrow_mut().push(line);
        let nth = {
            let mut counts = self.counts.borrow_mut();
            let count = counts.entry(call).or_default();
            *count += 1;
            *count
        };
        let rival = self.rivals.borrow_mut().remove(&(call, nth));
        if let Some(rival) = rival {
            rival(&mut self.consumers.borrow_mut());
        }
        match self.failures.borrow_mut().remove(&(call, nth)) {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    fn set_bound(&self, deliver_subject: &str, bound: bool) {
        for consumer in self.consumers.borrow_mut().values_mut() {
            if consumer.deliver_subject.as_deref() == Some(deliver_subject) {
                consumer.push_bound = bound;
            }
        }
    }
}

impl ConsumerApi for FakeServer {
    type Info = ExistingConsumer;
    type Listener = String;

    fn consumer_info(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<Option<ExistingConsumer>, TransportFailure> {
        self.enter(Call::Info, format!("info {stream} {name}"))?;
        Ok(self.consumer(name))
    }

    fn create_consumer(
        &self,
        stream: &str,
        plan: &ConsumerPlan,
        deliver_subject: Option<&str>,
    ) -> Result<ExistingConsumer, TransportFailure> {
        let name = plan.durable_name.as_deref().unwrap_or("(ephemeral)");
        let on = deliver_subject.unwrap_or("a fresh inbox");
        self.enter(Call::Create, format!("create {stream} {name} on {on}"))?;
        let deliver_subject = match deliver_subject {
            _ if self.pull_only.get() => None,
            Some(subject) => Some(subject.to_owned()),
            None => {
                self.inboxes.set(self.inboxes.get() + 1);
                Some(format!("_INBOX.{}", self.inboxes.get()))
            }
        };
        let name = match &plan.durable_name {
            Some(durable) => durable.clone(),
            None => format!("EPH{}", self.inboxes.get()),
        };
        let push_bound = self
            .consumer(&name)
            .is_some_and(|old| old.push_bound && old.deliver_subject == deliver_subject);
        let created = ExistingConsumer {
            name,
            filter_subject: plan.filter_subject.clone(),
            deliver_subject,
            deliver_group: plan.deliver_group.clone(),
            push_bound,
        };
        self.put(created.clone());
        Ok(created)
    }

    fn listen(
        &self,
        deliver_subject: &str,
        queue_group: Option<&str>,
    ) -> Result<String, TransportFailure> {
        let group = queue_group.map(|q| format!(" in {q}")).unwrap_or_default();
        self.enter(Call::Listen, format!("listen {deliver_subject}{group}"))?;
        self.set_bound(deliver_subject, true);
        Ok(deliver_subject.to_owned())
    }

    fn unsubscribe(&self, listener: &String) -> Result<(), TransportFailure> {
        self.enter(Call::Unsubscribe, format!("unsubscribe {listener}"))?;
        self.set_bound(listener, false);
        Ok(())
    }

    fn existing(info: &ExistingConsumer) -> ExistingConsumer {
        info.clone()
    }

    fn api_prefix(&self) -> String {
        API_PREFIX.to_owned()
    }
}
