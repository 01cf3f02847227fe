//! Signing in: the login itself, its throttle (backoff armed before the
//! password check, hashes bounded, refusals recorded within a quota) and
//! signing out.

use super::*;

/// Exponential backoff after failed logins, per key (an account's email, a
/// client address). Kept in memory: a restart forgives.
#[derive(Debug)]
pub struct Throttle {
    state: Mutex<HashMap<String, (u32, Instant)>>,
    cap: Duration,
    /// Audit entries written for refused logins, per client address and
    /// minute.
    recorded: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// Password hashes under way at once (each holds 19 MiB).
    hashing: tokio::sync::Semaphore,
}

/// Refused logins recorded per client address and minute; one more entry
/// says that a flood began, and the rest go unrecorded until the minute
/// is over, so a flood cannot grow the audit log without bound.
pub(super) const LOGIN_RECORDS_PER_MINUTE: u32 = 30;
/// The window [`LOGIN_RECORDS_PER_MINUTE`] counts in.
const RECORD_WINDOW: Duration = Duration::from_secs(60);

/// Password hashes computed at once, across all logins.
pub(super) const CONCURRENT_HASHES: usize = 4;

/// The longest email address (RFC 5321's path limit).
pub(super) const MAX_EMAIL_LEN: usize = 254;

/// Whether a refused login gets its audit entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recording {
    Record,
    /// The first refusal over the quota: recorded as the start of a flood.
    FloodBegins,
    Silent,
}

impl Throttle {
    pub fn new(cap: Duration) -> Self {
        Self {
            state: Mutex::new(HashMap::new()),
            cap,
            recorded: Mutex::new(HashMap::new()),
            hashing: tokio::sync::Semaphore::new(CONCURRENT_HASHES),
        }
    }

    /// Starts a login attempt for `keys`: refused with the time to wait
    /// while any of them is backing off. Otherwise the attempt counts as a
    /// failure at once, before any password is checked, so guesses sent in
    /// parallel find the backoff already armed; [`Throttle::succeeded`]
    /// clears it.
    fn begin(&self, keys: &[String]) -> Result<(), Duration> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let wait = keys
            .iter()
            .filter_map(|k| state.get(k))
            .filter_map(|(_, until)| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
            .max();
        if let Some(wait) = wait {
            return Err(wait);
        }
        if state.len() > 100_000 {
            state.retain(|_, (_, until)| *until > now);
        }
        for key in keys {
            let entry = state.entry(key.clone()).or_insert((0, now));
            entry.0 = entry.0.saturating_add(1);
            let delay = Duration::from_secs(1u64 << (entry.0 - 1).min(20)).min(self.cap);
            entry.1 = now + delay;
        }
        Ok(())
    }

    /// Whether a refused login from `client` gets its audit entry.
    fn recording(&self, client: IpAddr, now: Instant) -> Recording {
        let mut recorded = self.recorded.lock().unwrap_or_else(|e| e.into_inner());
        if recorded.len() > 100_000 {
            recorded.retain(|_, (start, _)| now.duration_since(*start) < RECORD_WINDOW);
        }
        let entry = recorded.entry(client).or_insert((now, 0));
        if now.duration_since(entry.0) >= RECORD_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        match entry.1 {
            n if n <= LOGIN_RECORDS_PER_MINUTE => Recording::Record,
            n if n == LOGIN_RECORDS_PER_MINUTE + 1 => Recording::FloodBegins,
            _ => Recording::Silent,
        }
    }

    fn succeeded(&self, keys: &[String]) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for key in keys {
            state.remove(key);
        }
    }
}

/// A login that was refused; `retry_after` when it was throttled.
#[derive(Debug)]
pub struct LoginRefused {
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl Identity<'_> {
    /// Signs in. Unknown emails, wrong passwords and wrong codes get the
    /// same answer after the same work; failures back off per account and
    /// per client address, and every attempt is audited.
    /// Records a refused login, within the client address's quota.
    pub(super) async fn record_login(
        &self,
        client: IpAddr,
        actor: &str,
        target: &str,
        outcome: Outcome,
        request_id: &RequestId,
    ) {
        let (target, outcome) = match self.p.throttle.recording(client, Instant::now()) {
            Recording::Record => (target.to_owned(), outcome),
            // Refusals past this one in the same minute go unrecorded.
            Recording::FloodBegins => ("sessions/flood".to_owned(), Outcome::Denied),
            Recording::Silent => return,
        };
        let record = Platform::record_by(actor, Action::SessionCreate, target, outcome, request_id);
        self.p.append(record).await;
    }

    pub async fn login(
        &self,
        request_id: &RequestId,
        client: IpAddr,
        request: wire::Login,
    ) -> Result<Result<wire::Session, LoginRefused>, Error> {
        let email = request.email.trim().to_ascii_lowercase();
        // An address longer than any real one names no account and keys
        // nothing but the client's address.
        let known_length = email.len() <= MAX_EMAIL_LEN;
        let mut keys = vec![format!("ip:{client}")];
        if known_length {
            keys.push(format!("account:{email}"));
        }
        if let Err(wait) = self.p.throttle.begin(&keys) {
            let _ = self.p.failed_logins.send(client);
            self.record_login(
                client,
                "anonymous",
                "sessions/throttled",
                Outcome::Denied,
                request_id,
            )
            .await;
            return Ok(Err(LoginRefused {
                message: "too many failed logins; wait before trying again".into(),
                retry_after: Some(wait),
            }));
        }
        let creds = if known_length {
            self.p.store.credentials_by_email(&email).await?
        } else {
            None
        };
        let stored = creds.as_ref().and_then(|c| c.password_hash.clone());
        let password = request.password.clone();
        let dummy = self.p.dummy_hash.clone();
        // Unknown users are checked against a dummy hash: same work, same
        // time, same answer.
        let password_ok = match self.p.throttle.hashing.acquire().await {
            Ok(_hashing) => tokio::task::spawn_blocking(move || match stored {
                Some(hash) => verify_password(&password, &hash),
                None => {
                    let _ = verify_password(&password, &dummy);
                    false
                }
            })
            .await
            .unwrap_or(false),
            Err(_) => false,
        };
        let active = creds
            .as_ref()
            .is_some_and(|c| c.user.status == UserStatus::Active);
        let mut ok = password_ok && active;
        if ok
            && let Some(c) = &creds
            && c.user.mfa_enabled
        {
            ok = self.second_factor(c, request.code.as_deref()).await?;
        }
        let actor = creds
            .as_ref()
            .map_or_else(|| "anonymous".to_owned(), |c| c.user.id.to_string());
        let Some(creds) = creds.filter(|_| ok) else {
            let _ = self.p.failed_logins.send(client);
            self.record_login(client, &actor, "sessions", Outcome::Failed, request_id)
                .await;
            return Ok(Err(LoginRefused {
                message: LOGIN_REFUSED.into(),
                retry_after: None,
            }));
        };
        self.p.throttle.succeeded(&keys);
        let secret = token::generate();
        let expires = time::OffsetDateTime::now_utc()
            + time::Duration::hours(i64::from(self.p.auth.session_hours));
        let expires_at = Timestamp::from(expires).to_rfc3339();
        let new = NewToken {
            id: TokenId::generate(),
            user_id: creds.user.id.clone(),
            name: "session".into(),
            hash: token::hash(secret.expose()),
            created_at: Timestamp::now().to_rfc3339(),
            kind: TokenKind::Session,
            role: None,
            app: None,
            expires_at: Some(expires_at.clone()),
        };
        let record = Platform::record_by(
            creds.user.id.as_str(),
            Action::SessionCreate,
            format!("sessions/{}", new.id),
            Outcome::Ok,
            request_id,
        );
        self.p
            .committed(self.p.store.create_token(&new, record).await)
            .await?;
        Ok(Ok(wire::Session {
            token: secret.expose().clone(),
            user_id: creds.user.id.to_string(),
            role: creds.user.role,
            expires_at,
        }))
    }

    /// Signs out: revokes the caller's own token.
    pub async fn logout(&self, acting: Acting<'_>) -> Result<(), Error> {
        let record = self.p.record(
            acting,
            Action::SessionEnd,
            format!("sessions/{}", acting.caller.token_id),
        );
        let now = Timestamp::now().to_rfc3339();
        self.p
            .committed(
                self.p
                    .store
                    .revoke_token(&acting.caller.token_id, &now, record)
                    .await,
            )
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_armed_before_the_check_grows_and_is_capped() {
        let throttle = Throttle::new(Duration::from_secs(4));
        let keys = ["k".to_owned()];
        assert!(throttle.begin(&keys).is_ok());
        // A second attempt while the first is still being judged waits.
        let wait = throttle.begin(&keys).unwrap_err();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        let expire = || {
            let mut state = throttle.state.lock().unwrap();
            state.get_mut("k").unwrap().1 = Instant::now();
        };
        for _ in 0..10 {
            expire();
            throttle.begin(&keys).unwrap();
        }
        let wait = throttle.begin(&keys).unwrap_err();
        assert!(wait <= Duration::from_secs(4) && wait > Duration::from_secs(3));
        throttle.succeeded(&keys);
        assert!(throttle.begin(&keys).is_ok());
    }

    #[test]
    fn refused_logins_are_recorded_within_a_quota_per_address() {
        let throttle = Throttle::new(Duration::from_secs(4));
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let start = Instant::now();
        for _ in 0..LOGIN_RECORDS_PER_MINUTE {
            assert_eq!(throttle.recording(a, start), Recording::Record);
        }
        assert_eq!(throttle.recording(a, start), Recording::FloodBegins);
        assert_eq!(throttle.recording(a, start), Recording::Silent);
        assert_eq!(
            throttle.recording(b, start),
            Recording::Record,
            "per address"
        );
        let later = start + Duration::from_secs(61);
        assert_eq!(
            throttle.recording(a, later),
            Recording::Record,
            "a new minute"
        );
    }
}
