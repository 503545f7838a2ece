//! Durable Raft storage in one redb file, `<data_dir>/raft.redb`.
//!
//! redb because it is the smallest well-kept embedded store that gives
//! crash-safe, fsynced commits: pure Rust (no C to cross-compile, ~0.3 MB in
//! the binary) where SQLite would add its ~1.2 MB C library to a coordinator
//! that links no SQLite today. Every record carries a CRC-32 of its bytes, so
//! a damaged file is refused at start-up with the record named, instead of
//! being served.
//!
//! * table `log`: index → entry
//! * table `meta`: `identity`, `vote`, `committed`, `purged`, `snapshot`

mod log;
mod machine;

pub use log::LogStore;
pub use machine::{Fence, Lease, Request, Response, StateMachine, Versioned};

use crate::TypeConfig;
use openraft::{BasicNode, Entry, LogId, SnapshotMeta, Vote};
use redb::{Database, TableDefinition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use thiserror::Error;

type NodeId = u64;

/// redb's page cache: its 1 GiB default would make a coordinator's idle RSS
/// grow with its log; the log is read back rarely (followers catching up).
const CACHE_BYTES: usize = 4 << 20;

const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Why the store could not be opened or used.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("raft data in {path} is damaged: {what}; restore the directory from a backup, or remove node from the cluster (`hakiri cluster remove <id>`), wipe the directory and join again")]
    Damaged { path: PathBuf, what: String },
    #[error("raft data in {path} belongs to {found}, but this node is configured as {configured}; point [raft] data_dir elsewhere or fix [raft] node_id/cluster")]
    NotOurs {
        path: PathBuf,
        found: String,
        configured: String,
    },
    #[error(
        "{path} is open in another process: is a node already running on this data directory?"
    )]
    InUse { path: PathBuf },
    #[error("cannot use raft data in {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: Box<redb::Error>,
    },
}

/// Who a data directory belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    cluster: String,
    node_id: NodeId,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node {} of cluster `{}`", self.node_id, self.cluster)
    }
}

/// A snapshot as stored: its metadata and the state machine's data.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta<NodeId, BasicNode>,
    state: machine::State,
}

/// The opened file, shared by the log store and the state machine.
#[derive(Clone)]
pub(crate) struct Db {
    db: Arc<Database>,
    path: Arc<PathBuf>,
}

/// A record's bytes: CRC-32 (little-endian) of the JSON, then the JSON.
fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    let json = serde_json::to_vec(value).expect("raft records serialize");
    let mut out = crc32fast::hash(&json).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out
}

impl Db {
    fn damaged(&self, what: impl Into<String>) -> StoreError {
        StoreError::Damaged {
            path: (*self.path).clone(),
            what: what.into(),
        }
    }

    fn io(&self, e: impl Into<redb::Error>) -> StoreError {
        StoreError::Io {
            path: (*self.path).clone(),
            cause: Box::new(e.into()),
        }
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8], what: &str) -> Result<T, StoreError> {
        if bytes.len() < 4 {
            return Err(self.damaged(format!("{what} is truncated")));
        }
        let (sum, json) = bytes.split_at(4);
        if crc32fast::hash(json).to_le_bytes() != sum {
            return Err(self.damaged(format!("{what} fails its checksum")));
        }
        serde_json::from_slice(json)
            .map_err(|e| self.damaged(format!("{what} does not decode: {e}")))
    }

    fn meta<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.io(e))?;
        let table = match tx.open_table(META) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(self.io(e)),
        };
        match table.get(key).map_err(|e| self.io(e))? {
            Some(v) => self.decode(v.value(), &format!("record `{key}`")).map(Some),
            None => Ok(None),
        }
    }

    /// Writes meta records in one transaction; `durable` fsyncs before returning.
    fn put_meta(&self, records: &[(&str, Vec<u8>)], durable: bool) -> Result<(), StoreError> {
        let mut tx = self.db.begin_write().map_err(|e| self.io(e))?;
        if !durable {
            tx.set_durability(redb::Durability::None);
        }
        {
            let mut table = tx.open_table(META).map_err(|e| self.io(e))?;
            for (key, bytes) in records {
                table
                    .insert(*key, bytes.as_slice())
                    .map_err(|e| self.io(e))?;
            }
        }
        tx.commit().map_err(|e| self.io(e))
    }

    fn entries(
        &self,
        range: (std::ops::Bound<u64>, std::ops::Bound<u64>),
    ) -> Result<Vec<Entry<TypeConfig>>, StoreError> {
        let tx = self.db.begin_read().map_err(|e| self.io(e))?;
        let table = match tx.open_table(LOG) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.io(e)),
        };
        let mut out = Vec::new();
        for row in table.range::<u64>(range).map_err(|e| self.io(e))? {
            let (k, v) = row.map_err(|e| self.io(e))?;
            let index = k.value();
            let entry: Entry<TypeConfig> = self.decode(v.value(), &format!("log entry {index}"))?;
            if entry.log_id.index != index {
                return Err(self.damaged(format!(
                    "log entry stored at {index} claims index {}",
                    entry.log_id.index
                )));
            }
            out.push(entry);
        }
        Ok(out)
    }
}

/// Opens (or creates) `<dir>/raft.redb` for `node_id` of `cluster`, checking
/// every record before anything is served.
pub fn open(
    dir: &Path,
    cluster: &str,
    node_id: NodeId,
) -> Result<(LogStore, StateMachine), StoreError> {
    let path = dir.join("raft.redb");
    let io = |e: redb::Error| StoreError::Io {
        path: path.clone(),
        cause: Box::new(e),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(redb::Error::Io(e)))?;
    let existed = path.exists();
    // redb asserts (panics) on some damage, e.g. a file shorter than its header says.
    let opened = hakiri_kernel::panics::caught(|| {
        redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
    })
    .map_err(|panic| StoreError::Damaged {
        path: path.clone(),
        what: format!("redb cannot open it ({panic})"),
    })?;
    let db = opened.map_err(|e| match e {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(what)) => StoreError::Damaged {
            path: path.clone(),
            what,
        },
        redb::DatabaseError::Storage(redb::StorageError::Io(e))
            if e.kind() == std::io::ErrorKind::InvalidData
                || e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            StoreError::Damaged {
                path: path.clone(),
                what: e.to_string(),
            }
        }
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::InUse { path: path.clone() },
        e => io(e.into()),
    })?;
    let db = Db {
        db: Arc::new(db),
        path: Arc::new(path),
    };
    let configured = Identity {
        cluster: cluster.to_string(),
        node_id,
    };
    match db.meta::<Identity>("identity")? {
        Some(found) if found != configured => {
            return Err(StoreError::NotOurs {
                path: (*db.path).clone(),
                found: found.to_string(),
                configured: configured.to_string(),
            })
        }
        Some(_) => {}
        None => {
            // A file that existed holds an identity from its first start: a
            // missing one means records were lost.
            if existed
                && !db
                    .entries((std::ops::Bound::Unbounded, std::ops::Bound::Unbounded))?
                    .is_empty()
            {
                return Err(db.damaged("the node's identity record is missing"));
            }
            db.put_meta(&[("identity", encode(&configured))], true)?;
        }
    }
    verify(&db)?;
    let log = LogStore::new(db.clone());
    let machine = StateMachine::load(db)?;
    Ok((log, machine))
}

/// Reads every record once: checksums, contiguous indices after the purged
/// point, and a log that reaches what was committed.
fn verify(db: &Db) -> Result<(), StoreError> {
    let _vote: Option<Vote<NodeId>> = db.meta("vote")?;
    let purged: Option<LogId<NodeId>> = db.meta("purged")?;
    let committed: Option<LogId<NodeId>> = db.meta::<Option<LogId<NodeId>>>("committed")?.flatten();
    let snapshot: Option<StoredSnapshot> = db.meta("snapshot")?;
    let entries = db.entries((std::ops::Bound::Unbounded, std::ops::Bound::Unbounded))?;
    let mut expected = purged.map(|p| p.index + 1);
    for e in &entries {
        if let Some(want) = expected {
            if e.log_id.index != want {
                return Err(db.damaged(format!(
                    "the log skips from index {} to {}",
                    want.saturating_sub(1),
                    e.log_id.index
                )));
            }
        }
        expected = Some(e.log_id.index + 1);
    }
    let last = entries
        .last()
        .map(|e| e.log_id.index)
        .or(purged.map(|p| p.index));
    let snap = snapshot.and_then(|s| s.meta.last_log_id).map(|l| l.index);
    let reach = last.max(snap);
    if let Some(c) = committed {
        if reach < Some(c.index) {
            return Err(db.damaged(format!(
                "the log ends at index {} but index {} was committed: entries were lost",
                reach.map_or("none".into(), |r| r.to_string()),
                c.index
            )));
        }
    }
    Ok(())
}

type Job = Box<dyn FnOnce() + Send>;

/// The store's own thread: redb serializes writers anyway, and one thread
/// (rather than tokio's blocking pool, which grows a thread, and an
/// allocator heap, per concurrent fsync) keeps a busy node's footprint flat.
fn worker() -> &'static std::sync::Mutex<std::sync::mpsc::Sender<Job>> {
    static WORKER: std::sync::OnceLock<std::sync::Mutex<std::sync::mpsc::Sender<Job>>> =
        std::sync::OnceLock::new();
    WORKER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("raft-store".into())
            .spawn(move || {
                for job in rx {
                    job();
                }
            })
            .expect("cannot start the raft store thread");
        std::sync::Mutex::new(tx)
    })
}

/// Runs a store operation on the store's thread (redb blocks on fsync); a
/// panic in it is an error, not a lost thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, std::io::Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(out);
    });
    let sent = worker().lock().unwrap_or_else(|p| p.into_inner()).send(job);
    if sent.is_err() {
        return Err(std::io::Error::other("the raft store thread has stopped"));
    }
    match rx.await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(e))) => Err(std::io::Error::other(e)),
        Ok(Err(panic)) => Err(std::io::Error::other(format!(
            "raft store operation crashed: {}",
            hakiri_kernel::panics::message(&*panic)
        ))),
        Err(_) => Err(std::io::Error::other(
            "the raft store thread dropped an operation",
        )),
    }
}
