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

mod login;
mod mfa;
pub use login::{LoginRefused, Throttle};

/// The identity path: users, invitations, roles and grants, logins and
/// MFA. A handle on the [`Platform`], from [`Platform::identity`].
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub(crate) p: &'a Platform,
}

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

impl Identity<'_> {
    async fn user_row(&self, id: &str) -> Result<User, Error> {
        let id =
            UserId::parse(id).ok_or_else(|| Error::NotFound(format!("there is no user {id:?}")))?;
        self.p
            .store
            .user(&id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("there is no user {id}")))
    }

    pub async fn users(&self) -> Result<Vec<wire::UserInfo>, Error> {
        let mut out = Vec::new();
        for user in self.p.store.users().await? {
            let grants = self.p.store.grants(&user.id).await?;
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
        check_manages(acting.caller, request.role)?;
        let email = check_email(&request.email)?;
        let now = time::OffsetDateTime::now_utc();
        let expires = now + time::Duration::hours(i64::from(self.p.auth.invitation_hours));
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
        let record = self
            .p
            .record(acting, Action::UserInvite, format!("users/{}", user.id));
        self.p
            .committed(self.p.store.invite(&user, &invitation, record).await)
            .await?;
        let row = self
            .p
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
            .p
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
            let record = Platform::record_by(
                invitation.user_id.as_str(),
                Action::InvitationAccept,
                format!("users/{}", invitation.user_id),
                Outcome::Denied,
                request_id,
            );
            self.p.append(record).await;
            return Err(refused());
        }
        let user = self
            .p
            .store
            .user(&invitation.user_id)
            .await?
            .ok_or_else(refused)?;
        check_password_rules(&request.password, user.email.as_deref())?;
        let password = request.password;
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| Error::Invalid(e.to_string()))??;
        let record = Platform::record_by(
            user.id.as_str(),
            Action::InvitationAccept,
            format!("users/{}", user.id),
            Outcome::Ok,
            request_id,
        );
        let at = Timestamp::now().to_rfc3339();
        let entry = self
            .p
            .store
            .accept_invitation(&invitation.id, &hash, &at, record)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => refused(),
                other => other.into(),
            })?;
        self.p.checkpoint(entry.seq, entry.hash).await;
        Ok(())
    }

    pub async fn set_role(
        &self,
        acting: Acting<'_>,
        id: &str,
        role: Role,
    ) -> Result<wire::UserInfo, Error> {
        let user = self.user_row(id).await?;
        check_manages(acting.caller, user.role)?;
        check_manages(acting.caller, role)?;
        let record = self.p.record(
            acting,
            Action::UserSetRole,
            format!("users/{}/role/{role}", user.id),
        );
        self.p
            .committed(self.p.store.set_role(&user.id, role, record).await)
            .await?;
        let user = self.user_row(id).await?;
        let grants = self.p.store.grants(&user.id).await?;
        Ok(user_view(user, grants))
    }

    pub async fn remove_user(&self, acting: Acting<'_>, id: &str) -> Result<(), Error> {
        let user = self.user_row(id).await?;
        check_manages(acting.caller, user.role)?;
        let record = self
            .p
            .record(acting, Action::UserRemove, format!("users/{}", user.id));
        let at = Timestamp::now().to_rfc3339();
        self.p
            .committed(self.p.store.remove_user(&user.id, &at, record).await)
            .await?;
        Ok(())
    }

    /// Removes a user's personal data. The audit chain names users by id
    /// only, so it keeps verifying.
    pub async fn erase_user(&self, acting: Acting<'_>, id: &str) -> Result<(), Error> {
        let user = self.user_row(id).await?;
        check_manages(acting.caller, user.role)?;
        let record = self
            .p
            .record(acting, Action::UserErase, format!("users/{}", user.id));
        let at = Timestamp::now().to_rfc3339();
        self.p
            .committed(self.p.store.erase_user(&user.id, &at, record).await)
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
        let app = self.p.app_row(app).await?;
        let verb = if granted { "grant" } else { "revoke" };
        let record = self.p.record(
            acting,
            Action::UserGrant,
            format!("users/{}/grants/{}/{verb}", user.id, app.name),
        );
        self.p
            .committed(
                self.p
                    .store
                    .set_grant(&user.id, &app.id, granted, record)
                    .await,
            )
            .await?;
        let grants = self.p.store.grants(&user.id).await?;
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
        let record = self
            .p
            .record(acting, Action::UserExport, format!("users/{}", user.id));
        self.p
            .committed(self.p.store.append_audit(record).await)
            .await?;
        let tokens = self
            .p
            .store
            .user_tokens(&user.id)
            .await?
            .into_iter()
            .map(crate::ops::token_view)
            .collect();
        let invitations = self
            .p
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
            let page = self.p.store.audit_entries(after, 1000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            audit.extend(
                page.into_iter()
                    .filter(|e| e.record.actor == user.id.as_str())
                    .map(crate::ops::entry_view),
            );
        }
        let grants = self.p.store.grants(&user.id).await?;
        Ok(wire::UserExport {
            user: user_view(user, grants),
            tokens,
            invitations,
            audit,
        })
    }
}

/// Owners are managed by owners only.
pub(crate) fn check_manages(caller: &Caller, target: Role) -> Result<(), Error> {
    if target == Role::Owner && caller.role != Role::Owner {
        return Err(Error::Forbidden("only owners manage owners".into()));
    }
    Ok(())
}

/// A hash to verify unknown users' passwords against.
pub(crate) fn dummy_hash() -> String {
    hash_password("rampart dummy password for unknown users").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::mfa::*;
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
}
