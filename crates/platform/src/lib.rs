//! The controller: the operations of the platform, composed from the store,
//! the master key and the internal CA.
//!
//! [`Platform::open`] brings an installation up from its data directory,
//! refusing to start rather than guess when the key material and the data
//! disagree. Every mutating operation records itself in the audit chain in
//! the same transaction as its change, then moves the chain's head
//! checkpoint (`DATA/audit-head`), which lets `audit verify` notice entries
//! cut off the end of the chain.
//!
//! Authorisation is not decided here: the API's policy decides every request
//! before it reaches an operation.

pub mod secrets;

/// The internal CA lives with the edge, which issues site certificates
/// from it; the platform uses it for the API.
pub use rampart_edge::pki;

/// Accepting connections and the TLS handshake, shared with the edge's
/// listeners; the API's listener uses them.
pub use rampart_edge::listen;

pub mod alerts;
pub mod backups;
mod checks;
mod controller;
pub mod crons;
mod data;
mod data_dir;
pub mod deploy;
mod doctor;
mod error;
pub mod evidence;
pub mod identity;
pub mod incidents;
pub mod ingress;
mod nodes;
mod notify;
mod ops;
mod privacy;
mod reconcile;
mod reports;
mod telemetry;
pub mod vulns;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;

use rampart_core::audit::{AuditRecord, ChainHash, Outcome};
use rampart_core::config::{AuthConfig, Config};
use rampart_core::time::Timestamp;
use rampart_core::{Action, AppName, RequestId, Role, Secret, TokenId, UserId, token};
use rampart_store::{NewToken, NewUser, SqliteStore, Store, StoreError};
use tokio::sync::Mutex;

pub use controller::Engine;
pub use data_dir::DataDir;
pub use error::{AuthError, Error, StartError};
use pki::InternalCa;
use secrets::{MasterKey, write_private};

/// How finely a token's last use is recorded, in seconds.
const TOKEN_USE_GRANULARITY: i64 = 3600;
const KEY_CHECK_SETTING: &str = "master_key_check";

/// Who is making a request, once their token has been checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: UserId,
    /// The role the token acts with (the user's, or lower).
    pub role: Role,
    pub token_id: TokenId,
    /// A login session rather than an API token.
    pub session: bool,
    /// The only app the token may act on.
    pub scope: Option<AppName>,
    /// When the token stops working (RFC 3339), if it has an expiry.
    pub expires_at: Option<String>,
    /// Apps the user may act on as a developer.
    pub grants: Vec<AppName>,
    /// Whether the user has MFA.
    pub mfa_enrolled: bool,
    /// An owner or admin without MFA while `auth.require_mfa` holds: they
    /// may only enroll.
    pub needs_mfa: bool,
}

/// The caller and request an operation is performed for; it is what the
/// audit entry records.
#[derive(Debug, Clone, Copy)]
pub struct Acting<'a> {
    pub caller: &'a Caller,
    pub request_id: &'a RequestId,
}

/// A running installation.
#[derive(Debug)]
pub struct Platform {
    store: Arc<dyn Store>,
    key: MasterKey,
    ca: InternalCa,
    dir: DataDir,
    /// Highest sequence number written to the head checkpoint.
    head: Mutex<u64>,
    /// The container engine and the edge, once attached.
    engine: std::sync::OnceLock<Arc<Engine>>,
    auth: AuthConfig,
    /// The operator's ceilings on what one app may take.
    pub(crate) app_limits: rampart_core::config::AppLimits,
    throttle: identity::Throttle,
    /// Verified against when a login names no known user.
    dummy_hash: String,
    /// Databases and media.
    services: data::Services,
    /// The platform's backup repository, when configured.
    backup: Option<rampart_core::config::BackupConfig>,
    /// The scheduled jobs running now.
    cron_running: crons::Running,
    /// Clients whose logins failed, for the watch's brute-force detector.
    failed_logins: tokio::sync::broadcast::Sender<std::net::IpAddr>,
    /// The mail server email channels send through, when configured.
    mailer: Option<notify::Mailer>,
    /// Each app's figures, for metrics and `rampart top`.
    telemetry: telemetry::Telemetry,
    /// The imported advisories, indexed by package.
    advisories: vulns::Advisories,
    /// Where advisories are fetched from by themselves.
    vulns_config: rampart_core::config::VulnsConfig,
    /// Which alerts open incidents, and how long each may wait for an
    /// acknowledgement.
    incidents_config: rampart_core::config::IncidentsConfig,
    /// What each served host's security.txt says.
    security_txt: rampart_core::security_txt::SecurityTxtConfig,
    /// How long personal data in logs is kept.
    privacy: rampart_core::config::PrivacyConfig,
    /// The image each app's last unattended patch built, so a patch that
    /// failed is not tried again with the same image.
    patch_tried: std::sync::Mutex<std::collections::HashMap<rampart_core::AppId, String>>,
}

/// What [`Platform::open`] did on a first start.
#[derive(Debug)]
pub struct Bootstrapped {
    /// The file holding the owner's first API token (mode 0600).
    pub token_file: PathBuf,
}

impl Platform {
    /// Opens the installation in `dir`, creating it on first start.
    ///
    /// Refuses to start when `master.key` is missing beside an existing
    /// database, is corrupt, or is not the key the database was sealed with;
    /// in none of these cases is a key written.
    pub async fn open(
        dir: DataDir,
        config: &Config,
    ) -> Result<(Self, Option<Bootstrapped>), StartError> {
        if let Some(backup) = &config.backup
            && !backup.repository.starts_with("s3://")
        {
            let root = std::fs::canonicalize(dir.root())
                .or_else(|_| std::path::absolute(dir.root()))
                .unwrap_or_else(|_| dir.root().to_owned());
            let repo = std::path::Path::new(&backup.repository);
            let inside = |p: &std::path::Path| p.starts_with(&root) || p.starts_with(dir.root());
            let resolved = std::fs::canonicalize(repo).unwrap_or_else(|_| repo.to_owned());
            if inside(repo) || inside(&resolved) {
                return Err(StartError::Config(format!(
                    "backup.repository {} is inside the data directory {}; keep backups apart from the data they protect",
                    repo.display(),
                    dir.root().display()
                )));
            }
        }
        dir.create()?;
        let db_path = dir.db();
        let db_existed = db_path.exists();
        let key = MasterKey::load_or_create(&dir.master_key(), &db_path, !db_existed)?;
        let store = SqliteStore::open(&db_path)
            .await
            .map_err(|source| StartError::Store {
                path: db_path.clone(),
                source,
            })?;
        let store: Arc<dyn Store> = Arc::new(store);
        let ca = InternalCa::load_or_create(&dir.ca_cert(), &dir.ca_key())?;
        let head = read_head(&dir.audit_head()).map_or(0, |(seq, _)| seq);
        let services = data::Services::new(
            dir.root(),
            &config.postgres,
            config.media_s3.as_ref(),
            ca.cert_pem(),
        );
        let mailer = config
            .notify
            .smtp
            .as_ref()
            .map(notify::Mailer::new)
            .transpose()?;
        let advisories = vulns::load(store.as_ref()).await.map_err(|e| match e {
            Error::Store(source) => StartError::Database(source),
            other => StartError::Config(other.to_string()),
        })?;
        let platform = Self {
            advisories,
            vulns_config: config.vulns.clone(),
            incidents_config: config.incidents.clone(),
            security_txt: config.security_txt.clone(),
            privacy: config.privacy.clone(),
            patch_tried: Default::default(),
            mailer,
            telemetry: telemetry::Telemetry::default(),
            services,
            backup: config.backup.clone(),
            cron_running: crons::Running::default(),
            failed_logins: tokio::sync::broadcast::channel(1024).0,
            store,
            key,
            ca,
            dir,
            head: Mutex::new(head),
            engine: std::sync::OnceLock::new(),
            auth: config.auth.clone(),
            app_limits: config.apps.clone(),
            throttle: identity::Throttle::new(std::time::Duration::from_secs(u64::from(
                config.auth.max_backoff_secs,
            ))),
            dummy_hash: tokio::task::spawn_blocking(identity::dummy_hash)
                .await
                .unwrap_or_default(),
        };

        let bootstrapped = if platform.store.user_count().await? == 0 {
            Some(platform.bootstrap(config).await?)
        } else {
            let check = platform.store.setting(KEY_CHECK_SETTING).await?;
            match check {
                Some(value) if platform.key.matches(&value) => {}
                _ => {
                    return Err(StartError::Key(secrets::KeyError::Mismatch {
                        path: platform.dir.master_key(),
                        db: db_path,
                    }));
                }
            }
            None
        };
        Ok((platform, bootstrapped))
    }

    async fn bootstrap(&self, config: &Config) -> Result<Bootstrapped, StartError> {
        let now = Timestamp::now().to_rfc3339();
        let owner = NewUser {
            id: UserId::generate(),
            email: Some(config.bootstrap.owner_email.clone()),
            role: Role::Owner,
            created_at: now.clone(),
        };
        let secret: Secret<String> = token::generate();
        let new_token = NewToken::unlimited(
            TokenId::generate(),
            owner.id.clone(),
            "bootstrap".into(),
            token::hash(secret.expose()),
            now.clone(),
        );
        // The token file is written before the owner is committed: if the
        // commit fails the next start tries again with a new token, whereas
        // the other order could leave an owner nobody can log in as.
        let token_file = self.dir.bootstrap_token();
        write_private(
            &token_file,
            format!("{}\n", secret.expose()).as_bytes(),
            true,
        )
        .map_err(|source| StartError::Io {
            action: "write",
            path: token_file.clone(),
            source,
        })?;
        let record = AuditRecord {
            time: now,
            actor: "system".into(),
            action: Action::Bootstrap.as_str().into(),
            target: format!("users/{}", owner.id),
            outcome: Outcome::Ok,
            request_id: RequestId::generate().to_string(),
        };
        let check = self.key.check_value();
        let entry = self
            .store
            .bootstrap(&owner, &new_token, &[(KEY_CHECK_SETTING, &check)], record)
            .await;
        match entry {
            Ok(entry) => {
                self.checkpoint(entry.seq, entry.hash).await;
                tracing::info!(user = %owner.id, "created the owner account");
                Ok(Bootstrapped { token_file })
            }
            Err(err) => {
                let _ = std::fs::remove_file(&token_file);
                Err(err.into())
            }
        }
    }

    /// The internal CA, which issues the API's certificate.
    /// Deploys, rollbacks, settings and the views of what runs.
    pub fn deploys(&self) -> deploy::Deploys<'_> {
        deploy::Deploys { p: self }
    }

    /// Backups, restores, test restores and their schedules.
    pub fn backups(&self) -> backups::Backups<'_> {
        backups::Backups { p: self }
    }

    /// Users, roles, grants, logins and MFA.
    pub fn identity(&self) -> identity::Identity<'_> {
        identity::Identity { p: self }
    }

    pub fn ca(&self) -> &InternalCa {
        &self.ca
    }

    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    /// Checks a presented token: known, not revoked, not expired, of an
    /// active user.
    pub async fn authenticate(&self, presented: &str) -> Result<Caller, AuthError> {
        token::check(presented).map_err(AuthError::Malformed)?;
        let store_error = |e: StoreError| AuthError::Store(e.to_string());
        let row = self
            .store
            .token_by_hash(&token::hash(presented))
            .await
            .map_err(store_error)?
            .ok_or(AuthError::Unknown)?;
        if row.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        if let Some(expires) = &row.expires_at {
            let expired = time::OffsetDateTime::parse(
                expires,
                &time::format_description::well_known::Rfc3339,
            )
            .map_or(true, |t| t <= time::OffsetDateTime::now_utc());
            if expired {
                return Err(AuthError::Expired);
            }
        }
        if row.user_status != rampart_store::UserStatus::Active {
            return Err(AuthError::Inactive);
        }
        // Kept to the hour, so that a busy token does not write per request.
        let now = Timestamp::now();
        let stale = row.last_used_at.as_deref().is_none_or(|last| {
            Timestamp::parse(last)
                .is_none_or(|t| now.unix_seconds() - t.unix_seconds() >= TOKEN_USE_GRANULARITY)
        });
        if stale && let Err(error) = self.store.touch_token(&row.id, &now.to_rfc3339()).await {
            tracing::warn!(%error, "cannot record a token's use");
        }
        let grants = if row.role == Role::Developer {
            self.store.grants(&row.user_id).await.map_err(store_error)?
        } else {
            Vec::new()
        };
        let needs_mfa =
            self.auth.require_mfa && matches!(row.role, Role::Owner | Role::Admin) && !row.user_mfa;
        Ok(Caller {
            user_id: row.user_id,
            role: row.role,
            token_id: row.id,
            session: row.kind == rampart_store::TokenKind::Session,
            scope: row.app.map(|(_, name)| name),
            expires_at: row.expires_at,
            grants,
            mfa_enrolled: row.user_mfa,
            needs_mfa,
        })
    }

    /// Records a request that was refused before any operation ran (not
    /// authenticated, not allowed, bad input). `actor` is a user id or
    /// `anonymous`.
    pub async fn record_refusal(
        &self,
        actor: &str,
        action: &str,
        target: &str,
        outcome: Outcome,
        request_id: &RequestId,
    ) -> Result<(), Error> {
        let record = AuditRecord {
            time: Timestamp::now().to_rfc3339(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome,
            request_id: request_id.to_string(),
        };
        self.committed(self.store.append_audit(record).await).await
    }

    /// Moves the head checkpoint forward to `seq`. Failing to write it is
    /// logged, not fatal: the chain itself is intact, and verification
    /// accepts a head that trails the chain.
    async fn checkpoint(&self, seq: u64, hash: ChainHash) {
        let mut head = self.head.lock().await;
        if seq <= *head {
            return;
        }
        let path = self.dir.audit_head();
        let tmp = path.with_extension("tmp");
        let text = format!("{seq} {}\n", hex::encode(hash));
        let written =
            write_private(&tmp, text.as_bytes(), true).and_then(|()| std::fs::rename(&tmp, &path));
        match written {
            Ok(()) => *head = seq,
            Err(error) => {
                tracing::error!(%error, path = %path.display(), "cannot write the audit head checkpoint");
            }
        }
    }

    /// Closes the store cleanly.
    pub async fn close(&self) {
        self.store.close().await;
    }
}

/// Reads `DATA/audit-head`: `SEQ HEXHASH`.
fn read_head(path: &std::path::Path) -> Option<(u64, ChainHash)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (seq, hash) = text.trim().split_once(' ')?;
    let seq = seq.parse().ok()?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hash, &mut out).ok()?;
    Some((seq, out))
}

impl From<StoreError> for StartError {
    fn from(source: StoreError) -> Self {
        StartError::Database(source)
    }
}
