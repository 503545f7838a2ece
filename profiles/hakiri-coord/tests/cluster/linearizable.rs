//! A Wing–Gong linearizability checker for a read/write register, with the
//! usual memoization (Lowe's WGL): each key's history is checked alone
//! (registers compose).

use std::collections::HashSet;
use std::time::Instant;

#[derive(Debug, Clone)]
pub enum Call {
    Write(String),
    /// What the read returned (`None`: the key was absent).
    Read(Option<String>),
}

#[derive(Debug, Clone)]
pub struct Op {
    pub call: Call,
    pub invoked: Instant,
    /// `None`: no answer (a write that may or may not have happened).
    pub returned: Option<Instant>,
}

/// Whether some order of `ops`, respecting real time, explains every read
/// from the register starting absent. Unanswered writes may land any time
/// after they were invoked, or never; unanswered reads carry no information
/// and must be left out by the caller.
pub fn linearizable(ops: &[Op]) -> bool {
    let mut seen = HashSet::new();
    search(ops, &mut vec![false; ops.len()], None, &mut seen)
}

fn search(
    ops: &[Op],
    done: &mut Vec<bool>,
    state: Option<&str>,
    seen: &mut HashSet<(Vec<bool>, Option<String>)>,
) -> bool {
    // Finished once every answered op is placed; unanswered writes may never have happened.
    if ops
        .iter()
        .zip(done.iter())
        .all(|(op, d)| *d || op.returned.is_none())
    {
        return true;
    }
    if !seen.insert((done.clone(), state.map(String::from))) {
        return false;
    }
    // An op may go next only if no pending op answered before it was invoked.
    let first_answer = ops
        .iter()
        .zip(done.iter())
        .filter(|(_, d)| !**d)
        .filter_map(|(op, _)| op.returned)
        .min();
    for i in 0..ops.len() {
        if done[i] || first_answer.is_some_and(|t| ops[i].invoked > t) {
            continue;
        }
        let next = match &ops[i].call {
            Call::Write(v) => Some(v.as_str()),
            Call::Read(r) if r.as_deref() == state => state,
            Call::Read(_) => continue,
        };
        done[i] = true;
        let ok = search(ops, done, next, seen);
        done[i] = false;
        if ok {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(base: Instant, from: u64, to: Option<u64>, call: Call) -> Op {
        Op {
            call,
            invoked: base + Duration::from_millis(from),
            returned: to.map(|t| base + Duration::from_millis(t)),
        }
    }

    #[test]
    fn the_checker_accepts_overlaps_and_refuses_stale_reads() {
        let b = Instant::now();
        let w = |v: &str| Call::Write(v.into());
        let r = |v: Option<&str>| Call::Read(v.map(String::from));
        // Concurrent write and read: either value may be read.
        assert!(linearizable(&[
            at(b, 0, Some(10), w("a")),
            at(b, 5, Some(8), r(None))
        ]));
        assert!(linearizable(&[
            at(b, 0, Some(10), w("a")),
            at(b, 5, Some(8), r(Some("a")))
        ]));
        // A read after a finished write must see it.
        assert!(!linearizable(&[
            at(b, 0, Some(10), w("a")),
            at(b, 20, Some(30), r(None))
        ]));
        // Once a read saw the new value, a later read cannot see the old one.
        let stale = [
            at(b, 0, Some(10), w("a")),
            at(b, 20, Some(100), w("b")),
            at(b, 30, Some(40), r(Some("b"))),
            at(b, 50, Some(60), r(Some("a"))),
        ];
        assert!(!linearizable(&stale));
        // An unanswered write may have landed late, or never.
        assert!(linearizable(&[
            at(b, 0, None, w("a")),
            at(b, 50, Some(60), r(Some("a")))
        ]));
        assert!(linearizable(&[
            at(b, 0, None, w("a")),
            at(b, 50, Some(60), r(None))
        ]));
    }
}
