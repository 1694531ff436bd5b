//! The component instances of one server, by the name daprd gives them, and the streams
//! each one serves.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::{mpsc, watch};

use crate::{PubSub, Runtime};

/// What a stream's task is told to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Stop taking new messages (Dapr's `Pause`).
    Pause,
    /// Take messages again.
    Resume,
    /// End the stream gracefully (the instance is replaced or closed).
    End,
}

/// A live `PullMessages` stream, as its instance sees it.
pub(crate) struct StreamHandle {
    /// The topic it pulls.
    pub(crate) topic: String,
    pub(crate) control: mpsc::UnboundedSender<Control>,
    /// True once the stream has ended and its subscription has stopped.
    pub(crate) done: watch::Receiver<bool>,
}

/// One component instance: one Component YAML in daprd.
pub(crate) struct ComponentInstance {
    /// The `x-component-instance` value (empty when daprd sent none).
    pub(crate) name: String,
    /// The runtime of this instance: its own NATS clients, and its own policy.
    runtime: Runtime,
    pub(crate) pubsub: PubSub,
    streams: std::sync::Mutex<Vec<StreamHandle>>,
    paused: AtomicBool,
}

impl ComponentInstance {
    pub(crate) fn new(name: String, runtime: Runtime, pubsub: PubSub) -> Self {
        Self {
            name,
            runtime,
            pubsub,
            streams: std::sync::Mutex::default(),
            paused: AtomicBool::new(false),
        }
    }

    /// Registers a stream; true when it must start paused.
    pub(crate) fn add_stream(&self, handle: StreamHandle) -> bool {
        let mut streams = lock(&self.streams);
        streams.retain(|stream| !*stream.done.borrow());
        streams.push(handle);
        self.paused.load(Ordering::SeqCst)
    }

    /// Waits, at most `wait`, until every stream of this instance pulling `topic` has
    /// ended and its subscription has stopped; false when it had none (an ended stream is
    /// kept until the next one is added), or one was still running when `wait` ran out.
    pub(crate) async fn streams_ended(&self, topic: &str, wait: std::time::Duration) -> bool {
        let running: Vec<_> = {
            let streams = lock(&self.streams);
            let mut on_topic = streams
                .iter()
                .filter(|stream| stream.topic == topic)
                .peekable();
            if on_topic.peek().is_none() {
                return false;
            }
            on_topic
                .filter(|stream| !*stream.done.borrow())
                .map(|stream| stream.done.clone())
                .collect()
        };
        let all_ended = futures::future::join_all(running.into_iter().map(|mut done| async move {
            let _ = done.wait_for(|done| *done).await;
        }));
        tokio::time::timeout(wait, all_ended).await.is_ok()
    }

    /// Pauses every stream, and the streams opened until [`resume`](Self::resume).
    pub(crate) fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        self.tell(Control::Pause);
    }

    /// Resumes every stream.
    pub(crate) fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.tell(Control::Resume);
    }

    fn tell(&self, control: Control) {
        for stream in lock(&self.streams).iter() {
            let _ = stream.control.send(control);
        }
    }

    /// Ends every stream gracefully, then closes the component and its connections.
    pub(crate) async fn close(&self) {
        let streams = std::mem::take(&mut *lock(&self.streams));
        for stream in &streams {
            let _ = stream.control.send(Control::End);
        }
        for mut stream in streams {
            let _ = stream.done.wait_for(|done| *done).await;
        }
        if let Err(err) = self.pubsub.close().await {
            tracing::warn!(instance = %self.name, error = %err, "closing the component failed");
        }
        self.runtime.shutdown().await;
    }
}

/// The instances of a server, by name.
#[derive(Default)]
pub(crate) struct Instances {
    by_name: std::sync::Mutex<HashMap<String, Arc<ComponentInstance>>>,
    closing: AtomicBool,
}

impl Instances {
    /// The instance named `name`, if it was initialised.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<ComponentInstance>> {
        lock(&self.by_name).get(name).cloned()
    }

    /// True once the server is shutting down.
    pub(crate) fn closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Puts `instance` under its name and returns the one it replaces. `Err` gives it
    /// back when the server is shutting down.
    pub(crate) fn insert(
        &self,
        instance: Arc<ComponentInstance>,
    ) -> Result<Option<Arc<ComponentInstance>>, Arc<ComponentInstance>> {
        let mut by_name = lock(&self.by_name);
        // Checked under the lock `close_all` takes: no instance slips in after it.
        if self.closing() {
            return Err(instance);
        }
        Ok(by_name.insert(instance.name.clone(), instance))
    }

    /// Refuses new instances and streams, then closes every instance.
    pub(crate) async fn close_all(&self) {
        let all: Vec<_> = {
            let mut by_name = lock(&self.by_name);
            self.closing.store(true, Ordering::SeqCst);
            by_name.drain().map(|(_, instance)| instance).collect()
        };
        futures::future::join_all(all.iter().map(|instance| instance.close())).await;
    }
}

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
