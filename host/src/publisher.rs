//! The publisher instance, and the resident publisher it becomes while it only publishes.
//!
//! Entering a component costs a fiber, the export's lookup, the call's setup and its
//! post-return. Between two awaited publishes the caller sleeps for a round trip, so every
//! entry starts with cold caches, and on a 2-vCPU VM that entry is most of what the sandbox
//! adds to an awaited publish (docs/benchmarks.md, S1). So while the host only publishes, it
//! keeps the publisher inside `pubsub.serve-publishes`, parked in the `publishes.next`
//! import, and resumes that call once per publish.
//!
//! The serving call is a future that owns the instance. A caller puts its request in the
//! [`Mailbox`] and polls that future itself, on its own task, until the component has
//! answered and parked again: no task, channel or wake-up sits between the caller and the
//! component. Every other call first stops the loop (`next` gives none) and so gets the
//! instance back, idle, as before.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;

use wasmtime::component::Resource;

use crate::bindings::{publishes, types};
use crate::error::Error;
use crate::instance::InstanceState;
use crate::runtime::Instance;
use crate::transport::PendingAck;

/// The instance that publishes. A trap poisons an instance ("cannot enter component
/// instance"); the next call gets a fresh, re-initialised one.
pub(crate) struct Publisher {
    pub(crate) instance: Instance,
    pub(crate) poisoned: bool,
}

impl Publisher {
    pub(crate) fn new(instance: Instance) -> Self {
        Self {
            instance,
            poisoned: false,
        }
    }

    /// A component that keeps pending acks instead of handing them back would, once it
    /// holds the host's limit, have every later publish refused: its instance is replaced
    /// on the next call instead, as after a trap.
    pub(crate) fn replace_if_keeping_pending_acks(&mut self) {
        let kept = self.instance.store.data().pending_acks();
        if kept > 0 {
            tracing::warn!(
                kept,
                "the component kept pending acks it never handed back; its instance will be replaced"
            );
            self.poisoned = true;
        }
    }

    /// The publisher a serving call leaves behind when it ends.
    fn after_serving(
        mut instance: Instance,
        ended: wasmtime::Result<()>,
    ) -> (Self, Result<(), Error>) {
        instance.store.data_mut().serving = None;
        let mut publisher = Self::new(instance);
        let ended = note_trap(&mut publisher, ended);
        publisher.replace_if_keeping_pending_acks();
        (publisher, ended)
    }
}

/// Records a trap on the publisher, so the next call replaces the instance.
pub(crate) fn note_trap<T>(
    publisher: &mut Publisher,
    result: wasmtime::Result<T>,
) -> Result<T, Error> {
    result.map_err(|trap| {
        publisher.poisoned = true;
        tracing::error!(error = %format!("{trap:#}"), "the component trapped; its instance will be replaced");
        Error::from(trap)
    })
}

/// What `pubsub.publish` returns: the message sent with its PubAck in flight, or why not.
pub(crate) type Answer = Result<PendingAck, types::Error>;

/// The publisher instance: idle, or inside `serve-publishes`.
pub(crate) enum PublisherSlot {
    Idle(Publisher),
    Serving(Serving),
    /// Only between two statements of one method, never across an await.
    Vacant,
}

/// A serving call in progress, and the requests it is given.
pub(crate) struct Serving {
    call: Pin<Box<dyn Future<Output = (Instance, wasmtime::Result<()>)> + Send>>,
    mailbox: Arc<Mutex<Mailbox>>,
    /// A request was put in the mailbox and its answer not taken: its caller gave up.
    outstanding: bool,
}

/// What passes between the host and a serving call, both on the caller's thread.
#[derive(Default)]
pub(crate) struct Mailbox {
    request: Option<types::PublishRequest>,
    /// The component took a request and has not answered it yet.
    taken: bool,
    answer: Option<Answer>,
    /// `next` gives none: the component returns from `serve-publishes`.
    stop: bool,
}

fn answered(mailbox: &Mailbox) -> bool {
    mailbox.answer.is_some()
}

fn lock(mailbox: &Mutex<Mailbox>) -> MutexGuard<'_, Mailbox> {
    mailbox.lock().unwrap_or_else(PoisonError::into_inner)
}

impl PublisherSlot {
    pub(crate) fn new(instance: Instance) -> Self {
        Self::Idle(Publisher::new(instance))
    }

    /// The idle publisher: none while serving (see [`Self::stop_serving`]).
    pub(crate) fn idle(&mut self) -> Option<&mut Publisher> {
        match self {
            Self::Idle(publisher) => Some(publisher),
            Self::Serving(_) | Self::Vacant => None,
        }
    }

    /// Ends a serving call, so the instance is idle for another export.
    pub(crate) async fn stop_serving(&mut self) {
        if let Self::Serving(serving) = self {
            lock(&serving.mailbox).stop = true;
            if let Resumed::Ended(instance, ended) = serving.until(|_| false).await {
                // A trap is logged and poisons the publisher: the next call renews it.
                let _ = self.end_serving(instance, ended);
            }
        }
    }

    /// Finishes what a caller that gave up left behind: the answer to its request is
    /// dropped (the message may have been sent: its PubAck is not awaited), and a loop it
    /// was stopping is stopped.
    pub(crate) async fn settle(&mut self) {
        let Self::Serving(serving) = self else { return };
        if lock(&serving.mailbox).stop {
            return self.stop_serving().await;
        }
        if serving.outstanding {
            if let Resumed::Ended(instance, ended) = serving.until(answered).await {
                let _ = self.end_serving(instance, ended);
                return;
            }
            lock(&serving.mailbox).answer = None;
            serving.outstanding = false;
        }
    }

    /// Publishes through the serving call, starting it if the publisher is idle. Call
    /// [`Self::settle`] first, and renew a poisoned publisher.
    pub(crate) async fn publish(
        &mut self,
        request: types::PublishRequest,
    ) -> Result<Answer, Error> {
        if let Self::Idle(_) = self {
            self.start_serving();
        }
        let Self::Serving(serving) = self else {
            return Err(Error::Trap("the publisher instance is gone".into()));
        };
        lock(&serving.mailbox).request = Some(request);
        serving.outstanding = true;
        match serving.until(answered).await {
            Resumed::Done => {
                serving.outstanding = false;
                lock(&serving.mailbox)
                    .answer
                    .take()
                    .ok_or_else(|| Error::Trap("the publish was not answered".into()))
            }
            Resumed::Ended(instance, ended) => {
                // The call ended: after a trap, or, answer given, because the component
                // kept pending acks (see `next`).
                let answer = lock(&serving.mailbox).answer.take();
                let ended = self.end_serving(instance, ended);
                match (answer, ended) {
                    (Some(answer), _) => Ok(answer),
                    (None, Err(trap)) => Err(trap),
                    (None, Ok(())) => {
                        if let Some(publisher) = self.idle() {
                            publisher.poisoned = true;
                        }
                        Err(Error::Trap(
                            "the component returned from serve-publishes without answering a publish"
                                .into(),
                        ))
                    }
                }
            }
        }
    }

    fn start_serving(&mut self) {
        let Self::Idle(publisher) = std::mem::replace(self, Self::Vacant) else {
            return;
        };
        let mut instance = publisher.instance;
        let mailbox = Arc::new(Mutex::new(Mailbox::default()));
        instance.store.data_mut().serving = Some(mailbox.clone());
        let call = Box::pin(async move {
            let (api, store) = instance.call();
            let ended = api.call_serve_publishes(store).await;
            (instance, ended)
        });
        *self = Self::Serving(Serving {
            call,
            mailbox,
            outstanding: false,
        });
    }

    fn end_serving(
        &mut self,
        instance: Instance,
        ended: wasmtime::Result<()>,
    ) -> Result<(), Error> {
        let (publisher, ended) = Publisher::after_serving(instance, ended);
        *self = Self::Idle(publisher);
        ended
    }
}

/// Where resuming a serving call stopped.
enum Resumed {
    /// The call is parked and what the caller waited for is in the mailbox.
    Done,
    /// The call returned or trapped: the instance is free again.
    Ended(Instance, wasmtime::Result<()>),
}

impl Serving {
    /// Resumes the call until `done` holds of the mailbox while the call is parked, or the
    /// call ends. Nothing wakes a parked call but the caller, who polls it again after
    /// filling the mailbox.
    async fn until(&mut self, done: impl Fn(&Mailbox) -> bool) -> Resumed {
        poll_fn(|cx| match self.call.as_mut().poll(cx) {
            Poll::Ready((instance, ended)) => Poll::Ready(Resumed::Ended(instance, ended)),
            Poll::Pending if done(&lock(&self.mailbox)) => Poll::Ready(Resumed::Done),
            Poll::Pending => Poll::Pending,
        })
        .await
    }
}

impl publishes::Host for InstanceState {
    async fn next(
        &mut self,
        answer: Option<Result<Resource<PendingAck>, types::Error>>,
    ) -> wasmtime::Result<Option<types::PublishRequest>> {
        let Some(mailbox) = self.serving.clone() else {
            return Err(wasmtime::Error::msg(
                "the component asked for a publish outside serve-publishes",
            ));
        };
        let answer = match answer {
            Some(Ok(pending)) => Some(Ok(self.take_pending_ack(pending)?)),
            Some(Err(refused)) => Some(Err(refused)),
            None => None,
        };
        {
            let mut mailbox = lock(&mailbox);
            match (mailbox.taken, answer) {
                (true, Some(answer)) => {
                    mailbox.answer = Some(answer);
                    mailbox.taken = false;
                }
                (false, None) => {}
                (true, None) => {
                    return Err(wasmtime::Error::msg(
                        "the component asked for the next publish without answering the last one",
                    ));
                }
                (false, Some(_)) => {
                    return Err(wasmtime::Error::msg(
                        "the component answered a publish it was never given",
                    ));
                }
            }
            // A component that keeps pending acks stops serving: the host then replaces
            // its instance (`Publisher::replace_if_keeping_pending_acks`).
            if self.pending_acks() > 0 {
                mailbox.stop = true;
            }
        }
        let request = poll_fn(|_| {
            let mut mailbox = lock(&mailbox);
            if mailbox.stop {
                Poll::Ready(None)
            } else if let Some(request) = mailbox.request.take() {
                mailbox.taken = true;
                Poll::Ready(Some(request))
            } else {
                Poll::Pending
            }
        })
        .await;
        // The CPU budget counts from here: the time parked was not the component's.
        self.meter.begin_call();
        Ok(request)
    }
}
