//! Managed data: each app's PostgreSQL database and media folder, and what
//! replicas get to reach them (`DATABASE_URL`, `MEDIA_ROOT`, the volumes).
//!
//! The managed cluster's layout follows the store: it listens on the
//! gateway of every app network whose app has a database, and admits each
//! app's role to its own database from that network only. The layout is
//! applied at start, when a database is created and before replicas of an
//! app with a database start (its network may be new, or switched by
//! `egress`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use rampart_core::config::PostgresConfig;
use rampart_core::time::Timestamp;
use rampart_core::{Action, AppId, AppName, wire};
use rampart_runtime::{CA_MOUNT, LABEL_APP, LABEL_INSTALLATION, MEDIA_MOUNT, VolumeSpec};
use rampart_services::ServiceError;
use rampart_services::cluster::{Access, Layout, ManagedCluster};
use rampart_services::media::MediaStore;
use rampart_services::postgres::{Admin, Server, Tenant, database_name, new_password};
use rampart_services::s3::{AppKey, MEDIA_PREFIX, S3Admin};
use rampart_store::{AppRow, DatabaseRow, MediaBucketRow};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::controller::Engine;
use crate::{Acting, Error, Platform};

/// The file in the CA volume that replicas verify their database with.
const DB_CA_FILE: &str = "db-ca.pem";

impl From<ServiceError> for Error {
    fn from(err: ServiceError) -> Self {
        match err {
            ServiceError::Invalid(m) => Error::Invalid(m),
            other => Error::Unavailable(other.to_string()),
        }
    }
}

/// The platform's handles on databases and media.
#[derive(Debug)]
pub(crate) struct Services {
    config: PostgresConfig,
    /// The managed cluster, or why there is none.
    cluster: Result<ManagedCluster, String>,
    admin: Result<Admin, String>,
    pub(crate) media: MediaStore,
    /// Folder behind the read-only CA volume.
    ca_dir: PathBuf,
    /// The CA that signed the database server's certificate (PEM).
    db_ca: Result<String, String>,
    /// One layout change at a time.
    apply: Mutex<()>,
    /// One backup, restore or test restore at a time per app; apps never
    /// wait for each other.
    backups: std::sync::Mutex<HashMap<AppId, Arc<Mutex<()>>>>,
    /// The backup repository is opened, and created on first use, by one
    /// task at a time: two apps' first backups must not both create it.
    pub(crate) repository_open: Mutex<()>,
    /// Media on an S3 server instead of folders, when configured (or why
    /// its administrator key cannot be used).
    s3: Option<Result<S3Admin, String>>,
}

/// What the replicas of an app get for their data.
#[derive(Debug, Clone, Default)]
pub(crate) struct DataMounts {
    pub env: Vec<(String, String)>,
    pub media_volume: Option<String>,
    pub ca_volume: Option<String>,
}

impl Services {
    pub(crate) fn new(
        root: &std::path::Path,
        config: &PostgresConfig,
        media_s3: Option<&rampart_core::config::MediaS3Config>,
        internal_ca: &str,
    ) -> Self {
        // Docker binds volumes to these folders and PostgreSQL reads its
        // paths from its own directory: both need them absolute, whatever
        // the data directory was given as (`./rampart-data` by default).
        let root = &std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
        let s3 = media_s3.map(|c| {
            std::fs::read_to_string(&c.secret_key_file)
                .map_err(|e| {
                    format!(
                        "media.s3_secret_key_file {}: {e}",
                        c.secret_key_file.display()
                    )
                })
                .and_then(|secret| {
                    S3Admin::new(&c.endpoint, &c.region, &c.access_key_id, secret.trim())
                        .map_err(|e| e.to_string())
                })
        });
        let (cluster, admin, db_ca) = match config {
            PostgresConfig::Managed { port, bin_dir } => {
                let bin = bin_dir
                    .clone()
                    .or_else(rampart_services::cluster::find_bin_dir)
                    .ok_or_else(|| {
                        "no PostgreSQL installation found (initdb under /usr/lib/postgresql or on PATH): install it or set postgres.bin_dir".to_owned()
                    });
                let cluster = bin.clone().and_then(|bin| {
                    ManagedCluster::new(root.join("postgres"), bin, *port)
                        .map_err(|e| e.to_string())
                });
                let admin = match (&cluster, bin.as_ref()) {
                    (Ok(c), Ok(bin)) => Ok(Admin::new(
                        Server::Socket {
                            dir: c.socket_dir(),
                            port: *port,
                        },
                        bin.clone(),
                    )),
                    (Err(e), _) | (_, Err(e)) => Err(e.clone()),
                };
                (cluster, admin, Ok(internal_ca.to_owned()))
            }
            PostgresConfig::External {
                admin_url,
                ca_file,
                bin_dir,
                ..
            } => {
                let ca = std::fs::read_to_string(ca_file)
                    .map_err(|e| format!("postgres.ca_file {}: {e}", ca_file.display()));
                let bin = bin_dir
                    .clone()
                    .or_else(rampart_services::cluster::find_bin_dir)
                    .unwrap_or_else(|| PathBuf::from("/usr/bin"));
                let admin = ca.clone().map(|ca_pem| {
                    Admin::new(
                        Server::External {
                            url: admin_url.clone(),
                            ca_file: ca_file.clone(),
                            ca_pem,
                        },
                        bin,
                    )
                });
                (
                    Err("the platform uses an external PostgreSQL server".to_owned()),
                    admin,
                    ca,
                )
            }
        };
        Self {
            config: config.clone(),
            cluster,
            admin,
            media: MediaStore::new(root.join("media")),
            ca_dir: root.join("ca-public"),
            db_ca,
            apply: Mutex::new(()),
            backups: std::sync::Mutex::new(HashMap::new()),
            repository_open: Mutex::new(()),
            s3,
        }
    }

    fn backup_lock(&self, app: &AppId) -> Arc<Mutex<()>> {
        let mut locks = self.backups.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(app.clone()).or_default().clone()
    }

    /// Waits for `app`'s turn to back up, restore or test-restore.
    pub(crate) async fn backup_turn(&self, app: &AppId) -> OwnedMutexGuard<()> {
        self.backup_lock(app).lock_owned().await
    }

    /// `app`'s turn, if no backup of it is running now.
    pub(crate) fn try_backup_turn(&self, app: &AppId) -> Option<OwnedMutexGuard<()>> {
        self.backup_lock(app).try_lock_owned().ok()
    }

    pub(crate) fn admin(&self) -> Result<&Admin, Error> {
        self.admin
            .as_ref()
            .map_err(|e| Error::Unavailable(format!("databases are unavailable: {e}")))
    }

    fn managed(&self) -> Option<&ManagedCluster> {
        self.cluster.as_ref().ok()
    }

    /// The S3 administrator, when media live on S3.
    pub(crate) fn s3(&self) -> Option<Result<&S3Admin, Error>> {
        self.s3.as_ref().map(|r| {
            r.as_ref()
                .map_err(|e| Error::Unavailable(format!("media storage is unavailable: {e}")))
        })
    }
}

/// PEM of a DER certificate or key.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Why a managed database cannot serve apps on a Swarm.
const MANAGED_ON_SWARM: &str = "the managed PostgreSQL listens on this host's app networks, which Swarm replicas on other nodes cannot reach; with runtime.backend = \"swarm\" use postgres.mode = \"external\" (a server every node reaches)";

impl Platform {
    pub(crate) fn services(&self) -> &Services {
        &self.services
    }

    /// Starts the managed cluster if it exists (it is created with the
    /// first database) and brings it to the store's layout.
    pub async fn start_services(&self) -> Result<(), Error> {
        let Some(cluster) = self.services.managed() else {
            return Ok(());
        };
        if cluster.exists() || !self.store.databases().await?.is_empty() {
            self.sync_postgres().await?;
        }
        Ok(())
    }

    /// Stops the managed cluster (with the platform).
    pub async fn stop_services(&self) {
        if let Some(cluster) = self.services.managed()
            && let Err(error) = cluster.stop().await
        {
            tracing::warn!(%error, "cannot stop the managed PostgreSQL cluster");
        }
    }

    fn engine_for_data(&self) -> Result<&Engine, Error> {
        self.engine()
    }

    /// The network an app's replicas are on, created if needed, and its
    /// subnet and gateway.
    async fn app_network(
        &self,
        engine: &Engine,
        app: &AppRow,
    ) -> Result<rampart_runtime::NetworkAddresses, Error> {
        if engine.runtime.backend() == "swarm" {
            return Err(Error::Invalid(MANAGED_ON_SWARM.into()));
        }
        let spec = engine.network(&app.name, app.settings.egress);
        engine.runtime.ensure_network(&spec).await?;
        engine
            .runtime
            .network_addresses(&spec.name)
            .await?
            .ok_or_else(|| Error::Unavailable(format!("network {} vanished", spec.name)))
    }

    /// Brings the managed cluster to the layout the store asks for.
    pub(crate) async fn sync_postgres(&self) -> Result<(), Error> {
        let Some(cluster) = self.services.managed() else {
            return Ok(());
        };
        let _turn = self.services.apply.lock().await;
        let engine = self.engine_for_data()?;
        let apps: BTreeMap<AppId, AppRow> = self
            .store
            .apps()
            .await?
            .into_iter()
            .map(|a| (a.id.clone(), a))
            .collect();
        let mut listen = Vec::new();
        let mut access = Vec::new();
        for db in self.store.databases().await? {
            let Some(app) = apps.get(&db.app_id) else {
                continue;
            };
            let net = self.app_network(engine, app).await?;
            if !listen.contains(&net.gateway) {
                listen.push(net.gateway);
            }
            access.push(Access {
                database: db.name.clone(),
                role: db.name.clone(),
                network: net.subnet,
            });
        }
        listen.sort();
        let mut names: Vec<String> = listen.iter().map(|a| a.to_string()).collect();
        names.push("localhost".into());
        let issued = self.ca.issue(&names).map_err(|e| {
            Error::Unavailable(format!("cannot issue the database certificate: {e}"))
        })?;
        let cert_pem: String = issued.chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
        let key_pem = pem("PRIVATE KEY", issued.key.secret_der());
        let layout = Layout {
            listen,
            access,
            cert_pem,
            key_pem,
        };
        cluster.apply(&layout).await?;
        Ok(())
    }

    fn db_host(&self, gateway: Option<std::net::IpAddr>) -> (String, u16) {
        match &self.services.config {
            PostgresConfig::Managed { port, .. } => (
                gateway.map_or_else(|| "-".to_owned(), |g| g.to_string()),
                *port,
            ),
            PostgresConfig::External { app_host, port, .. } => (app_host.clone(), *port),
        }
    }

    fn open_db_password(&self, app: &AppRow, db: &DatabaseRow) -> Result<String, Error> {
        let plain = self.key.open(&db_aad(&app.id), &db.password).map_err(|_| {
            Error::Sealed(format!(
                "the database password of app {:?} cannot be opened with this master key",
                app.name.as_str()
            ))
        })?;
        String::from_utf8(plain)
            .map_err(|_| Error::Sealed("the database password is not UTF-8".into()))
    }

    /// A handle that acts as the app's own database role: everything that
    /// reads or loads the app's data goes through it, never the admin.
    pub(crate) fn tenant(&self, app: &AppRow, db: &DatabaseRow) -> Result<Tenant, Error> {
        let password = self.open_db_password(app, db)?;
        Ok(self.services().admin()?.tenant(&db.name, &password)?)
    }

    async fn database_view(
        &self,
        app: &AppRow,
        db: &DatabaseRow,
        reveal: bool,
    ) -> Result<wire::DatabaseInfo, Error> {
        let gateway = match (&self.services.config, self.engine()) {
            (PostgresConfig::Managed { .. }, Ok(engine)) => {
                Some(self.app_network(engine, app).await?.gateway)
            }
            _ => None,
        };
        let (host, port) = self.db_host(gateway);
        let ca_path = format!("{CA_MOUNT}/{DB_CA_FILE}");
        let (password, url) = if reveal {
            let password = self.open_db_password(app, db)?;
            let url = database_url(&db.name, &password, &host, port);
            (Some(password), Some(url))
        } else {
            (None, None)
        };
        Ok(wire::DatabaseInfo {
            app: app.name.to_string(),
            host,
            port,
            database: db.name.clone(),
            user: db.name.clone(),
            ca_path,
            created_at: db.created_at.clone(),
            password,
            url,
        })
    }

    /// Creates the app's database and role with a fresh password.
    pub async fn create_database(
        &self,
        acting: Acting<'_>,
        app: &str,
    ) -> Result<wire::DatabaseInfo, Error> {
        let row = self.app_row(app).await?;
        if self.store.database(&row.id).await?.is_some() {
            return Err(Error::Conflict(format!(
                "app {:?} already has a database",
                row.name.as_str()
            )));
        }
        if self.services.managed().is_some()
            && let Ok(engine) = self.engine()
            && engine.runtime.backend() == "swarm"
        {
            return Err(Error::Invalid(MANAGED_ON_SWARM.into()));
        }
        let admin = self.services.admin()?.clone();
        if self.services.managed().is_some() {
            // The cluster runs (with the current layout) before anything is
            // created in it.
            self.sync_postgres().await?;
        }
        let name = database_name(row.name.as_str());
        let password = new_password();
        admin.create_database(&name, &name, &password).await?;
        let db = DatabaseRow {
            app_id: row.id.clone(),
            name: name.clone(),
            password: self.key.seal(&db_aad(&row.id), password.as_bytes()),
            created_at: Timestamp::now().to_rfc3339(),
        };
        let record = self.record(
            acting,
            Action::DatabaseCreate,
            format!("apps/{}/database", row.name),
        );
        self.committed(self.store.put_database(&db, record).await)
            .await?;
        self.sync_postgres().await?;
        tracing::info!(app = %row.name, database = %name, "database created");
        self.database_view(&row, &db, false).await
    }

    async fn app_database(&self, app: &str) -> Result<(AppRow, DatabaseRow), Error> {
        let row = self.app_row(app).await?;
        let db = self.store.database(&row.id).await?.ok_or_else(|| {
            Error::NotFound(format!(
                "app {:?} has no database: create it with `rampart db create {}`",
                row.name.as_str(),
                row.name
            ))
        })?;
        Ok((row, db))
    }

    /// Where the app's database is, without its password.
    pub async fn database_info(&self, app: &str) -> Result<wire::DatabaseInfo, Error> {
        let (row, db) = self.app_database(app).await?;
        self.database_view(&row, &db, false).await
    }

    /// The app's database with its password and URL; recorded in the audit
    /// log before anything is returned.
    pub async fn reveal_database(
        &self,
        acting: Acting<'_>,
        app: &str,
    ) -> Result<wire::DatabaseInfo, Error> {
        let (row, db) = self.app_database(app).await?;
        let record = self.record(
            acting,
            Action::DatabaseReveal,
            format!("apps/{}/database", row.name),
        );
        self.committed(self.store.append_audit(record).await)
            .await?;
        self.database_view(&row, &db, true).await
    }

    /// The app's media bucket and key, created with its first use.
    pub(crate) async fn media_bucket(
        &self,
        engine: &Engine,
        app: &AppRow,
        s3: &S3Admin,
    ) -> Result<(MediaBucketRow, AppKey), Error> {
        if let Some(row) = self.store.media_bucket(&app.id).await? {
            let secret = self
                .key
                .open(&media_aad(&app.id), &row.secret)
                .map_err(|_| {
                    Error::Sealed(format!(
                        "the media key of app {:?} cannot be opened with this master key",
                        app.name.as_str()
                    ))
                })?;
            let key = AppKey {
                access_key_id: row.access_key_id.clone(),
                secret_access_key: String::from_utf8_lossy(&secret).into_owned(),
            };
            return Ok((row, key));
        }
        let name = format!("rampart-{}-{}", engine.installation, app.name);
        s3.create_bucket(&name).await?;
        let key = s3.create_app_user(&name, &name).await?;
        let row = MediaBucketRow {
            app_id: app.id.clone(),
            bucket: name.clone(),
            iam_user: name,
            access_key_id: key.access_key_id.clone(),
            secret: self
                .key
                .seal(&media_aad(&app.id), key.secret_access_key.as_bytes()),
            created_at: Timestamp::now().to_rfc3339(),
        };
        self.store.put_media_bucket(&row).await?;
        tracing::info!(app = %app.name, bucket = %row.bucket, "media bucket created");
        Ok((row, key))
    }

    /// The name of an app's media volume.
    fn media_volume(engine: &Engine, app: &AppName) -> String {
        format!("rampart-{}-{}-media", engine.installation, app)
    }

    fn ca_volume(engine: &Engine) -> String {
        format!("rampart-{}-ca", engine.installation)
    }

    /// Everything replicas of `app` need for their data, in place before
    /// they start: the media folder (owned by the user they run as) and its
    /// volume, the CA volume, the database's rules, and the variables.
    pub(crate) async fn prepare_data(
        &self,
        engine: &Engine,
        app: &AppRow,
        image_id: &str,
    ) -> Result<DataMounts, Error> {
        let labels = |app: Option<&AppName>| {
            let mut labels =
                BTreeMap::from([(LABEL_INSTALLATION.to_owned(), engine.installation.clone())]);
            if let Some(app) = app {
                labels.insert(LABEL_APP.to_owned(), app.to_string());
            }
            labels
        };
        let mut env = Vec::new();
        let mut media_volume = None;
        if let Some(s3) = self.services.s3() {
            // Media on S3: the app's own bucket, reached with its own key.
            let s3 = s3?;
            let (bucket, key) = self.media_bucket(engine, app, s3).await?;
            for (k, v) in [
                ("MEDIA_STORAGE", "s3".to_owned()),
                ("MEDIA_S3_ENDPOINT", s3.endpoint().to_owned()),
                ("MEDIA_S3_REGION", s3.region().to_owned()),
                ("MEDIA_S3_BUCKET", bucket.bucket.clone()),
                ("MEDIA_S3_PREFIX", MEDIA_PREFIX.to_owned()),
                (
                    "MEDIA_URL",
                    format!("{}/{}/{MEDIA_PREFIX}", s3.endpoint(), bucket.bucket),
                ),
                ("AWS_ENDPOINT_URL", s3.endpoint().to_owned()),
                ("AWS_DEFAULT_REGION", s3.region().to_owned()),
                ("AWS_ACCESS_KEY_ID", key.access_key_id),
                ("AWS_SECRET_ACCESS_KEY", key.secret_access_key),
            ] {
                env.push((k.to_owned(), v));
            }
        } else {
            let image = engine.runtime.image(image_id).await?;
            let owner = rampart_runtime::run_as(&image.user, app.settings.allow_root);
            let folder = self.services.media.ensure(app.name.as_str(), owner)?;
            let volume = Self::media_volume(engine, &app.name);
            engine
                .runtime
                .ensure_volume(&VolumeSpec {
                    name: volume.clone(),
                    folder,
                    labels: labels(Some(&app.name)),
                })
                .await?;
            media_volume = Some(volume);
            env.push(("MEDIA_STORAGE".to_owned(), "local".to_owned()));
            env.push(("MEDIA_ROOT".to_owned(), MEDIA_MOUNT.to_owned()));
            env.push(("MEDIA_URL".to_owned(), "/media/".to_owned()));
        }

        let mut ca_volume = None;
        if let Some(db) = self.store.database(&app.id).await? {
            let ca = self
                .services
                .db_ca
                .as_ref()
                .map_err(|e| Error::Unavailable(e.clone()))?;
            write_public(&self.services.ca_dir, DB_CA_FILE, ca)?;
            let volume = Self::ca_volume(engine);
            engine
                .runtime
                .ensure_volume(&VolumeSpec {
                    name: volume.clone(),
                    folder: self.services.ca_dir.clone(),
                    labels: labels(None),
                })
                .await?;
            ca_volume = Some(volume);
            self.sync_postgres().await?;
            let gateway = match self.services.config {
                PostgresConfig::Managed { .. } => {
                    Some(self.app_network(engine, app).await?.gateway)
                }
                PostgresConfig::External { .. } => None,
            };
            let (host, port) = self.db_host(gateway);
            let password = self.open_db_password(app, &db)?;
            let ca_path = format!("{CA_MOUNT}/{DB_CA_FILE}");
            env.push((
                "DATABASE_URL".to_owned(),
                database_url(&db.name, &password, &host, port),
            ));
            env.push(("PGSSLMODE".to_owned(), "verify-full".to_owned()));
            env.push(("PGSSLROOTCERT".to_owned(), ca_path));
        }
        Ok(DataMounts {
            env,
            media_volume,
            ca_volume,
        })
    }

    /// Drops a deleted app's database and role and removes its media (its
    /// folder, or its bucket and key).
    pub(crate) async fn remove_app_data(
        &self,
        app: &AppName,
        db: Option<DatabaseRow>,
        bucket: Option<MediaBucketRow>,
    ) {
        if let Some(bucket) = bucket {
            match self.services.s3() {
                Some(Ok(s3)) => {
                    if let Err(error) = s3.delete_bucket(&bucket.bucket).await {
                        tracing::warn!(%error, app = %app, "cannot delete the media bucket of a deleted app");
                    }
                    if let Err(error) = s3
                        .delete_app_user(&bucket.iam_user, &bucket.access_key_id)
                        .await
                    {
                        tracing::warn!(%error, app = %app, "cannot delete the media key of a deleted app");
                    }
                }
                _ => {
                    tracing::warn!(app = %app, bucket = %bucket.bucket, "the media bucket of a deleted app is left")
                }
            }
        }
        if let Some(db) = db {
            match self.services.admin() {
                Ok(admin) => {
                    if let Err(error) = admin.drop_database(&db.name).await {
                        tracing::warn!(%error, app = %app, "cannot drop the database of a deleted app");
                    }
                    if let Err(error) = admin.drop_role(&db.name).await {
                        tracing::warn!(%error, app = %app, "cannot drop the role of a deleted app");
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, app = %app, "the database of a deleted app is left")
                }
            }
            if let Err(error) = self.sync_postgres().await {
                tracing::warn!(%error, "cannot update the database rules");
            }
        }
        if let Ok(engine) = self.engine() {
            let _ = engine
                .runtime
                .remove_volume(&Self::media_volume(engine, app))
                .await;
        }
        if let Err(error) = self.services.media.remove(app.as_str()) {
            tracing::warn!(%error, app = %app, "cannot remove the media of a deleted app");
        }
    }
}

/// The associated data that binds a sealed media key to its app.
pub(crate) fn media_aad(app: &AppId) -> Vec<u8> {
    format!("rampart/media/v1\0{app}").into_bytes()
}

/// The associated data that binds a sealed database password to its app.
pub(crate) fn db_aad(app: &AppId) -> Vec<u8> {
    format!("rampart/database/v1\0{app}").into_bytes()
}

/// `DATABASE_URL` for a role: TLS required and verified against the CA in
/// the replica's CA volume.
fn database_url(name: &str, password: &str, host: &str, port: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!(
        "postgresql://{name}:{password}@{host}:{port}/{name}?sslmode=verify-full&sslrootcert={CA_MOUNT}/{DB_CA_FILE}"
    )
}

/// Writes a file others may read (a CA certificate) into `dir`.
fn write_public(dir: &std::path::Path, name: &str, text: &str) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| Error::Unavailable(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(io)?;
    let path = dir.join(name);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text) {
        let tmp = dir.join(format!(".{name}.new"));
        std::fs::write(&tmp, text).map_err(io)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_require_verified_tls() {
        let url = database_url("app_blog", "pw", "172.18.0.1", 6543);
        assert_eq!(
            url,
            "postgresql://app_blog:pw@172.18.0.1:6543/app_blog?sslmode=verify-full&sslrootcert=/etc/rampart/db-ca.pem"
        );
    }

    #[test]
    fn certificates_become_pem() {
        let text = pem("CERTIFICATE", &[0u8; 100]);
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(text.ends_with("-----END CERTIFICATE-----\n"));
        assert!(text.lines().all(|l| l.len() <= 64));
    }
}
