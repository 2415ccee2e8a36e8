//! Notification of state changes, so that watch streams learn of an answer
//! the moment it is stored. Watchers re-read the store on every change (and
//! after missing some), so an event only needs to say what changed.
//!
//! With SQLite, one process writes, and the domain publishes its own changes
//! here. With PostgreSQL, several replicas write: the database announces every
//! change itself (`NOTIFY`), and [`crate::store::ChangeFeed`] delivers those
//! announcements here, including this replica's own; `publish` then leaves
//! the work to the database.

use tokio::sync::broadcast;

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A challenge's state (or its push deliveries).
    Challenge(String),
    /// An enrollment's state.
    Enrollment(String),
    /// Anything may have changed (announcements may have been lost): every
    /// watcher re-reads.
    Everything,
}

/// The change feed.
#[derive(Debug, Clone)]
pub struct Events {
    sender: broadcast::Sender<Change>,
    announced_by_database: bool,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(4096).0,
            announced_by_database: false,
        }
    }
}

impl Events {
    /// A feed whose changes the database announces: [`Events::publish`] does
    /// nothing, and the database's announcements arrive through
    /// [`Events::deliver`].
    pub fn announced_by_database() -> Self {
        Self {
            announced_by_database: true,
            ..Self::default()
        }
    }

    /// Tells every watcher of this object to look again (unless the
    /// database announces it).
    pub fn publish(&self, change: Change) {
        if !self.announced_by_database {
            self.deliver(change);
        }
    }

    /// Hands a change to every watcher.
    pub fn deliver(&self, change: Change) {
        // No receivers is normal: nobody is watching.
        let _ = self.sender.send(change);
    }

    /// Starts receiving changes.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }
}
