//! In-process notification of state changes, so that watch streams learn of an
//! answer the moment it is stored. Watchers re-read the store on every change
//! (and after missing some), so an event only needs to say what changed.

use tokio::sync::broadcast;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A challenge's state.
    Challenge(String),
    /// An enrollment's state.
    Enrollment(String),
}

/// The change feed.
#[derive(Debug, Clone)]
pub struct Events {
    sender: broadcast::Sender<Change>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(4096).0,
        }
    }
}

impl Events {
    /// Tells every watcher of this object to look again.
    pub fn publish(&self, change: Change) {
        // No receivers is normal: nobody is watching.
        let _ = self.sender.send(change);
    }

    /// Starts receiving changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}
