//! Publishing: the one instance a `PubSub` publishes through, replaced after a trap, and
//! the component's verdicts on failed PubAcks.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::app::no_subscriber;
use crate::bindings::{pubsub, types};
use crate::error::Error;
use crate::metrics::{Labels, PublishMetrics, PublishOutcome, Role};
use crate::runtime::{Instance, Runtime};
use crate::transport::{FailedPublish, PendingBatch};

use super::{BulkEntry, BulkEntryResult, Metadata, PubSub, PublishAck, PublishRequest};

/// The instance that publishes. A trap poisons an instance ("cannot enter component
/// instance"); the next call gets a fresh, re-initialised one.
pub(super) struct Publisher {
    pub(super) instance: Instance,
    pub(super) poisoned: bool,
}

/// The publisher instances of one `PubSub`. Callers of one `PubSub` (a sidecar's many
/// application requests) would otherwise queue for one instance, whose calls are
/// serialised: a caller takes a free instance, and when every instance is busy a new one is
/// made, up to `size`; past that, callers wait their turn on one.
///
/// Order: a caller that awaits each publish before the next is ordered by its awaits,
/// whichever instance sends; one bulk publish is one call on one instance, in order. Calls
/// that are not awaited one after the other were never ordered, and are not.
pub(super) struct Publishers {
    /// `None`: not made yet. The first is made with the `PubSub` (its `Init` is what
    /// checks the metadata); the others when needed.
    slots: Box<[Mutex<Option<Publisher>>]>,
    /// Where the next caller starts looking, so callers spread over the instances.
    next: AtomicUsize,
    /// Set by `close`: no instance is made any more, every call goes to the first, closed
    /// instance, which answers as the component does once closed.
    closed: AtomicBool,
}

impl Publishers {
    /// A pool of `size` slots (at least one) holding `first`.
    pub(super) fn new(first: Instance, size: usize) -> Self {
        let mut slots: Vec<_> = (0..size.max(1)).map(|_| Mutex::new(None)).collect();
        slots[0] = Mutex::new(Some(Publisher {
            instance: first,
            poisoned: false,
        }));
        Self {
            slots: slots.into_boxed_slice(),
            next: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// How many publishers a `PubSub` of `runtime` may use: the runtime's worker threads,
    /// at most `SandboxLimits::max_publishers`.
    pub(super) fn size_for(runtime: &Runtime) -> usize {
        let workers = tokio::runtime::Handle::try_current()
            .map(|handle| handle.metrics().num_workers())
            .unwrap_or(1);
        workers.clamp(1, runtime.shared.limits.max_publishers.max(1) as usize)
    }

    /// A slot for one call: a free one holding an instance, else a free empty one (every
    /// instance made so far is busy), else the next one in turn, once free. After `close`,
    /// always the first.
    async fn take(&self) -> MutexGuard<'_, Option<Publisher>> {
        if self.closed.load(Ordering::Acquire) {
            return self.slots[0].lock().await;
        }
        let count = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        let in_turn = || (0..count).map(move |i| &self.slots[(start + i) % count]);
        if let Some(free) = in_turn()
            .filter_map(|slot| slot.try_lock().ok())
            .find(|slot| slot.is_some())
        {
            return free;
        }
        match in_turn().find_map(|slot| slot.try_lock().ok()) {
            Some(empty) => empty,
            None => self.slots[start].lock().await,
        }
    }
}

/// A publisher taken for one call: the slot's lock, narrowed to the instance in it.
pub(super) type PublisherGuard<'a> = MappedMutexGuard<'a, Publisher>;

/// What publishing records, per topic: the handles are resolved once per topic, so a
/// publish records with atomic adds (or nothing, without a recorder).
#[derive(Default)]
pub(super) struct PublishedTopics(
    std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<PublishMetrics>>>,
);

impl PublishedTopics {
    fn of(&self, labels: &Labels, topic: &str) -> std::sync::Arc<PublishMetrics> {
        let mut topics = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(metrics) = topics.get(topic) {
            return metrics.clone();
        }
        let metrics = std::sync::Arc::new(labels.publishing(topic));
        topics.insert(topic.to_string(), metrics.clone());
        metrics
    }
}

impl Publisher {
    /// A component that keeps pending acks instead of handing them back would, once it
    /// holds the host's limit, have every later publish refused: its instance is replaced
    /// on the next call instead, as after a trap.
    fn replace_if_keeping_pending_acks(&mut self) {
        let kept = self.instance.store.data().pending_acks();
        if kept > 0 {
            tracing::warn!(
                kept,
                "the component kept pending acks it never handed back; its instance will be replaced"
            );
            self.poisoned = true;
        }
    }
}

/// How a publish that returned `result` counts.
fn outcome_of(result: &Result<PublishAck, Error>) -> PublishOutcome {
    match result {
        Ok(ack) if ack.duplicate => PublishOutcome::Duplicate,
        Ok(_) => PublishOutcome::Acked,
        Err(err) => failed(err),
    }
}

/// How a publish that failed with `err` counts.
fn failed(err: &Error) -> PublishOutcome {
    if err.is_retriable() {
        PublishOutcome::FailedRetriable
    } else {
        PublishOutcome::FailedTerminal
    }
}

/// The refusals of a bulk publish of `entries` entries, placed by entry, checked against
/// the `sent` messages: every entry is either refused or sent, in order.
fn refusals_by_entry(
    entries: usize,
    sent: usize,
    refused: Vec<(u32, types::Error)>,
) -> Result<Vec<Option<types::Error>>, Error> {
    if sent + refused.len() != entries {
        return Err(Error::Trap(format!(
            "the component sent {sent} messages and refused {} entries of a bulk publish of {entries}",
            refused.len()
        )));
    }
    let mut by_entry: Vec<Option<types::Error>> = (0..entries).map(|_| None).collect();
    for (index, refusal) in refused {
        match by_entry.get_mut(index as usize) {
            Some(slot @ None) => *slot = Some(refusal),
            _ => {
                return Err(Error::Trap(format!(
                    "the component refused entry {index} of a bulk publish of {entries} twice, or one that does not exist"
                )));
            }
        }
    }
    Ok(by_entry)
}

/// Records a trap on the publisher, so the next call replaces the instance.
pub(super) fn note_trap<T>(
    publisher: &mut Publisher,
    result: wasmtime::Result<T>,
) -> Result<T, Error> {
    result.map_err(|trap| {
        publisher.poisoned = true;
        publisher.instance.store.data().labels.trapped(Role::Publisher);
        tracing::error!(error = %format!("{trap:#}"), "the component trapped; its instance will be replaced");
        Error::from(trap)
    })
}

impl PubSub {
    /// A publisher instance for one call ([`Publishers`]).
    pub(super) async fn publisher(&self) -> Result<PublisherGuard<'_>, Error> {
        let slot = self.publishers.take().await;
        self.ready(slot).await
    }

    /// Closes every publisher instance made (Dapr's `Close`); later calls get the closed
    /// component's answer. The first failure is returned, after every instance was asked.
    pub(super) async fn close_publishers(&self) -> Result<(), Error> {
        self.publishers.closed.store(true, Ordering::Release);
        let mut closed = Ok(());
        for slot in self.publishers.slots.iter() {
            let slot = slot.lock().await;
            if slot.is_none() {
                continue;
            }
            let mut publisher = self.ready(slot).await?;
            let (api, store) = publisher.instance.call();
            let result = api.call_close(store).await;
            let result = note_trap(&mut publisher, result).and_then(|r| r.map_err(Error::from));
            closed = closed.and(result);
        }
        closed
    }

    /// The publisher in `slot`, made if the slot is empty, replaced if a trap poisoned it.
    async fn ready<'a>(
        &self,
        mut slot: MutexGuard<'a, Option<Publisher>>,
    ) -> Result<PublisherGuard<'a>, Error> {
        match slot.as_mut() {
            Some(publisher) if !publisher.poisoned => {}
            Some(publisher) => {
                publisher.instance = self
                    .runtime
                    .initialised(no_subscriber(), &self.metadata)
                    .await?;
                publisher.poisoned = false;
                self.runtime.labels.restarted(Role::Publisher);
            }
            None => {
                let instance = self
                    .runtime
                    .initialised(no_subscriber(), &self.metadata)
                    .await?;
                *slot = Some(Publisher {
                    instance,
                    poisoned: false,
                });
            }
        }
        // Filled just above: an empty slot here would be a bug of this function, reported
        // as an error rather than a panic.
        MutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| Error::Load("a publisher slot was left empty".into()))
    }

    /// Publishes a full request (content type, metadata).
    pub async fn publish_request(&self, request: PublishRequest) -> Result<PublishAck, Error> {
        let metrics = self.published.of(&self.runtime.labels, &request.topic);
        let since = std::time::Instant::now();
        let result = self.publish_unrecorded(request).await;
        metrics.published(outcome_of(&result), since.elapsed());
        result
    }

    async fn publish_unrecorded(&self, request: PublishRequest) -> Result<PublishAck, Error> {
        let PublishRequest {
            topic,
            data,
            content_type,
            metadata,
        } = request;
        let request = types::PublishRequest {
            topic,
            data,
            content_type,
            metadata,
        };
        let pending = {
            let mut publisher = self.publisher().await?;
            let (api, store) = publisher.instance.call();
            let sent = api.call_publish(store, &request).await;
            let taken = match note_trap(&mut publisher, sent)? {
                Ok(pending) => publisher
                    .instance
                    .store
                    .data_mut()
                    .take_pending_ack(pending)
                    .map(Ok),
                Err(refused) => Ok(Err(refused)),
            };
            publisher.replace_if_keeping_pending_acks();
            note_trap(&mut publisher, taken)??
        };
        // The instance is free again while the PubAck travels: other publishes go ahead.
        match pending.outcome().await {
            Ok(ack) => Ok(ack.into()),
            Err(failed) => Err(self.publish_failure(failed).await),
        }
    }

    /// What a publish whose PubAck failed reports: the component's verdict. Should the
    /// component be unable to give one (a trap, or an instance that cannot be re-created),
    /// the failure is reported as retriable with the host's text, rather than replaced by
    /// that other error: the message may or may not have been stored.
    async fn publish_failure(&self, failed: FailedPublish) -> Error {
        self.publish_verdict(failed).await.into()
    }

    /// The component's verdict on a failed publish, or the host's retriable fallback.
    async fn publish_verdict(&self, failed: FailedPublish) -> types::Error {
        let FailedPublish { subject, error } = failed;
        let verdict = async {
            let mut publisher = self.publisher().await?;
            let (api, store) = publisher.instance.call();
            let failure = error.clone().into();
            let verdict = api.call_publish_failed(store, &subject, &failure).await;
            note_trap(&mut publisher, verdict)
        }
        .await;
        match verdict {
            Ok(verdict) => verdict,
            Err(err) => {
                let failure = crate::transport::describe(&error);
                tracing::warn!(error = %err, failure = %failure, "the component gave no verdict on a failed publish; reported as retriable");
                types::Error::Retriable(failure)
            }
        }
    }

    /// Publishes many entries to `topic`, pipelined; one result per entry, in order.
    pub async fn bulk_publish(
        &self,
        topic: &str,
        entries: Vec<BulkEntry>,
        metadata: Metadata,
    ) -> Result<Vec<BulkEntryResult>, Error> {
        let metrics = self.published.of(&self.runtime.labels, topic);
        let count = entries.len();
        let results = self.bulk_publish_unrecorded(topic, entries, metadata).await;
        match &results {
            Ok(results) => results
                .iter()
                .for_each(|entry| metrics.bulk_entry(outcome_of(&entry.outcome))),
            // Every entry failed with the call.
            Err(err) => {
                let outcome = failed(err);
                (0..count).for_each(|_| metrics.bulk_entry(outcome));
            }
        }
        results
    }

    async fn bulk_publish_unrecorded(
        &self,
        topic: &str,
        entries: Vec<BulkEntry>,
        metadata: Metadata,
    ) -> Result<Vec<BulkEntryResult>, Error> {
        // The entry ids stay here and are paired with the outcomes, which come in order.
        let (entry_ids, entries): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .map(|e| {
                let entry = types::BulkEntry {
                    data: e.data,
                    content_type: e.content_type,
                    metadata: e.metadata,
                };
                (e.entry_id, entry)
            })
            .unzip();
        let request = types::BulkPublishRequest {
            topic: topic.to_string(),
            entries,
            metadata,
        };
        let (sent, refused) = {
            let mut publisher = self.publisher().await?;
            let (api, store) = publisher.instance.call();
            let result = api.call_bulk_publish(store, &request).await;
            let taken = match note_trap(&mut publisher, result)? {
                Ok(pubsub::BulkSent { sent, refused }) => match sent {
                    Some(sent) => publisher
                        .instance
                        .store
                        .data_mut()
                        .take_pending_batch(sent)
                        .map(|sent| Ok((Some(sent), refused))),
                    None => Ok(Ok((None, refused))),
                },
                Err(err) => Ok(Err(err)),
            };
            publisher.replace_if_keeping_pending_acks();
            let (sent, refused) = note_trap(&mut publisher, taken)??;
            let sent_count = sent.as_ref().map_or(0, PendingBatch::len);
            // A component that loses or invents entries is replaced like one that trapped.
            // What it did send may have been stored; the caller learns that the bulk failed.
            let refused = refusals_by_entry(entry_ids.len(), sent_count, refused)
                .inspect_err(|_| publisher.poisoned = true)?;
            (sent, refused)
        };
        // The instance is free again while the PubAcks travel.
        let mut acks = match sent {
            Some(sent) => sent.outcomes().await,
            None => Vec::new(),
        }
        .into_iter();
        // One verdict per distinct failure: a batch that failed as a whole (the stream
        // gone, the server away) costs one call into the component, not one per entry.
        let mut verdicts: Vec<(String, types::Error)> = Vec::new();
        let mut results = Vec::with_capacity(entry_ids.len());
        for (entry_id, refusal) in entry_ids.into_iter().zip(refused) {
            let outcome = match refusal {
                Some(refusal) => Err(refusal.into()),
                None => match acks.next() {
                    Some(Ok(ack)) => Ok(ack.into()),
                    Some(Err(failed)) => {
                        let failure = crate::transport::describe(&failed.error);
                        let verdict = match verdicts.iter().find(|(seen, _)| *seen == failure) {
                            Some((_, verdict)) => verdict.clone(),
                            None => {
                                let verdict = self.publish_verdict(failed).await;
                                verdicts.push((failure, verdict.clone()));
                                verdict
                            }
                        };
                        Err(verdict.into())
                    }
                    // refusals_by_entry checked that every entry not refused was sent.
                    None => Err(Error::Trap(
                        "the component sent fewer messages than entries".into(),
                    )),
                },
            };
            results.push(BulkEntryResult { entry_id, outcome });
        }
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(text: &str) -> types::Error {
        types::Error::InvalidMetadata(text.to_string())
    }

    #[test]
    fn refusals_are_placed_by_entry_between_the_sent_messages() {
        let placed =
            refusals_by_entry(4, 2, vec![(1, refusal("second")), (3, refusal("fourth"))]).unwrap();
        let texts: Vec<_> = placed
            .iter()
            .map(|slot| match slot {
                Some(types::Error::InvalidMetadata(text)) => Some(text.as_str()),
                Some(other) => panic!("unexpected {other:?}"),
                None => None,
            })
            .collect();
        assert_eq!(texts, vec![None, Some("second"), None, Some("fourth")]);
        assert!(refusals_by_entry(0, 0, Vec::new()).unwrap().is_empty());
    }

    #[test]
    fn a_component_that_loses_or_invents_entries_is_caught() {
        let err = refusals_by_entry(3, 1, vec![(0, refusal("x"))]).unwrap_err();
        assert_eq!(
            err.to_string(),
            Error::Trap(
                "the component sent 1 messages and refused 1 entries of a bulk publish of 3".into()
            )
            .to_string()
        );
        for refused in [
            vec![(0, refusal("x")), (0, refusal("again"))],
            vec![(0, refusal("x")), (2, refusal("beyond"))],
        ] {
            let err = refusals_by_entry(2, 0, refused).unwrap_err();
            assert!(
                matches!(&err, Error::Trap(text) if text.contains("twice, or one that does not exist")),
                "{err:?}"
            );
        }
    }
}
