//! Users, passwords, MFA, sessions and personal data.
//!
//! Passwords are hashed with Argon2id at OWASP's parameters (19 MiB, two
//! passes, one lane). TOTP seeds are sealed with the master key like every
//! other secret. A login answers the same way, after the same work, whether
//! the email is unknown, the password wrong or the code wrong; failures back
//! off exponentially per account and per client address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rampart_core::audit::Outcome;
use rampart_core::time::Timestamp;
use rampart_core::{Action, AppName, RequestId, Role, TokenId, UserId, token, wire};
use rampart_store::{
    Credentials, NewInvitation, NewToken, NewUser, StoreError, TokenKind, User, UserStatus,
};
use subtle::ConstantTimeEq;

use crate::{Acting, Caller, Error, Platform};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 12;
const MAX_PASSWORD: usize = 1024;
const RECOVERY_CODES: usize = 10;
/// TOTP: RFC 6238, SHA-1, six digits, 30-second steps, one step of skew.
const TOTP_STEP: u64 = 30;
const TOTP_SKEW: u64 = 1;
/// The answer to every failed login, whatever failed.
const LOGIN_REFUSED: &str = "the email, password or code is wrong";

fn argon2() -> Argon2<'static> {
    // OWASP Password Storage Cheat Sheet: m = 19 MiB, t = 2, p = 1.
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password (blocking: call on a blocking thread).
fn hash_password(password: &str) -> Result<String, Error> {
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Invalid(format!("cannot hash the password: {e}")))
}

/// Checks a password against a stored hash (blocking).
fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

fn check_password_rules(password: &str, email: Option<&str>) -> Result<(), Error> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(Error::Invalid(format!(
            "a password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters long"
        )));
    }
    if email.is_some_and(|e| e.eq_ignore_ascii_case(password)) {
        return Err(Error::Invalid("the password must not be the email".into()));
    }
    Ok(())
}

fn check_email(email: &str) -> Result<String, Error> {
    let email = email.trim();
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.') || d == "localhost")
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(Error::Invalid(format!("{email:?} is not an email address")));
    }
    Ok(email.to_owned())
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

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
const LOGIN_RECORDS_PER_MINUTE: u32 = 30;

/// Password hashes computed at once, across all logins.
const CONCURRENT_HASHES: usize = 4;

/// The longest email address (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;

/// Whether a refused login gets its audit entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recording {
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
            recorded.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let entry = recorded.entry(client).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(60) {
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

fn totp(seed: &[u8]) -> Result<totp_rs::TOTP, Error> {
    totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, TOTP_STEP, seed.to_vec())
        .map_err(|e| Error::Sealed(format!("the TOTP seed is unusable: {e}")))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The time step whose code is `code`, within the skew window.
fn matching_step(totp: &totp_rs::TOTP, code: &str, now: u64) -> Option<u64> {
    let current = now / TOTP_STEP;
    let mut found = None;
    // Every candidate is compared, in constant time, whatever matches.
    for step in current.saturating_sub(TOTP_SKEW)..=current + TOTP_SKEW {
        let expected = totp.generate(step * TOTP_STEP);
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
            found = Some(step);
        }
    }
    found
}

fn recovery_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut rng = rand::rng();
    let mut part = || -> String {
        (0..5)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    format!("{}-{}", part(), part())
}

fn totp_aad(user: &UserId) -> Vec<u8> {
    format!("rampart/totp/v1\0{user}").into_bytes()
}

pub(crate) fn user_view(user: User, grants: Vec<AppName>) -> wire::UserInfo {
    wire::UserInfo {
        id: user.id.to_string(),
        email: user.email,
        role: user.role,
        status: user.status.as_str().into(),
        mfa_enabled: user.mfa_enabled,
        created_at: user.created_at,
        erased_at: user.erased_at,
        grants: grants.into_iter().map(|g| g.to_string()).collect(),
    }
}

impl Platform {
    async fn user_row(&self, id: &str) -> Result<User, Error> {
        let id =
            UserId::parse(id).ok_or_else(|| Error::NotFound(format!("there is no user {id:?}")))?;
        self.store
            .user(&id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("there is no user {id}")))
    }

    /// Owners are managed by owners only.
    pub(crate) fn check_manages(caller: &Caller, target: Role) -> Result<(), Error> {
        if target == Role::Owner && caller.role != Role::Owner {
            return Err(Error::Forbidden("only owners manage owners".into()));
        }
        Ok(())
    }

    pub async fn users(&self) -> Result<Vec<wire::UserInfo>, Error> {
        let mut out = Vec::new();
        for user in self.store.users().await? {
            let grants = self.store.grants(&user.id).await?;
            out.push(user_view(user, grants));
        }
        Ok(out)
    }

    /// Creates a user with a single-use invitation that expires.
    pub async fn invite_user(
        &self,
        acting: Acting<'_>,
        request: wire::InviteUser,
    ) -> Result<wire::Invited, Error> {
        Self::check_manages(acting.caller, request.role)?;
        let email = check_email(&request.email)?;
        let now = time::OffsetDateTime::now_utc();
        let expires = now + time::Duration::hours(i64::from(self.auth.invitation_hours));
        let secret = token::generate();
        let user = NewUser {
            id: UserId::generate(),
            email: Some(email),
            role: request.role,
            created_at: Timestamp::now().to_rfc3339(),
        };
        let invitation = NewInvitation {
            id: TokenId::generate().to_string(),
            hash: token::hash(secret.expose()),
            created_at: user.created_at.clone(),
            expires_at: Timestamp::from(expires).to_rfc3339(),
        };
        let record = self.record(acting, Action::UserInvite, format!("users/{}", user.id));
        self.committed(self.store.invite(&user, &invitation, record).await)
            .await?;
        let row = self
            .store
            .user(&user.id)
            .await?
            .ok_or_else(|| Error::NotFound("the new user vanished".into()))?;
        Ok(wire::Invited {
            user: user_view(row, Vec::new()),
            invitation: secret.expose().clone(),
            expires_at: invitation.expires_at,
        })
    }

    /// Sets a new user's password from their invitation. Every refusal
    /// says the same, so invitations cannot be probed.
    pub async fn accept_invitation(
        &self,
        request_id: &RequestId,
        request: wire::AcceptInvitation,
    ) -> Result<(), Error> {
        let refused =
            || Error::Unauthenticated("the invitation is invalid, used or expired".into());
        if token::check(&request.invitation).is_err() {
            return Err(refused());
        }
        let Some(invitation) = self
            .store
            .invitation_by_hash(&token::hash(&request.invitation))
            .await?
        else {
            return Err(refused());
        };
        let expired = time::OffsetDateTime::parse(
            &invitation.expires_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_or(true, |t| t < time::OffsetDateTime::now_utc());
        if invitation.used_at.is_some() || expired {
            let record = Self::record_by(
                invitation.user_id.as_str(),
                Action::InvitationAccept,
                format!("users/{}", invitation.user_id),
                Outcome::Denied,
                request_id,
            );
            self.append(record).await;
            return Err(refused());
        }
        let user = self
            .store
            .user(&invitation.user_id)
            .await?
            .ok_or_else(refused)?;
        check_password_rules(&request.password, user.email.as_deref())?;
        let password = request.password;
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| Error::Invalid(e.to_string()))??;
        let record = Self::record_by(
            user.id.as_str(),
            Action::InvitationAccept,
            format!("users/{}", user.id),
            Outcome::Ok,
            request_id,
        );
        let at = Timestamp::now().to_rfc3339();
        let entry = self
            .store
            .accept_invitation(&invitation.id, &hash, &at, record)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => refused(),
                other => other.into(),
            })?;
        self.checkpoint(entry.seq, entry.hash).await;
        Ok(())
    }

    pub async fn set_role(
        &self,
        acting: Acting<'_>,
        id: &str,
        role: Role,
    ) -> Result<wire::UserInfo, Error> {
        let user = self.user_row(id).await?;
        Self::check_manages(acting.caller, user.role)?;
        Self::check_manages(acting.caller, role)?;
        let record = self.record(
            acting,
            Action::UserSetRole,
            format!("users/{}/role/{role}", user.id),
        );
        self.committed(self.store.set_role(&user.id, role, record).await)
            .await?;
        let user = self.user_row(id).await?;
        let grants = self.store.grants(&user.id).await?;
        Ok(user_view(user, grants))
    }

    pub async fn remove_user(&self, acting: Acting<'_>, id: &str) -> Result<(), Error> {
        let user = self.user_row(id).await?;
        Self::check_manages(acting.caller, user.role)?;
        let record = self.record(acting, Action::UserRemove, format!("users/{}", user.id));
        let at = Timestamp::now().to_rfc3339();
        self.committed(self.store.remove_user(&user.id, &at, record).await)
            .await?;
        Ok(())
    }

    /// Removes a user's personal data. The audit chain names users by id
    /// only, so it keeps verifying.
    pub async fn erase_user(&self, acting: Acting<'_>, id: &str) -> Result<(), Error> {
        let user = self.user_row(id).await?;
        Self::check_manages(acting.caller, user.role)?;
        let record = self.record(acting, Action::UserErase, format!("users/{}", user.id));
        let at = Timestamp::now().to_rfc3339();
        self.committed(self.store.erase_user(&user.id, &at, record).await)
            .await?;
        Ok(())
    }

    pub async fn set_grant(
        &self,
        acting: Acting<'_>,
        id: &str,
        app: &str,
        granted: bool,
    ) -> Result<wire::UserInfo, Error> {
        let user = self.user_row(id).await?;
        let app = self.app_row(app).await?;
        let verb = if granted { "grant" } else { "revoke" };
        let record = self.record(
            acting,
            Action::UserGrant,
            format!("users/{}/grants/{}/{verb}", user.id, app.name),
        );
        self.committed(
            self.store
                .set_grant(&user.id, &app.id, granted, record)
                .await,
        )
        .await?;
        let grants = self.store.grants(&user.id).await?;
        Ok(user_view(user, grants))
    }

    /// Everything held about a user, as JSON. Audited: it reveals personal
    /// data.
    pub async fn export_user(
        &self,
        acting: Acting<'_>,
        id: &str,
    ) -> Result<wire::UserExport, Error> {
        let user = self.user_row(id).await?;
        let record = self.record(acting, Action::UserExport, format!("users/{}", user.id));
        self.committed(self.store.append_audit(record).await)
            .await?;
        let tokens = self
            .store
            .user_tokens(&user.id)
            .await?
            .into_iter()
            .map(crate::ops::token_view)
            .collect();
        let invitations = self
            .store
            .invitations(&user.id)
            .await?
            .into_iter()
            .map(|i| wire::InvitationInfo {
                created_at: i.created_at,
                expires_at: i.expires_at,
                used_at: i.used_at,
            })
            .collect();
        let mut audit = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.audit_entries(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            audit.extend(
                page.into_iter()
                    .filter(|e| e.record.actor == user.id.as_str())
                    .map(crate::ops::entry_view),
            );
        }
        let grants = self.store.grants(&user.id).await?;
        Ok(wire::UserExport {
            user: user_view(user, grants),
            tokens,
            invitations,
            audit,
        })
    }

    /// Starts a TOTP enrollment for the caller: a new seed, sealed, awaiting
    /// its first code.
    pub async fn enroll_mfa(&self, acting: Acting<'_>) -> Result<wire::MfaEnrollment, Error> {
        let user = self
            .store
            .user(&acting.caller.user_id)
            .await?
            .ok_or_else(|| Error::NotFound("the caller's account is gone".into()))?;
        if user.mfa_enabled {
            return Err(Error::Conflict("MFA is already enrolled".into()));
        }
        let mut seed = [0u8; 20];
        rand::fill(&mut seed);
        let sealed = self.key.seal(&totp_aad(&user.id), &seed);
        let record = self.record(
            acting,
            Action::MfaEnroll,
            format!("users/{}/mfa/start", user.id),
        );
        self.committed(self.store.set_mfa_seed(&user.id, &sealed, record).await)
            .await?;
        let secret = totp_rs::Secret::Raw(seed.to_vec()).to_encoded().to_string();
        let account = user.email.unwrap_or_else(|| user.id.to_string());
        let label: String = format!("Rampart:{account}")
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~:@".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        Ok(wire::MfaEnrollment {
            otpauth_uri: format!(
                "otpauth://totp/{label}?secret={secret}&issuer=Rampart&algorithm=SHA1&digits=6&period=30"
            ),
            secret,
        })
    }

    /// Confirms an enrollment with a first code; returns the recovery codes.
    pub async fn confirm_mfa(
        &self,
        acting: Acting<'_>,
        code: &str,
    ) -> Result<wire::RecoveryCodes, Error> {
        let creds = self
            .store
            .credentials(&acting.caller.user_id)
            .await?
            .ok_or_else(|| Error::NotFound("the caller's account is gone".into()))?;
        if creds.user.mfa_enabled {
            return Err(Error::Conflict("MFA is already enrolled".into()));
        }
        let Some(sealed) = &creds.mfa_seed else {
            return Err(Error::Conflict("start with `rampart mfa enroll`".into()));
        };
        let seed = self
            .key
            .open(&totp_aad(&creds.user.id), sealed)
            .map_err(|_| {
                Error::Sealed("the TOTP seed does not open with this master key".into())
            })?;
        let Some(step) = matching_step(&totp(&seed)?, code.trim(), now_secs()) else {
            let record = Self::record_by(
                creds.user.id.as_str(),
                Action::MfaEnroll,
                format!("users/{}/mfa/confirm", creds.user.id),
                Outcome::Failed,
                acting.request_id,
            );
            self.append(record).await;
            return Err(Error::Invalid("the code is wrong or stale".into()));
        };
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
        let hashes: Vec<String> = codes.iter().map(|c| sha256_hex(c)).collect();
        let record = self.record(
            acting,
            Action::MfaEnroll,
            format!("users/{}/mfa/confirm", creds.user.id),
        );
        self.committed(
            self.store
                .enable_mfa(&creds.user.id, step, &hashes, record)
                .await,
        )
        .await?;
        Ok(wire::RecoveryCodes { codes })
    }

    /// Checks a second factor: a TOTP code (each step once) or an unused
    /// recovery code.
    async fn second_factor(&self, creds: &Credentials, code: Option<&str>) -> Result<bool, Error> {
        let Some(code) = code.map(str::trim).filter(|c| !c.is_empty()) else {
            return Ok(false);
        };
        let Some(sealed) = &creds.mfa_seed else {
            return Ok(false);
        };
        if code.contains('-') {
            let at = Timestamp::now().to_rfc3339();
            return Ok(self
                .store
                .use_recovery_code(&creds.user.id, &sha256_hex(&code.to_ascii_lowercase()), &at)
                .await?);
        }
        let seed = self
            .key
            .open(&totp_aad(&creds.user.id), sealed)
            .map_err(|_| {
                Error::Sealed("the TOTP seed does not open with this master key".into())
            })?;
        match matching_step(&totp(&seed)?, code, now_secs()) {
            // Atomic: a step no newer than the last one used is a replay.
            Some(step) => Ok(self.store.use_totp_step(&creds.user.id, step).await?),
            None => Ok(false),
        }
    }

    /// Signs in. Unknown emails, wrong passwords and wrong codes get the
    /// same answer after the same work; failures back off per account and
    /// per client address, and every attempt is audited.
    /// Records a refused login, within the client address's quota.
    async fn record_login(
        &self,
        client: IpAddr,
        actor: &str,
        target: &str,
        outcome: Outcome,
        request_id: &RequestId,
    ) {
        let (target, outcome) = match self.throttle.recording(client, Instant::now()) {
            Recording::Record => (target.to_owned(), outcome),
            // Refusals past this one in the same minute go unrecorded.
            Recording::FloodBegins => ("sessions/flood".to_owned(), Outcome::Denied),
            Recording::Silent => return,
        };
        let record = Self::record_by(actor, Action::SessionCreate, target, outcome, request_id);
        self.append(record).await;
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
        if let Err(wait) = self.throttle.begin(&keys) {
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
            self.store.credentials_by_email(&email).await?
        } else {
            None
        };
        let stored = creds.as_ref().and_then(|c| c.password_hash.clone());
        let password = request.password.clone();
        let dummy = self.dummy_hash.clone();
        // Unknown users are checked against a dummy hash: same work, same
        // time, same answer.
        let password_ok = match self.throttle.hashing.acquire().await {
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
            self.record_login(client, &actor, "sessions", Outcome::Failed, request_id)
                .await;
            return Ok(Err(LoginRefused {
                message: LOGIN_REFUSED.into(),
                retry_after: None,
            }));
        };
        self.throttle.succeeded(&keys);
        let secret = token::generate();
        let expires = time::OffsetDateTime::now_utc()
            + time::Duration::hours(i64::from(self.auth.session_hours));
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
        let record = Self::record_by(
            creds.user.id.as_str(),
            Action::SessionCreate,
            format!("sessions/{}", new.id),
            Outcome::Ok,
            request_id,
        );
        self.committed(self.store.create_token(&new, record).await)
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
        let record = self.record(
            acting,
            Action::SessionEnd,
            format!("sessions/{}", acting.caller.token_id),
        );
        let now = Timestamp::now().to_rfc3339();
        self.committed(
            self.store
                .revoke_token(&acting.caller.token_id, &now, record)
                .await,
        )
        .await?;
        Ok(())
    }
}

/// A hash to verify unknown users' passwords against.
pub(crate) fn dummy_hash() -> String {
    hash_password("rampart dummy password for unknown users").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_at_owasp_parameters() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterz", &hash));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn totp_codes_match_their_step_only_within_the_skew() {
        let seed = [7u8; 20];
        let t = totp(&seed).unwrap();
        let now = 1_800_000_000;
        let code = t.generate(now);
        assert_eq!(matching_step(&t, &code, now), Some(now / 30));
        assert_eq!(matching_step(&t, &code, now + 30), Some(now / 30));
        assert_eq!(matching_step(&t, &code, now + 90), None, "stale");
        assert_eq!(matching_step(&t, "000000x", now), None);
    }

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
