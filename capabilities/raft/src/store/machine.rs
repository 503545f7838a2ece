//! The replicated state: versioned keys with compare-and-swap, and leases
//! with fencing tokens. Applied in memory; snapshots are written to the
//! store, and a restart loads the last one and replays the log after it.

use super::{blocking, encode, Db, StoreError, StoredSnapshot};
use crate::TypeConfig;
use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex, MutexGuard};

type NodeId = u64;

/// A client write: what the state machine applies. Time (`now_ms`) comes
/// from the leader that proposed it, so every replica decides alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "op")]
pub enum Request {
    /// Sets `key`. With `expect`, only if the key is at that version (0:
    /// absent). With `fence`, only while that lease is held with that token.
    Put {
        key: String,
        value: String,
        #[serde(default)]
        expect: Option<u64>,
        #[serde(default)]
        fence: Option<Fence>,
    },
    /// Removes `key`, under the same conditions as `Put`.
    Delete {
        key: String,
        #[serde(default)]
        expect: Option<u64>,
        #[serde(default)]
        fence: Option<Fence>,
    },
    /// Takes lease `name` for `holder` until `now_ms + ttl_ms`, if it is free,
    /// expired, or already `holder`'s (a renewal keeps the token).
    Acquire {
        name: String,
        holder: String,
        ttl_ms: u64,
        now_ms: u64,
    },
    /// Gives lease `name` back, if `token` still holds it.
    Release { name: String, token: u64 },
}

/// A lease that must still be held for a write to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Fence {
    pub lease: String,
    pub token: u64,
    /// When the writer proposes; stamped by the leader.
    #[serde(default)]
    pub now_ms: u64,
}

/// A key's value and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Versioned {
    pub value: String,
    /// 1 when created, +1 on every change.
    pub version: u64,
    /// The cluster revision of its last change.
    pub revision: u64,
}

/// A held lease.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Lease {
    pub holder: String,
    /// The fencing token: the revision that granted it, increasing over grants.
    pub token: u64,
    pub expires_ms: u64,
}

/// What applying a `Request` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Response {
    /// False when a condition (`expect`, `fence`, a held lease) failed; nothing changed.
    pub succeeded: bool,
    /// The cluster revision after this request.
    pub revision: u64,
    /// The key after the write, or as it stands when the write did not apply.
    pub current: Option<Versioned>,
    /// The key before a successful write.
    pub previous: Option<Versioned>,
    /// The lease after `acquire`, or its holder when it was refused.
    pub lease: Option<Lease>,
    /// Why the request did not apply.
    pub reason: Option<String>,
}

/// The replicated data, as snapshots carry it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    revision: u64,
    keys: BTreeMap<String, Versioned>,
    leases: BTreeMap<String, Lease>,
}

impl State {
    fn fence_holds(&self, fence: &Option<Fence>) -> Result<(), String> {
        let Some(f) = fence else { return Ok(()) };
        match self.leases.get(&f.lease) {
            Some(l) if l.token == f.token && l.expires_ms >= f.now_ms => Ok(()),
            Some(l) if l.token == f.token => Err(format!(
                "lease `{}` (token {}) expired; acquire it again",
                f.lease, f.token
            )),
            Some(l) => Err(format!(
                "lease `{}` is now held by {} with token {}, not token {}",
                f.lease, l.holder, l.token, f.token
            )),
            None => Err(format!(
                "lease `{}` is not held (token {} was released or never granted)",
                f.lease, f.token
            )),
        }
    }

    /// A write's conditions: its fence, and its expected version.
    fn conditions_hold(
        &self,
        key: &str,
        now: Option<&Versioned>,
        expect: Option<u64>,
        fence: &Option<Fence>,
    ) -> Result<(), String> {
        self.fence_holds(fence)?;
        let at = now.map_or(0, |v| v.version);
        match expect {
            Some(e) if e != at => Err(format!("key `{key}` is at version {at}, not {e}")),
            _ => Ok(()),
        }
    }

    fn apply(&mut self, req: Request) -> Response {
        let refuse =
            |current: Option<Versioned>, lease: Option<Lease>, revision, why: String| Response {
                succeeded: false,
                revision,
                current,
                lease,
                reason: Some(why),
                ..Default::default()
            };
        match req {
            Request::Put {
                key,
                value,
                expect,
                fence,
            } => {
                let now = self.keys.get(&key).cloned();
                if let Err(why) = self.conditions_hold(&key, now.as_ref(), expect, &fence) {
                    return refuse(now, None, self.revision, why);
                }
                let at = now.as_ref().map_or(0, |v| v.version);
                self.revision += 1;
                let next = Versioned {
                    value,
                    version: at + 1,
                    revision: self.revision,
                };
                self.keys.insert(key, next.clone());
                Response {
                    succeeded: true,
                    revision: self.revision,
                    current: Some(next),
                    previous: now,
                    ..Default::default()
                }
            }
            Request::Delete { key, expect, fence } => {
                let now = self.keys.get(&key).cloned();
                if let Err(why) = self.conditions_hold(&key, now.as_ref(), expect, &fence) {
                    return refuse(now, None, self.revision, why);
                }
                if now.is_some() {
                    self.revision += 1;
                    self.keys.remove(&key);
                }
                Response {
                    succeeded: true,
                    revision: self.revision,
                    previous: now,
                    ..Default::default()
                }
            }
            Request::Acquire {
                name,
                holder,
                ttl_ms,
                now_ms,
            } => {
                let held = self.leases.get(&name).cloned();
                match held {
                    Some(l) if l.holder != holder && l.expires_ms >= now_ms => {
                        let why = format!(
                            "lease `{name}` is held by {} until {} ms",
                            l.holder, l.expires_ms
                        );
                        refuse(None, Some(l), self.revision, why)
                    }
                    held => {
                        self.revision += 1;
                        let token = match held {
                            Some(l) if l.holder == holder && l.expires_ms >= now_ms => l.token,
                            _ => self.revision,
                        };
                        let lease = Lease {
                            holder,
                            token,
                            expires_ms: now_ms.saturating_add(ttl_ms),
                        };
                        self.leases.insert(name, lease.clone());
                        Response {
                            succeeded: true,
                            revision: self.revision,
                            lease: Some(lease),
                            ..Default::default()
                        }
                    }
                }
            }
            Request::Release { name, token } => match self.leases.get(&name) {
                Some(l) if l.token == token => {
                    self.revision += 1;
                    self.leases.remove(&name);
                    Response {
                        succeeded: true,
                        revision: self.revision,
                        ..Default::default()
                    }
                }
                other => {
                    let why = format!("lease `{name}` is not held with token {token}");
                    refuse(None, other.cloned(), self.revision, why)
                }
            },
        }
    }
}

struct Inner {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    state: State,
    snapshot: Option<(SnapshotMeta<NodeId, BasicNode>, Vec<u8>)>,
}

/// The applied state; clones share it, so the capability reads what Raft applied.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    db: Db,
}

/// Locks a mutex, ignoring poisoning: the data is plain values, never left half-updated.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl StateMachine {
    /// Starts from the stored snapshot, if any.
    pub(crate) fn load(db: Db) -> Result<StateMachine, StoreError> {
        let stored: Option<StoredSnapshot> = db.meta("snapshot")?;
        let inner = match stored {
            Some(s) => Inner {
                last_applied: s.meta.last_log_id,
                membership: s.meta.last_membership.clone(),
                snapshot: Some((
                    s.meta,
                    serde_json::to_vec(&s.state).expect("state serializes"),
                )),
                state: s.state,
            },
            None => Inner {
                last_applied: None,
                membership: StoredMembership::default(),
                state: State::default(),
                snapshot: None,
            },
        };
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(inner)),
            db,
        })
    }

    /// The applied value of `key`.
    pub fn get(&self, key: &str) -> Option<Versioned> {
        lock(&self.inner).state.keys.get(key).cloned()
    }

    /// Up to `limit` keys starting with `prefix`, in order, after `after`.
    pub fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Vec<(String, Versioned)> {
        let inner = lock(&self.inner);
        let start = after.unwrap_or(prefix).to_string();
        inner
            .state
            .keys
            .range(start..)
            .filter(|(k, _)| Some(k.as_str()) != after)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// The lease `name`, if held (possibly expired).
    pub fn lease(&self, name: &str) -> Option<Lease> {
        lock(&self.inner).state.leases.get(name).cloned()
    }

    /// The cluster revision applied here.
    pub fn revision(&self) -> u64 {
        lock(&self.inner).state.revision
    }

    async fn persist(
        &self,
        meta: SnapshotMeta<NodeId, BasicNode>,
        state: State,
    ) -> Result<(), StorageError<NodeId>> {
        let db = self.db.clone();
        let signature = meta.signature();
        let bytes = encode(&StoredSnapshot { meta, state });
        blocking(move || db.put_meta(&[("snapshot", bytes)], true))
            .await
            .map_err(|e| StorageIOError::write_snapshot(Some(signature), &e).into())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (meta, state) = {
            let inner = lock(&self.inner);
            let snapshot_id = match inner.last_applied {
                Some(id) => format!("{}-{}", id.leader_id, id.index),
                None => "empty".into(),
            };
            let meta = SnapshotMeta {
                last_log_id: inner.last_applied,
                last_membership: inner.membership.clone(),
                snapshot_id,
            };
            (meta, inner.state.clone())
        };
        let bytes =
            serde_json::to_vec(&state).map_err(|e| StorageIOError::read_state_machine(&e))?;
        self.persist(meta.clone(), state).await?;
        lock(&self.inner).snapshot = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let inner = lock(&self.inner);
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut inner = lock(&self.inner);
        let mut out = Vec::new();
        for entry in entries {
            inner.last_applied = Some(entry.log_id);
            let revision = inner.state.revision;
            out.push(match entry.payload {
                EntryPayload::Blank => Response {
                    succeeded: true,
                    revision,
                    ..Default::default()
                },
                EntryPayload::Normal(req) => inner.state.apply(req),
                EntryPayload::Membership(m) => {
                    inner.membership = StoredMembership::new(Some(entry.log_id), m);
                    Response {
                        succeeded: true,
                        revision,
                        ..Default::default()
                    }
                }
            });
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let bytes = snapshot.into_inner();
        let state: State = serde_json::from_slice(&bytes)
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        self.persist(meta.clone(), state.clone()).await?;
        let mut inner = lock(&self.inner);
        inner.state = state;
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some((meta.clone(), bytes));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let inner = lock(&self.inner);
        Ok(inner.snapshot.as_ref().map(|(meta, bytes)| Snapshot {
            meta: meta.clone(),
            snapshot: Box::new(Cursor::new(bytes.clone())),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, expect: Option<u64>) -> Request {
        Request::Put {
            key: key.into(),
            value: value.into(),
            expect,
            fence: None,
        }
    }

    #[test]
    fn compare_and_swap_applies_once() {
        let mut s = State::default();
        assert!(s.apply(put("k", "a", Some(0))).succeeded);
        let lost = s.apply(put("k", "b", Some(0)));
        assert!(!lost.succeeded);
        assert_eq!(lost.current.unwrap().value, "a");
        assert!(lost.reason.unwrap().contains("at version 1, not 0"));
        let won = s.apply(put("k", "c", Some(1)));
        assert_eq!((won.succeeded, won.current.unwrap().version), (true, 2));
        assert_eq!(s.revision, 2);
    }

    #[test]
    fn leases_fence_writers_that_lost_them() {
        let mut s = State::default();
        let acquire = |holder: &str, now_ms| Request::Acquire {
            name: "ds".into(),
            holder: holder.into(),
            ttl_ms: 100,
            now_ms,
        };
        let a = s.apply(acquire("a", 0)).lease.unwrap();
        let busy = s.apply(acquire("b", 50));
        assert!(!busy.succeeded && busy.reason.unwrap().contains("held by a"));
        // a's lease expires; b takes it with a larger token.
        let b = s.apply(acquire("b", 200)).lease.unwrap();
        assert!(b.token > a.token);
        let fenced = |token, now_ms| Request::Put {
            key: "k".into(),
            value: "v".into(),
            expect: None,
            fence: Some(Fence {
                lease: "ds".into(),
                token,
                now_ms,
            }),
        };
        let stale = s.apply(fenced(a.token, 210));
        assert!(!stale.succeeded, "{stale:?}");
        assert!(s.apply(fenced(b.token, 210)).succeeded);
        assert!(!s.apply(fenced(b.token, 400)).succeeded, "expired token");
    }
}
