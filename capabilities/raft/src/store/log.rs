//! The Raft log, vote and committed id in redb. An append is reported
//! flushed only after its transaction is fsynced; the vote is fsynced before
//! `save_vote` returns.

use super::{blocking, encode, Db, LOG, META};
use crate::TypeConfig;
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{
    Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote,
};
use redb::ReadableTable;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

type NodeId = u64;

/// The log store; clones share the file.
#[derive(Clone)]
pub struct LogStore {
    db: Db,
    /// The committed id openraft last reported, written with the next
    /// append: a transaction of its own per commit cost as much as the
    /// append, and openraft needs it only as a hint (re-applying after a
    /// restart stops at the last one stored).
    committed: std::sync::Arc<std::sync::Mutex<Option<Option<LogId<NodeId>>>>>,
}

impl LogStore {
    pub(crate) fn new(db: Db) -> LogStore {
        LogStore {
            db,
            committed: Default::default(),
        }
    }

    fn committed(&self) -> std::sync::MutexGuard<'_, Option<Option<LogId<NodeId>>>> {
        self.committed.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn owned<RB: RangeBounds<u64>>(range: &RB) -> (Bound<u64>, Bound<u64>) {
    (range.start_bound().cloned(), range.end_bound().cloned())
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let db = self.db.clone();
        let range = owned(&range);
        blocking(move || db.entries(range))
            .await
            .map_err(|e| StorageIOError::read_logs(&e).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let db = self.db.clone();
        blocking(move || {
            let purged: Option<LogId<NodeId>> = db.meta("purged")?;
            let tx = db.db.begin_read().map_err(|e| db.io(e))?;
            let last = match tx.open_table(LOG) {
                Ok(t) => match t.last().map_err(|e| db.io(e))? {
                    Some((k, v)) => {
                        let e: Entry<TypeConfig> =
                            db.decode(v.value(), &format!("log entry {}", k.value()))?;
                        Some(e.log_id)
                    }
                    None => None,
                },
                Err(redb::TableError::TableDoesNotExist(_)) => None,
                Err(e) => return Err(db.io(e)),
            };
            Ok(LogState {
                last_purged_log_id: purged,
                last_log_id: last.or(purged),
            })
        })
        .await
        .map_err(|e| StorageIOError::read_logs(&e).into())
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let db = self.db.clone();
        let bytes = encode(vote);
        blocking(move || db.put_meta(&[("vote", bytes)], true))
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        let db = self.db.clone();
        blocking(move || db.meta("vote"))
            .await
            .map_err(|e| StorageIOError::read_vote(&e).into())
    }

    /// Kept in memory and written with the next append (see `committed`).
    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        *self.committed() = Some(committed);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        if let Some(c) = *self.committed() {
            return Ok(c);
        }
        let db = self.db.clone();
        blocking(move || Ok(db.meta::<Option<LogId<NodeId>>>("committed")?.flatten()))
            .await
            .map_err(|e| StorageIOError::read(&e).into())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let rows: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| (e.log_id.index, encode(&e)))
            .collect();
        let db = self.db.clone();
        let written = blocking(move || {
            let tx = db.db.begin_write().map_err(|e| db.io(e))?;
            {
                let mut table = tx.open_table(LOG).map_err(|e| db.io(e))?;
                for (index, bytes) in &rows {
                    table
                        .insert(*index, bytes.as_slice())
                        .map_err(|e| db.io(e))?;
                }
            }
            tx.commit().map_err(|e| db.io(e))
        })
        .await;
        match written {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                let err = StorageIOError::write_logs(&e).into();
                callback.log_io_completed(Err(e));
                Err(err)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.db.begin_write().map_err(|e| db.io(e))?;
            {
                let mut table = tx.open_table(LOG).map_err(|e| db.io(e))?;
                table
                    .retain_in(log_id.index.., |_, _| false)
                    .map_err(|e| db.io(e))?;
            }
            tx.commit().map_err(|e| db.io(e))
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.db.begin_write().map_err(|e| db.io(e))?;
            {
                let mut meta = tx.open_table(META).map_err(|e| db.io(e))?;
                meta.insert("purged", encode(&log_id).as_slice())
                    .map_err(|e| db.io(e))?;
                let mut table = tx.open_table(LOG).map_err(|e| db.io(e))?;
                table
                    .retain_in(..=log_id.index, |_, _| false)
                    .map_err(|e| db.io(e))?;
            }
            tx.commit().map_err(|e| db.io(e))
        })
        .await
        .map_err(|e| StorageIOError::write_logs(&e).into())
    }
}
