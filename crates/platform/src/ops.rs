//! The platform's operations on apps, variables, tokens and the audit log.

use std::collections::{BTreeMap, BTreeSet};

use rampart_core::audit::{AuditRecord, Outcome, Verifier};
use rampart_core::time::Timestamp;
use rampart_core::{Action, AppId, AppName, Domain, EnvName, TokenId, token, wire};
use rampart_store::{AppRow, NewApp, NewToken, SealedVar, StoreError, TokenRow};

use crate::{Acting, Caller, Error, Platform, read_head};

/// Most variables one request may set.
pub const MAX_VARS_PER_REQUEST: usize = 200;
/// Largest value of one variable.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Most domains one app may have.
pub const MAX_DOMAINS: usize = 50;
const MAX_TOKEN_NAME: usize = 64;

fn app_view(row: AppRow) -> wire::App {
    wire::App {
        id: row.id.to_string(),
        name: row.name.to_string(),
        domains: row.domains.into_iter().map(String::from).collect(),
        created_at: row.created_at,
        env_count: row.env_count,
    }
}

pub(crate) fn token_view(row: TokenRow) -> wire::TokenInfo {
    wire::TokenInfo {
        id: row.id.to_string(),
        name: row.name,
        user_id: row.user_id.to_string(),
        role: row.role,
        created_at: row.created_at,
        revoked_at: row.revoked_at,
        app: row.app.map(|(_, name)| name.to_string()),
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
    }
}

pub(crate) fn entry_view(entry: rampart_core::audit::AuditEntry) -> wire::AuditEntry {
    wire::AuditEntry {
        seq: entry.seq,
        time: entry.record.time,
        actor: entry.record.actor,
        action: entry.record.action,
        target: entry.record.target,
        outcome: entry.record.outcome,
        request_id: entry.record.request_id,
        prev_hash: hex::encode(entry.prev_hash),
        hash: hex::encode(entry.hash),
    }
}

/// The associated data that binds a sealed variable to its app and name.
pub(crate) fn env_aad(app: &AppId, name: &EnvName) -> Vec<u8> {
    format!("rampart/env/v1\0{app}\0{name}").into_bytes()
}

/// Six random lowercase letters and digits, to tell replicas apart.
pub(crate) fn random_suffix() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..6)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// `n` random letters and digits, for keys written to files.
pub(crate) fn random_token(n: usize) -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

fn parse_app_name(name: &str) -> Result<AppName, Error> {
    AppName::parse(name).map_err(|e| Error::Invalid(e.to_string()))
}

fn parse_env_name(name: &str) -> Result<EnvName, Error> {
    EnvName::parse(name).map_err(|e| Error::Invalid(e.to_string()))
}

impl Platform {
    /// The audit record of a successful action by the caller.
    pub(crate) fn record(&self, acting: Acting<'_>, action: Action, target: String) -> AuditRecord {
        Self::record_by(
            acting.caller.user_id.as_str(),
            action,
            target,
            Outcome::Ok,
            acting.request_id,
        )
    }

    /// An audit record for any actor (`system`, `anonymous`, a user id).
    pub(crate) fn record_by(
        actor: &str,
        action: Action,
        target: String,
        outcome: Outcome,
        request_id: &rampart_core::RequestId,
    ) -> AuditRecord {
        AuditRecord {
            time: Timestamp::now().to_rfc3339(),
            actor: actor.to_owned(),
            action: action.as_str().into(),
            target,
            outcome,
            request_id: request_id.to_string(),
        }
    }

    /// Appends a record that goes with no other change; a failure is logged,
    /// as the request it records has already been answered.
    pub(crate) async fn append(&self, record: AuditRecord) {
        match self.store.append_audit(record).await {
            Ok(entry) => self.checkpoint(entry.seq, entry.hash).await,
            Err(error) => tracing::error!(%error, "cannot append to the audit log"),
        }
    }

    /// Moves the head checkpoint after a committed change and its entry.
    pub(crate) async fn committed(
        &self,
        entry: Result<rampart_core::audit::AuditEntry, StoreError>,
    ) -> Result<(), Error> {
        let entry = entry?;
        self.checkpoint(entry.seq, entry.hash).await;
        Ok(())
    }

    /// Who is who: each user's email (their id once erased), by id, for
    /// views that name people.
    pub(crate) async fn user_names(
        &self,
    ) -> Result<std::collections::HashMap<String, String>, Error> {
        Ok(self
            .store
            .users()
            .await?
            .into_iter()
            .map(|u| {
                let id = u.id.to_string();
                (id.clone(), u.email.unwrap_or(id))
            })
            .collect())
    }

    pub(crate) async fn app_row(&self, name: &str) -> Result<AppRow, Error> {
        let name = parse_app_name(name)?;
        self.store
            .app(&name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("there is no app named {:?}", name.as_str())))
    }

    pub async fn apps(&self) -> Result<Vec<wire::App>, Error> {
        Ok(self.store.apps().await?.into_iter().map(app_view).collect())
    }

    pub async fn app(&self, name: &str) -> Result<wire::App, Error> {
        Ok(app_view(self.app_row(name).await?))
    }

    pub async fn create_app(
        &self,
        acting: Acting<'_>,
        request: wire::CreateApp,
    ) -> Result<wire::App, Error> {
        let name = parse_app_name(&request.name)?;
        let domains = match request.domains {
            None => vec![name.default_domain()],
            Some(list) => {
                if list.is_empty() {
                    return Err(Error::Invalid(
                        "domains must not be empty; omit it to use NAME.localhost".into(),
                    ));
                }
                if list.len() > MAX_DOMAINS {
                    return Err(Error::Invalid(format!(
                        "an app may have at most {MAX_DOMAINS} domains"
                    )));
                }
                let mut seen = BTreeSet::new();
                let mut domains = Vec::with_capacity(list.len());
                for d in &list {
                    let domain = Domain::parse(d).map_err(|e| Error::Invalid(e.to_string()))?;
                    if !seen.insert(domain.clone()) {
                        return Err(Error::Invalid(format!("domain {d:?} is listed twice")));
                    }
                    domains.push(domain);
                }
                domains
            }
        };
        let app = NewApp {
            id: AppId::generate(),
            name: name.clone(),
            domains,
            created_at: Timestamp::now().to_rfc3339(),
        };
        if request.with_db {
            // Refused before the app exists when there is nowhere to put it.
            self.services().admin()?;
        }
        let record = self.record(acting, Action::AppCreate, format!("apps/{name}"));
        self.committed(self.store.create_app(&app, record).await)
            .await?;
        tracing::info!(app = %name, request_id = %acting.request_id, "app created");
        if request.with_db
            && let Err(error) = self.create_database(acting, name.as_str()).await
        {
            // A failed create changes nothing: the app goes again, and the
            // audit log shows both steps.
            if let Err(undo) = self.delete_app(acting, name.as_str()).await {
                tracing::error!(app = %name, error = %undo, "cannot remove an app whose database failed");
            }
            return Err(error);
        }
        self.app(name.as_str()).await
    }

    pub async fn delete_app(&self, acting: Acting<'_>, name: &str) -> Result<(), Error> {
        let row = self.app_row(name).await?;
        let db = self.store.database(&row.id).await?;
        let bucket = self.store.media_bucket(&row.id).await?;
        let record = self.record(acting, Action::AppDelete, format!("apps/{}", row.name));
        self.committed(self.store.delete_app(&row.id, record).await)
            .await?;
        self.deploys().remove_app_runtime(&row.name, &row.id).await;
        self.remove_app_data(&row.name, db, bucket).await;
        tracing::info!(app = %row.name, request_id = %acting.request_id, "app deleted");
        Ok(())
    }

    pub async fn env(&self, app: &str) -> Result<Vec<wire::EnvVar>, Error> {
        let row = self.app_row(app).await?;
        Ok(self
            .store
            .env(&row.id)
            .await?
            .into_iter()
            .map(|v| wire::EnvVar {
                name: v.name.to_string(),
                updated_at: v.updated_at,
            })
            .collect())
    }

    pub async fn set_env(
        &self,
        acting: Acting<'_>,
        app: &str,
        request: wire::SetEnv,
    ) -> Result<Vec<wire::EnvVar>, Error> {
        let row = self.app_row(app).await?;
        if request.vars.is_empty() {
            return Err(Error::Invalid("no variables given".into()));
        }
        if request.vars.len() > MAX_VARS_PER_REQUEST {
            return Err(Error::Invalid(format!(
                "at most {MAX_VARS_PER_REQUEST} variables can be set at once"
            )));
        }
        let now = Timestamp::now().to_rfc3339();
        let mut sealed = Vec::with_capacity(request.vars.len());
        for (name, value) in &request.vars {
            let name = parse_env_name(name)?;
            if value.len() > MAX_VALUE_BYTES {
                return Err(Error::Invalid(format!(
                    "the value of {name} is {} bytes; the limit is {MAX_VALUE_BYTES}",
                    value.len()
                )));
            }
            if value.contains('\0') {
                return Err(Error::Invalid(format!(
                    "the value of {name} contains a NUL byte, which environments cannot hold"
                )));
            }
            sealed.push(SealedVar {
                sealed: self.key.seal(&env_aad(&row.id, &name), value.as_bytes()),
                name,
                updated_at: now.clone(),
            });
        }
        let names: Vec<&str> = sealed.iter().map(|v| v.name.as_str()).collect();
        let target = format!("apps/{}/env/{}", row.name, names.join(","));
        let record = self.record(acting, Action::EnvSet, target);
        self.committed(self.store.set_env(&row.id, &sealed, record).await)
            .await?;
        // Names only: values never reach a log line.
        tracing::info!(app = %row.name, vars = ?names, request_id = %acting.request_id, "environment updated");
        self.env(app).await
    }

    pub async fn unset_env(
        &self,
        acting: Acting<'_>,
        app: &str,
        names: &[String],
    ) -> Result<(), Error> {
        let row = self.app_row(app).await?;
        if names.is_empty() {
            return Err(Error::Invalid("no variable names given".into()));
        }
        let names = names
            .iter()
            .map(|n| parse_env_name(n))
            .collect::<Result<Vec<_>, _>>()?;
        let listed: Vec<&str> = names.iter().map(EnvName::as_str).collect();
        let target = format!("apps/{}/env/{}", row.name, listed.join(","));
        let record = self.record(acting, Action::EnvUnset, target);
        self.committed(self.store.unset_env(&row.id, &names, record).await)
            .await?;
        tracing::info!(app = %row.name, vars = ?listed, request_id = %acting.request_id, "environment variables removed");
        Ok(())
    }

    /// Opens variable values. The reveal is recorded in the audit log before
    /// any value is returned.
    pub async fn reveal_env(
        &self,
        acting: Acting<'_>,
        app: &str,
        request: wire::RevealEnv,
    ) -> Result<wire::RevealedEnv, Error> {
        let row = self.app_row(app).await?;
        let vars = self.store.env(&row.id).await?;
        let wanted: Option<BTreeSet<EnvName>> = request
            .names
            .map(|names| names.iter().map(|n| parse_env_name(n)).collect())
            .transpose()?;
        if let Some(wanted) = &wanted {
            if let Some(missing) = wanted.iter().find(|n| !vars.iter().any(|v| &v.name == *n)) {
                return Err(Error::NotFound(format!(
                    "environment variable {missing} is not set on app {:?}",
                    row.name.as_str()
                )));
            }
        }
        let chosen: Vec<&SealedVar> = vars
            .iter()
            .filter(|v| wanted.as_ref().is_none_or(|w| w.contains(&v.name)))
            .collect();
        let names: Vec<&str> = chosen.iter().map(|v| v.name.as_str()).collect();
        let target = format!("apps/{}/env/{}", row.name, names.join(","));
        let record = self.record(acting, Action::EnvReveal, target);
        self.committed(self.store.append_audit(record).await)
            .await?;

        let mut out = BTreeMap::new();
        for var in chosen {
            let plain = self
                .key
                .open(&env_aad(&row.id, &var.name), &var.sealed)
                .map_err(|_| {
                    Error::Sealed(format!(
                        "the stored value of {} on app {:?} cannot be opened with this master key",
                        var.name,
                        row.name.as_str()
                    ))
                })?;
            let text = String::from_utf8(plain).map_err(|_| {
                Error::Sealed(format!("the stored value of {} is not UTF-8", var.name))
            })?;
            out.insert(var.name.to_string(), text);
        }
        Ok(wire::RevealedEnv { vars: out })
    }

    pub async fn tokens(&self) -> Result<Vec<wire::TokenInfo>, Error> {
        Ok(self
            .store
            .tokens()
            .await?
            .into_iter()
            .map(token_view)
            .collect())
    }

    /// Creates a token for the caller's own user, acting with their role.
    pub async fn create_token(
        &self,
        acting: Acting<'_>,
        request: wire::CreateToken,
    ) -> Result<wire::CreatedToken, Error> {
        let name = request.name.trim();
        if name.is_empty() || name.chars().count() > MAX_TOKEN_NAME {
            return Err(Error::Invalid(format!(
                "a token name must be 1 to {MAX_TOKEN_NAME} characters long"
            )));
        }
        if name.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "a token name must not contain control characters".into(),
            ));
        }
        let caller = acting.caller;
        if let Some(role) = request.role
            && role.rank() > caller.role.rank()
        {
            return Err(Error::Forbidden(format!(
                "a token cannot act with a role ({role}) above its creator's ({})",
                caller.role
            )));
        }
        let app = match (&request.app, &caller.scope) {
            (Some(name), _) => Some(self.app_row(name).await?),
            (None, Some(scope)) => Some(self.app_row(scope.as_str()).await?),
            (None, None) => None,
        };
        if let (Some(app), Some(scope)) = (&app, &caller.scope)
            && &app.name != scope
        {
            return Err(Error::Forbidden(format!(
                "this token may only create tokens for app {scope}"
            )));
        }
        let asked = match request.expires_in_days {
            None => None,
            Some(days @ 1..=3650) => {
                Some(time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(days)))
            }
            Some(_) => {
                return Err(Error::Invalid(
                    "expires_in_days must be between 1 and 3650".into(),
                ));
            }
        };
        // A token made with an API token never outlives it. (A login
        // session is the user, who signed in with a password and MFA.)
        let ceiling = match (&caller.expires_at, caller.session) {
            (Some(at), false) => Some(
                time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| Error::Invalid("the calling token has a bad expiry".into()))?,
            ),
            _ => None,
        };
        let expires_at = match (asked, ceiling) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        }
        .map(|t| Timestamp::from(t).to_rfc3339());
        let secret = token::generate();
        let new = NewToken {
            id: TokenId::generate(),
            user_id: caller.user_id.clone(),
            name: name.to_owned(),
            hash: token::hash(secret.expose()),
            created_at: Timestamp::now().to_rfc3339(),
            kind: rampart_store::TokenKind::Api,
            // Always the role it acts with: a token never exceeds the one
            // that made it, even when the user's own role is higher.
            role: Some(request.role.unwrap_or(caller.role)),
            app: app.map(|a| a.id),
            expires_at,
        };
        let record = self.record(acting, Action::TokenCreate, format!("tokens/{}", new.id));
        self.committed(self.store.create_token(&new, record).await)
            .await?;
        tracing::info!(token = %new.id, request_id = %acting.request_id, "token created");
        Ok(wire::CreatedToken {
            id: new.id.to_string(),
            name: new.name,
            token: secret.into_inner(),
            created_at: new.created_at,
        })
    }

    pub async fn revoke_token(&self, acting: Acting<'_>, id: &str) -> Result<(), Error> {
        let id = TokenId::parse(id)
            .ok_or_else(|| Error::NotFound(format!("there is no token {id:?}")))?;
        // Only owners manage owners, their tokens included: an admin who
        // could revoke them could lock out an owner who has no password.
        if let Some(token) = self.store.token(&id).await?
            && let Some(holder) = self.store.user(&token.user_id).await?
            && token.user_id != acting.caller.user_id
        {
            crate::identity::check_manages(acting.caller, holder.role)?;
        }
        let record = self.record(acting, Action::TokenRevoke, format!("tokens/{id}"));
        let now = Timestamp::now().to_rfc3339();
        self.committed(self.store.revoke_token(&id, &now, record).await)
            .await?;
        tracing::info!(token = %id, request_id = %acting.request_id, "token revoked");
        Ok(())
    }

    /// The newest `limit` audit entries, oldest first.
    pub async fn audit(&self, limit: u32) -> Result<Vec<wire::AuditEntry>, Error> {
        let mut entries = self.store.audit_tail(limit).await?;
        entries.reverse();
        Ok(entries.into_iter().map(entry_view).collect())
    }

    /// Checks the audit chain end to end and against the head checkpoint.
    pub async fn verify_audit(&self) -> Result<wire::AuditVerification, Error> {
        const PAGE: u32 = 1000;
        let mut verifier = Verifier::new();
        let broken = |verified, seq, problem: String| wire::AuditVerification {
            ok: false,
            verified,
            first_bad: Some(seq),
            problem: Some(problem),
        };
        let mut after = 0;
        loop {
            let page = match self.store.audit_entries(after, PAGE).await {
                Ok(page) => page,
                Err(StoreError::CorruptAuditEntry { seq, reason }) => {
                    return Ok(broken(verifier.verified(), seq, reason));
                }
                Err(other) => return Err(other.into()),
            };
            let Some(last) = page.last() else { break };
            after = last.seq;
            for entry in &page {
                if let Err(problem) = verifier.push(entry) {
                    return Ok(broken(
                        verifier.verified(),
                        problem.seq(),
                        problem.to_string(),
                    ));
                }
            }
        }
        let head = read_head(&self.dir.audit_head());
        let hash_at = match head {
            Some((seq, _)) => self
                .store
                .audit_entry(seq)
                .await
                .ok()
                .flatten()
                .map(|e| e.hash),
            None => None,
        };
        let verified = verifier.verified();
        match verifier.finish(head, |_| hash_at) {
            Ok(verified) => Ok(wire::AuditVerification {
                ok: true,
                verified,
                first_bad: None,
                problem: None,
            }),
            Err(problem) => Ok(broken(verified, problem.seq().max(1), problem.to_string())),
        }
    }

    pub async fn whoami(&self, caller: &Caller) -> Result<wire::WhoAmI, Error> {
        let user = self.store.user(&caller.user_id).await?;
        Ok(wire::WhoAmI {
            user_id: caller.user_id.to_string(),
            email: user.and_then(|u| u.email),
            role: caller.role,
            token_id: caller.token_id.to_string(),
            session: caller.session,
            mfa_enrolled: caller.mfa_enrolled,
            mfa_required: caller.needs_mfa,
            app: caller.scope.as_ref().map(ToString::to_string),
            grants: caller.grants.iter().map(ToString::to_string).collect(),
        })
    }
}
