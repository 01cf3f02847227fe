//! A typed client for the control-plane API.
//!
//! It trusts exactly the CA it is given (Rampart's internal CA by default),
//! speaks only HTTPS with TLS 1.2 or newer, and turns every error response
//! into a [`ClientError::Api`] that keeps the server's code, message and
//! request id.

pub mod context;
mod respond;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use rampart_core::Role;
use rampart_core::deploy::{AppSettings, SettingsPatch};
use rampart_core::wire;

/// How long a streamed answer (a deploy, followed logs) may stay open.
const STREAM_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// How long a connection to the API may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an ordinary (not streamed) request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// What a deploy deploys.
#[derive(Debug, Clone)]
pub enum Deploy {
    /// A tar build context with a Dockerfile.
    Build(Vec<u8>),
    /// An image the engine has.
    Image(String),
    /// An earlier release (or the previous one).
    Rollback(Option<u64>),
    /// The live release rebuilt from its kept context; with `true`, the
    /// base images are pulled first.
    Patch(bool),
}
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{message} (HTTP {status}, request {request_id})")]
    Api {
        status: u16,
        code: String,
        message: String,
        request_id: String,
    },
    /// The server could not be reached or the connection failed.
    #[error("cannot reach {server}: {detail}")]
    Transport { server: String, detail: String },
    /// The server's answer is not what this client understands.
    #[error("unexpected answer from {server}: {detail}")]
    Protocol { server: String, detail: String },
    /// The client cannot be set up as asked.
    #[error("{0}")]
    Setup(String),
}

impl ClientError {
    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Joins an error and its sources into one line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// A connection to one Rampart server.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// Speaks only HTTP/1.1, whose connections can be upgraded (a run on a
    /// terminal).
    http1: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Client {
    /// A client for `server` (an `https://` URL) that trusts the CA
    /// certificates in `ca_pem` and no others.
    pub fn new(server: &str, ca_pem: &[u8], token: Option<String>) -> Result<Self, ClientError> {
        let base = server.trim_end_matches('/').to_owned();
        if !base.starts_with("https://") {
            return Err(ClientError::Setup(format!(
                "the server URL {server:?} must start with https://"
            )));
        }
        let certs = reqwest::Certificate::from_pem_bundle(ca_pem)
            .map_err(|e| ClientError::Setup(format!("the CA file is not PEM: {}", chain(&e))))?;
        if certs.is_empty() {
            return Err(ClientError::Setup(
                "the CA file holds no certificate".into(),
            ));
        }
        let builder = || {
            let mut builder = reqwest::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .https_only(true)
                .min_tls_version(reqwest::tls::Version::TLS_1_2)
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(REQUEST_TIMEOUT)
                .user_agent(concat!("rampart-cli/", env!("CARGO_PKG_VERSION")));
            for cert in &certs {
                builder = builder.add_root_certificate(cert.clone());
            }
            builder
        };
        let http = builder()
            .build()
            .map_err(|e| ClientError::Setup(chain(&e)))?;
        let http1 = builder()
            .http1_only()
            .build()
            .map_err(|e| ClientError::Setup(chain(&e)))?;
        Ok(Self {
            http,
            http1,
            base,
            token,
        })
    }

    pub fn server(&self) -> &str {
        &self.base
    }

    fn transport(&self, err: &reqwest::Error) -> ClientError {
        ClientError::Transport {
            server: self.base.clone(),
            detail: chain(err),
        }
    }

    /// Sends a request; the status and the whole body.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
        Ok((status, bytes.to_vec()))
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let bytes = self.send(method, path, body).await?;
        self.decode(&bytes)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(bytes).map_err(|e| ClientError::Protocol {
            server: self.base.clone(),
            detail: e.to_string(),
        })
    }

    /// A call that may take as long as the work it asks for (a backup or a
    /// restore of a large app).
    async fn call_long<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let bytes = self
            .send_timed(method, path, body, Some(STREAM_TIMEOUT))
            .await?;
        self.decode(&bytes)
    }

    async fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<Vec<u8>, ClientError> {
        self.send_timed(method, path, body, None).await
    }

    async fn send_timed<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(timeout) = timeout {
            request = request.timeout(timeout);
        }
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let (status, bytes) = self.exchange(request).await?;
        if status.is_success() {
            return Ok(bytes);
        }
        Err(self.error_from(status, &bytes))
    }

    fn error_from(&self, status: StatusCode, bytes: &[u8]) -> ClientError {
        match serde_json::from_slice::<wire::ErrorBody>(bytes) {
            Ok(body) => ClientError::Api {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
                request_id: body.error.request_id,
            },
            Err(_) => ClientError::Protocol {
                server: self.base.clone(),
                detail: format!("HTTP {status} without an error body"),
            },
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.send::<()>(Method::DELETE, path, None).await.map(drop)
    }

    pub async fn health(&self) -> Result<wire::Health, ClientError> {
        self.get("/api/health").await
    }

    pub async fn whoami(&self) -> Result<wire::WhoAmI, ClientError> {
        self.get("/api/whoami").await
    }

    pub async fn apps(&self) -> Result<Vec<wire::App>, ClientError> {
        self.get("/api/apps").await
    }

    pub async fn app(&self, name: &str) -> Result<wire::App, ClientError> {
        self.get(&format!("/api/apps/{}", segment(name))).await
    }

    pub async fn create_app(&self, request: &wire::CreateApp) -> Result<wire::App, ClientError> {
        self.call(Method::POST, "/api/apps", Some(request)).await
    }

    pub async fn delete_app(&self, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("/api/apps/{}", segment(name))).await
    }

    pub async fn env(&self, app: &str) -> Result<Vec<wire::EnvVar>, ClientError> {
        self.get(&format!("/api/apps/{}/env", segment(app))).await
    }

    pub async fn set_env(
        &self,
        app: &str,
        vars: BTreeMap<String, String>,
    ) -> Result<Vec<wire::EnvVar>, ClientError> {
        let body = wire::SetEnv { vars };
        self.call(
            Method::PUT,
            &format!("/api/apps/{}/env", segment(app)),
            Some(&body),
        )
        .await
    }

    pub async fn unset_env(&self, app: &str, names: &[String]) -> Result<(), ClientError> {
        let names: Vec<String> = names.iter().map(|n| segment(n)).collect();
        self.delete(&format!(
            "/api/apps/{}/env?names={}",
            segment(app),
            names.join(",")
        ))
        .await
    }

    pub async fn reveal_env(
        &self,
        app: &str,
        names: Option<Vec<String>>,
    ) -> Result<wire::RevealedEnv, ClientError> {
        let body = wire::RevealEnv { names };
        self.call(
            Method::POST,
            &format!("/api/apps/{}/env/reveal", segment(app)),
            Some(&body),
        )
        .await
    }

    pub async fn create_database(&self, app: &str) -> Result<wire::DatabaseInfo, ClientError> {
        self.call::<(), _>(
            Method::POST,
            &format!("/api/apps/{}/database", segment(app)),
            None,
        )
        .await
    }

    pub async fn database(&self, app: &str) -> Result<wire::DatabaseInfo, ClientError> {
        self.get(&format!("/api/apps/{}/database", segment(app)))
            .await
    }

    pub async fn reveal_database(&self, app: &str) -> Result<wire::DatabaseInfo, ClientError> {
        self.call::<(), _>(
            Method::POST,
            &format!("/api/apps/{}/database/reveal", segment(app)),
            None,
        )
        .await
    }

    pub async fn run_backup(&self, app: &str) -> Result<wire::BackupRecord, ClientError> {
        self.call_long::<(), _>(
            Method::POST,
            &format!("/api/apps/{}/backups", segment(app)),
            None,
        )
        .await
    }

    pub async fn backups(&self, app: &str) -> Result<Vec<wire::BackupSnapshot>, ClientError> {
        self.get(&format!("/api/apps/{}/backups", segment(app)))
            .await
    }

    pub async fn backup_results(&self, app: &str) -> Result<Vec<wire::BackupRecord>, ClientError> {
        self.get(&format!("/api/apps/{}/backups/results", segment(app)))
            .await
    }

    pub async fn verify_backup(
        &self,
        app: &str,
        snapshot: Option<String>,
    ) -> Result<wire::BackupRecord, ClientError> {
        self.call_long(
            Method::POST,
            &format!("/api/apps/{}/backups/verify", segment(app)),
            Some(&wire::VerifyBackup { snapshot }),
        )
        .await
    }

    pub async fn restore_backup(
        &self,
        app: &str,
        snapshot: &str,
        request: &wire::RestoreBackup,
    ) -> Result<wire::RestoredBackup, ClientError> {
        self.call_long(
            Method::POST,
            &format!(
                "/api/apps/{}/backups/{}/restore",
                segment(app),
                segment(snapshot)
            ),
            Some(request),
        )
        .await
    }

    pub async fn backup_schedule(&self, app: &str) -> Result<wire::BackupSchedule, ClientError> {
        self.get(&format!("/api/apps/{}/backup-schedule", segment(app)))
            .await
    }

    pub async fn set_backup_schedule(
        &self,
        app: &str,
        request: &wire::SetBackupSchedule,
    ) -> Result<wire::BackupSchedule, ClientError> {
        self.call(
            Method::PUT,
            &format!("/api/apps/{}/backup-schedule", segment(app)),
            Some(request),
        )
        .await
    }

    pub async fn remove_backup_schedule(&self, app: &str) -> Result<(), ClientError> {
        self.delete(&format!("/api/apps/{}/backup-schedule", segment(app)))
            .await
    }

    pub async fn cron_jobs(&self, app: &str) -> Result<Vec<wire::CronJob>, ClientError> {
        self.get(&format!("/api/apps/{}/cron", segment(app))).await
    }

    pub async fn add_cron_job(
        &self,
        app: &str,
        job: &wire::AddCronJob,
    ) -> Result<wire::CronJob, ClientError> {
        let path = format!("/api/apps/{}/cron", segment(app));
        self.call(Method::POST, &path, Some(job)).await
    }

    pub async fn remove_cron_job(&self, app: &str, id: &str) -> Result<(), ClientError> {
        self.delete(&format!("/api/apps/{}/cron/{}", segment(app), segment(id)))
            .await
    }

    pub async fn cron_runs(&self, app: &str) -> Result<Vec<wire::CronRun>, ClientError> {
        self.get(&format!("/api/apps/{}/cron/runs", segment(app)))
            .await
    }

    pub async fn bans(&self) -> Result<Vec<wire::Ban>, ClientError> {
        self.get("/api/bans").await
    }

    pub async fn add_ban(&self, ban: &wire::AddBan) -> Result<wire::Ban, ClientError> {
        self.call(Method::POST, "/api/bans", Some(ban)).await
    }

    pub async fn remove_ban(&self, net: &str, host: Option<&str>) -> Result<(), ClientError> {
        let mut path = format!("/api/bans/{}", segment(net));
        if let Some(host) = host {
            path.push_str(&format!("?host={}", segment(host)));
        }
        self.delete(&path).await
    }

    pub async fn nodes(&self) -> Result<Vec<wire::Node>, ClientError> {
        self.get("/api/nodes").await
    }

    pub async fn label_node(
        &self,
        node: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<wire::Node, ClientError> {
        let path = format!("/api/nodes/{}/labels/{}", segment(node), segment(key));
        match value {
            Some(value) => {
                let body = wire::NodeLabel {
                    value: value.to_owned(),
                };
                self.call(Method::PUT, &path, Some(&body)).await
            }
            None => self.call(Method::DELETE, &path, None::<&()>).await,
        }
    }

    pub async fn drain_node(
        &self,
        node: &str,
        suspect: bool,
    ) -> Result<wire::NodeDrained, ClientError> {
        let path = format!("/api/nodes/{}/drain", segment(node));
        // As long as moving the replicas takes.
        self.call_long(Method::POST, &path, Some(&wire::DrainNode { suspect }))
            .await
    }

    pub async fn activate_node(&self, node: &str) -> Result<wire::Node, ClientError> {
        let path = format!("/api/nodes/{}/activate", segment(node));
        self.call(Method::POST, &path, None::<&()>).await
    }

    pub async fn ingress_credential(
        &self,
        node: &str,
    ) -> Result<wire::IngressCredential, ClientError> {
        let path = format!("/api/nodes/{}/ingress", segment(node));
        self.call(Method::POST, &path, None::<&()>).await
    }

    pub async fn alerts(&self, all: bool) -> Result<Vec<wire::Alert>, ClientError> {
        self.get(&format!("/api/alerts?all={all}")).await
    }

    pub async fn alert(&self, id: &str) -> Result<wire::AlertDetail, ClientError> {
        self.get(&format!("/api/alerts/{}", segment(id))).await
    }

    pub async fn ack_alert(&self, id: &str) -> Result<wire::Alert, ClientError> {
        let path = format!("/api/alerts/{}/ack", segment(id));
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// Every app's figures, or one app's, with `minutes` of history.
    pub async fn top(&self, app: Option<&str>, minutes: u32) -> Result<wire::Top, ClientError> {
        match app {
            Some(app) => {
                self.get(&format!("/api/apps/{}/top?minutes={minutes}", segment(app)))
                    .await
            }
            None => self.get(&format!("/api/top?minutes={minutes}")).await,
        }
    }

    pub async fn channels(&self) -> Result<Vec<wire::Channel>, ClientError> {
        self.get("/api/notify").await
    }

    pub async fn add_channel(
        &self,
        channel: &wire::AddChannel,
    ) -> Result<wire::Channel, ClientError> {
        self.call(Method::POST, "/api/notify", Some(channel)).await
    }

    pub async fn remove_channel(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&format!("/api/notify/{}", segment(id))).await
    }

    pub async fn test_channels(&self) -> Result<wire::Alert, ClientError> {
        self.call(Method::POST, "/api/notify/test", None::<&()>)
            .await
    }

    /// Findings on live releases: every app's, or one app's.
    pub async fn vulns(
        &self,
        app: Option<&str>,
        severity: Option<&str>,
    ) -> Result<wire::VulnReport, ClientError> {
        let mut path = match app {
            Some(app) => format!("/api/apps/{}/vulns", segment(app)),
            None => "/api/vulns".to_owned(),
        };
        if let Some(severity) = severity {
            path.push_str(&format!("?severity={}", segment(severity)));
        }
        self.get(&path).await
    }

    /// The platform's own findings (the crates built into it).
    pub async fn own_vulns(&self) -> Result<wire::VulnReport, ClientError> {
        self.get("/api/vulns/self").await
    }

    pub async fn vulns_db(&self) -> Result<wire::VulnDbStatus, ClientError> {
        self.get("/api/vulns/db").await
    }

    /// Imports an advisory archive: a zip file, or a tar of a folder.
    pub async fn import_advisories(
        &self,
        archive: Vec<u8>,
        zip: bool,
    ) -> Result<wire::VulnImport, ClientError> {
        let kind = if zip {
            "application/zip"
        } else {
            "application/x-tar"
        };
        let mut request = self
            .http
            .post(format!("{}/api/vulns/db/import", self.base))
            .header(reqwest::header::CONTENT_TYPE, kind)
            .body(archive)
            .timeout(STREAM_TIMEOUT);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let (status, bytes) = self.exchange(request).await?;
        if !status.is_success() {
            return Err(self.error_from(status, &bytes));
        }
        self.decode(&bytes)
    }

    pub async fn accepted_risks(&self) -> Result<Vec<wire::AcceptedRisk>, ClientError> {
        self.get("/api/vulns/accepted").await
    }

    pub async fn accept_risk(
        &self,
        app: &str,
        request: &wire::AcceptRisk,
    ) -> Result<wire::AcceptedRisk, ClientError> {
        let path = format!("/api/apps/{}/vulns/accepted", segment(app));
        self.call(Method::POST, &path, Some(request)).await
    }

    pub async fn unaccept_risk(&self, app: &str, advisory: &str) -> Result<(), ClientError> {
        self.delete(&format!(
            "/api/apps/{}/vulns/accepted/{}",
            segment(app),
            segment(advisory)
        ))
        .await
    }

    /// A release's CycloneDX bill of materials (the live one by default).
    pub async fn sbom(
        &self,
        app: &str,
        release: Option<u64>,
    ) -> Result<serde_json::Value, ClientError> {
        let mut path = format!("/api/apps/{}/sbom", segment(app));
        if let Some(release) = release {
            path.push_str(&format!("?release={release}"));
        }
        self.call_long::<(), _>(Method::GET, &path, None).await
    }

    pub async fn tokens(&self) -> Result<Vec<wire::TokenInfo>, ClientError> {
        self.get("/api/tokens").await
    }

    pub async fn create_token(
        &self,
        request: &wire::CreateToken,
    ) -> Result<wire::CreatedToken, ClientError> {
        self.call(Method::POST, "/api/tokens", Some(request)).await
    }

    /// Signs in; the session token is in the answer.
    pub async fn login(&self, request: &wire::Login) -> Result<wire::Session, ClientError> {
        self.call(Method::POST, "/api/sessions", Some(request))
            .await
    }

    /// Revokes the token this client uses.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.delete("/api/sessions/current").await
    }

    pub async fn accept_invitation(
        &self,
        request: &wire::AcceptInvitation,
    ) -> Result<(), ClientError> {
        self.send(Method::POST, "/api/invitations/accept", Some(request))
            .await
            .map(drop)
    }

    pub async fn users(&self) -> Result<Vec<wire::UserInfo>, ClientError> {
        self.get("/api/users").await
    }

    pub async fn invite_user(
        &self,
        request: &wire::InviteUser,
    ) -> Result<wire::Invited, ClientError> {
        self.call(Method::POST, "/api/users", Some(request)).await
    }

    pub async fn set_role(&self, id: &str, role: Role) -> Result<wire::UserInfo, ClientError> {
        let path = format!("/api/users/{}", segment(id));
        self.call(Method::PATCH, &path, Some(&wire::SetRole { role }))
            .await
    }

    pub async fn remove_user(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&format!("/api/users/{}", segment(id))).await
    }

    pub async fn export_user(&self, id: &str) -> Result<wire::UserExport, ClientError> {
        self.get(&format!("/api/users/{}/export", segment(id)))
            .await
    }

    pub async fn erase_user(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/api/users/{}/erase", segment(id));
        self.send::<()>(Method::POST, &path, None).await.map(drop)
    }

    pub async fn grant(
        &self,
        id: &str,
        app: &str,
        granted: bool,
    ) -> Result<wire::UserInfo, ClientError> {
        let path = format!("/api/users/{}/grants/{}", segment(id), segment(app));
        let method = if granted { Method::PUT } else { Method::DELETE };
        self.call::<(), _>(method, &path, None).await
    }

    pub async fn enroll_mfa(&self) -> Result<wire::MfaEnrollment, ClientError> {
        self.call::<(), _>(Method::POST, "/api/mfa/enroll", None)
            .await
    }

    pub async fn confirm_mfa(&self, code: &str) -> Result<wire::RecoveryCodes, ClientError> {
        let body = wire::ConfirmMfa { code: code.into() };
        self.call(Method::POST, "/api/mfa/confirm", Some(&body))
            .await
    }

    pub async fn revoke_token(&self, id: &str) -> Result<(), ClientError> {
        self.delete(&format!("/api/tokens/{}", segment(id))).await
    }

    pub async fn audit(&self, limit: u32) -> Result<Vec<wire::AuditEntry>, ClientError> {
        self.get(&format!("/api/audit?limit={limit}")).await
    }

    pub async fn verify_audit(&self) -> Result<wire::AuditVerification, ClientError> {
        self.get("/api/audit/verify").await
    }

    pub async fn releases(&self, app: &str) -> Result<Vec<wire::Release>, ClientError> {
        self.get(&format!("/api/apps/{}/releases", segment(app)))
            .await
    }

    pub async fn settings(&self, app: &str) -> Result<AppSettings, ClientError> {
        self.get(&format!("/api/apps/{}/settings", segment(app)))
            .await
    }

    pub async fn configure(
        &self,
        app: &str,
        patch: &SettingsPatch,
    ) -> Result<AppSettings, ClientError> {
        let path = format!("/api/apps/{}/settings", segment(app));
        self.call(Method::PATCH, &path, Some(patch)).await
    }

    pub async fn scale(
        &self,
        app: &str,
        request: &wire::Scale,
    ) -> Result<wire::AppStatus, ClientError> {
        let path = format!("/api/apps/{}/scale", segment(app));
        self.call(Method::POST, &path, Some(request)).await
    }

    pub async fn ps(&self, app: &str) -> Result<wire::AppStatus, ClientError> {
        self.get(&format!("/api/apps/{}/ps", segment(app))).await
    }

    /// Starts a deploy and passes each progress line to `on_line`; returns
    /// the last line (`done` or `failed`).
    pub async fn deploy(
        &self,
        app: &str,
        what: Deploy,
        mut on_line: impl FnMut(&wire::DeployLine),
    ) -> Result<wire::DeployLine, ClientError> {
        let app = segment(app);
        let mut request = match what {
            Deploy::Build(context) => self
                .http
                .post(format!("{}/api/apps/{app}/deploys/build", self.base))
                .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
                .body(context),
            Deploy::Image(image) => self
                .http
                .post(format!("{}/api/apps/{app}/deploys/image", self.base))
                .json(&wire::DeployImage { image }),
            Deploy::Rollback(to) => self
                .http
                .post(format!("{}/api/apps/{app}/rollback", self.base))
                .json(&wire::Rollback { to }),
            Deploy::Patch(pull) => self
                .http
                .post(format!("{}/api/apps/{app}/patch?pull={pull}", self.base)),
        };
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut last = None;
        self.lines(request.timeout(STREAM_TIMEOUT), |line: wire::DeployLine| {
            on_line(&line);
            last = Some(line);
        })
        .await?;
        last.ok_or_else(|| ClientError::Protocol {
            server: self.base.clone(),
            detail: "the deploy stream ended without an outcome".into(),
        })
    }

    /// Runs a one-off command in a container of one of the app's releases;
    /// each line is passed to `on_line`, and the last (`exit`, `timed_out`
    /// or `failed`) returned.
    pub async fn run(
        &self,
        app: &str,
        command: &wire::RunCommand,
        mut on_line: impl FnMut(&wire::RunLine),
    ) -> Result<wire::RunLine, ClientError> {
        let mut request = self
            .http
            .post(format!("{}/api/apps/{}/runs", self.base, segment(app)))
            .json(command);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let mut last = None;
        self.lines(request.timeout(STREAM_TIMEOUT), |line: wire::RunLine| {
            on_line(&line);
            last = Some(line);
        })
        .await?;
        last.ok_or_else(|| ClientError::Protocol {
            server: self.base.clone(),
            detail: "the run ended without an outcome".into(),
        })
    }

    /// Runs a one-off command on a terminal (`command.tty` names its size).
    /// The connection returned carries the frames of
    /// [`rampart_core::terminal`]: send what the user types and the
    /// terminal's new sizes, read what the command prints and, last, how it
    /// ended.
    pub async fn run_terminal(
        &self,
        app: &str,
        command: &wire::RunCommand,
    ) -> Result<reqwest::Upgraded, ClientError> {
        if command.tty.is_none() {
            return Err(ClientError::Setup(
                "a run on a terminal needs the terminal's size".into(),
            ));
        }
        let mut request = self
            .http1
            .post(format!("{}/api/apps/{}/runs", self.base, segment(app)))
            .header(reqwest::header::CONNECTION, "upgrade")
            .header(reqwest::header::UPGRADE, rampart_core::terminal::UPGRADE)
            .timeout(STREAM_TIMEOUT)
            .json(command);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        if status != StatusCode::SWITCHING_PROTOCOLS {
            let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
            return Err(self.error_from(status, &bytes));
        }
        response.upgrade().await.map_err(|e| self.transport(&e))
    }

    /// An app's log lines, passed to `on_line` as they arrive.
    pub async fn logs(
        &self,
        app: &str,
        since_secs: Option<u64>,
        tail: Option<u32>,
        follow: bool,
        on_line: impl FnMut(wire::LogLine),
    ) -> Result<(), ClientError> {
        let mut path = format!("/api/apps/{}/logs?follow={follow}", segment(app));
        if let Some(since) = since_secs {
            path.push_str(&format!("&since_secs={since}"));
        }
        if let Some(tail) = tail {
            path.push_str(&format!("&tail={tail}"));
        }
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        self.lines(request.timeout(STREAM_TIMEOUT), on_line).await
    }

    /// Reads an `application/x-ndjson` answer line by line.
    async fn lines<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        mut on_line: impl FnMut(T),
    ) -> Result<(), ClientError> {
        let mut response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        if !status.is_success() {
            let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
            return Err(self.error_from(status, &bytes));
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(&e))? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let value = serde_json::from_slice(&line).map_err(|e| ClientError::Protocol {
                    server: self.base.clone(),
                    detail: format!("a progress line is not understood: {e}"),
                })?;
                on_line(value);
            }
        }
        Ok(())
    }

    /// A raw request, for tests that send what a well-behaved client would not.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Vec<u8>), ClientError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(ct) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, ct);
        }
        self.exchange(request.body(body)).await
    }
}

/// Percent-encodes a path segment so a name can never change the path.
fn segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub use reqwest::Method as HttpMethod;
pub use reqwest::StatusCode as HttpStatus;
