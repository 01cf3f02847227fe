//! Repository locks: shared for backups, exclusive for prune.
//!
//! A lock is a sealed object under `locks/`. Taking one writes it first and
//! then looks at the others, so two processes racing for conflicting locks
//! both see each other and both back off; neither proceeds unseen. A lock is
//! refreshed every minute (a new object replaces the old, since objects are
//! never overwritten) and is stale after 30 minutes without refresh, or at
//! once when it was taken on this host by a process that no longer exists.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::backend::Kind;
use crate::error::{Error, Result};
use crate::format::{Lock, SealedKind};
use crate::repo::{Repository, hostname};

const REFRESH: Duration = Duration::from_secs(60);
/// How often the lock's refresher looks whether it should stop.
const STOP_CHECK_EVERY: Duration = Duration::from_millis(200);
const STALE_AFTER: i64 = 30 * 60;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Whether a lock no longer protects anything.
pub fn is_stale(lock: &Lock, now: i64, this_host: &str, alive: impl Fn(u32) -> bool) -> bool {
    if now - lock.refreshed > STALE_AFTER {
        return true;
    }
    lock.hostname == this_host && !alive(lock.pid)
}

fn process_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// A held lock; released when dropped.
#[derive(Debug)]
pub struct LockGuard {
    repo: Repository,
    name: Arc<std::sync::Mutex<String>>,
    stop: Arc<AtomicBool>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

impl Repository {
    /// Takes a shared (`exclusive = false`) or exclusive lock.
    pub fn lock(&self, exclusive: bool) -> Result<LockGuard> {
        let host = hostname();
        let pid = std::process::id();
        let t = now();
        let mine = Lock {
            exclusive,
            hostname: host.clone(),
            pid,
            time: t,
            refreshed: t,
        };
        let id = self
            .write_sealed(Kind::Lock, SealedKind::Lock, &mine)?
            .hex();
        let conflict = self.conflicting_lock(&id, exclusive, &host);
        match conflict {
            Ok(None) => {}
            Ok(Some(holder)) => {
                let _ = self.backend().delete(Kind::Lock, &id);
                return Err(Error::Locked {
                    holder,
                    hint: "wait for it to finish, or remove the lock if that process is gone"
                        .into(),
                });
            }
            Err(e) => {
                let _ = self.backend().delete(Kind::Lock, &id);
                return Err(e);
            }
        }
        let name = Arc::new(std::sync::Mutex::new(id));
        let stop = Arc::new(AtomicBool::new(false));
        let refresher = {
            let repo = self.clone();
            let name = name.clone();
            let stop = stop.clone();
            std::thread::spawn(move || refresh_loop(repo, mine, name, stop))
        };
        Ok(LockGuard {
            repo: self.clone(),
            name,
            stop,
            refresher: Some(refresher),
        })
    }

    /// Another live lock that conflicts with ours; stale locks are removed.
    fn conflicting_lock(&self, mine: &str, exclusive: bool, host: &str) -> Result<Option<String>> {
        let t = now();
        for (name, _) in self.backend().list(Kind::Lock)? {
            if name == mine {
                continue;
            }
            let lock: Lock = match self.read_sealed(Kind::Lock, SealedKind::Lock, &name) {
                Ok(lock) => lock,
                // Gone meanwhile: released by its holder.
                Err(Error::Missing(_)) => continue,
                Err(e) => return Err(e),
            };
            if is_stale(&lock, t, host, process_alive) {
                tracing::info!(lock = %name, holder = %lock.hostname, pid = lock.pid, "removing a stale lock");
                let _ = self.backend().delete(Kind::Lock, &name);
                continue;
            }
            if exclusive || lock.exclusive {
                let kind = if lock.exclusive {
                    "an exclusive"
                } else {
                    "a shared"
                };
                return Ok(Some(format!(
                    "{kind} lock of process {} on {} (locks/{})",
                    lock.pid,
                    lock.hostname,
                    &name[..12.min(name.len())]
                )));
            }
        }
        Ok(None)
    }

    /// Removes every lock, for an operator who knows no process holds one.
    pub fn unlock_all(&self) -> Result<usize> {
        let locks = self.backend().list(Kind::Lock)?;
        for (name, _) in &locks {
            self.backend().delete(Kind::Lock, name)?;
        }
        Ok(locks.len())
    }
}

fn refresh_loop(
    repo: Repository,
    mut lock: Lock,
    name: Arc<std::sync::Mutex<String>>,
    stop: Arc<AtomicBool>,
) {
    let step = STOP_CHECK_EVERY;
    let mut waited = Duration::ZERO;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(step);
        waited += step;
        if waited < REFRESH {
            continue;
        }
        waited = Duration::ZERO;
        lock.refreshed = now();
        match repo.write_sealed(Kind::Lock, SealedKind::Lock, &lock) {
            Ok(new) => {
                let mut current = name.lock().unwrap_or_else(|e| e.into_inner());
                let old = std::mem::replace(&mut *current, new.hex());
                let _ = repo.backend().delete(Kind::Lock, &old);
            }
            Err(error) => tracing::warn!(%error, "cannot refresh the repository lock"),
        }
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        let name = self.name.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Err(error) = self.repo.backend().delete(Kind::Lock, &name) {
            tracing::warn!(%error, "cannot remove the repository lock");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(host: &str, pid: u32, refreshed: i64) -> Lock {
        Lock {
            exclusive: false,
            hostname: host.into(),
            pid,
            time: refreshed,
            refreshed,
        }
    }

    #[test]
    fn staleness() {
        let now = 10_000;
        let alive = |pid: u32| pid == 1;
        assert!(!is_stale(&lock("h", 1, now), now, "h", alive));
        assert!(
            is_stale(&lock("h", 2, now), now, "h", alive),
            "dead process on this host"
        );
        assert!(
            !is_stale(&lock("other", 2, now), now, "h", alive),
            "cannot see other hosts' processes"
        );
        assert!(is_stale(
            &lock("other", 2, now - STALE_AFTER - 1),
            now,
            "h",
            alive
        ));
    }
}
