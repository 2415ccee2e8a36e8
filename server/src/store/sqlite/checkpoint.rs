//! WAL checkpoints on a thread of their own.
//!
//! By default the commit that grows the WAL past 1,000 pages copies them into
//! the database file and syncs both, so every few hundred writes one caller
//! waited for the disk while holding the write lock. Here the write connection
//! never checkpoints on its own; this thread copies the WAL into the database
//! every [`INTERVAL`], in `PASSIVE` mode, which neither waits for nor blocks
//! readers and the writer.
//!
//! A WAL only starts over from its beginning when a write begins with all of
//! it copied, which under steady writes a checkpoint beside the writer almost
//! never achieves; the file would grow for ever. So once it holds more than
//! [`RESTART_FRAMES`], the thread takes the writer for a moment, copies the
//! few frames written since its last pass and waits for the reads still in
//! the WAL, and the next write starts the WAL over. So the WAL holds the
//! writes of the last pass or two: a few MB at ordinary loads, and tens of MB
//! under the benchmark's creation flood (docs/benchmarks.md).
//! Commits stay as durable as before: `synchronous = NORMAL` never synced at commit in WAL mode, only at
//! checkpoints, and checkpoints still sync.

use super::{connect, lock};
use crate::store::StoreResult;
use rusqlite::{Connection, OpenFlags};
use std::{
    path::Path,
    sync::{
        mpsc::{self, RecvTimeoutError},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::Duration,
};

/// How often the WAL is copied into the database file.
pub const INTERVAL: Duration = Duration::from_millis(200);
/// WAL frames (pages) beyond which the WAL is made to start over.
pub const RESTART_FRAMES: i64 = 1000;
/// The size the WAL file is cut back to when it starts over
/// (`journal_size_limit`): a burst that outran the checkpoints (a stalled
/// disk, a starved thread) would otherwise leave the file at its largest for
/// good, as SQLite reuses a WAL file rather than shrinking it.
pub const WAL_SIZE_LIMIT: i64 = RESTART_FRAMES * 4096;

/// The checkpoint thread; it stops when this is dropped.
#[derive(Debug)]
pub struct Checkpointer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database at `path`, whose only writer in this
    /// process is `writer`.
    pub fn start(path: &Path, writer: Arc<Mutex<Connection>>) -> StoreResult<Self> {
        let connection = connect(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                // Runs until the sender is dropped (a disconnect, not a timeout).
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    let restarted = checkpoint(&connection).and_then(|frames| {
                        if frames > RESTART_FRAMES {
                            restart(&lock(&writer))?;
                        }
                        Ok(())
                    });
                    if let Err(error) = restarted {
                        tracing::warn!(%error, "WAL checkpoint failed; retrying");
                    }
                }
            })?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// A `PASSIVE` checkpoint; returns how many frames the WAL holds.
fn checkpoint(connection: &Connection) -> rusqlite::Result<i64> {
    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))
}

/// A `RESTART` checkpoint: copies the rest of the WAL and waits for the reads
/// still inside it (microseconds), so that the next write surely starts it
/// over; without that wait, a read in flight at that moment made the WAL
/// grow by another pass's writes now and then.
fn restart(connection: &Connection) -> rusqlite::Result<()> {
    connection.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
