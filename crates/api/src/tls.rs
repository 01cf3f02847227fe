//! TLS for the control-plane API: a certificate from the internal CA,
//! renewed in place before it expires.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use rampart_platform::Platform;
use rampart_platform::pki::PkiError;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;

/// Renew when less than this much validity is left.
const RENEW_BEFORE: time::Duration = time::Duration::days(30);
const CHECK_EVERY: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error(transparent)]
    Issue(#[from] PkiError),
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The API's current certificate.
#[derive(Debug)]
pub struct ApiCertificate {
    names: Vec<String>,
    current: RwLock<(Arc<CertifiedKey>, OffsetDateTime)>,
}

fn certified(
    platform: &Platform,
    names: &[String],
) -> Result<(Arc<CertifiedKey>, OffsetDateTime), TlsError> {
    let issued = platform.ca().issue(names)?;
    let key = rustls::crypto::ring::sign::any_supported_type(&issued.key)?;
    Ok((
        Arc::new(CertifiedKey::new(issued.chain, key)),
        issued.not_after,
    ))
}

impl ApiCertificate {
    /// Issues a certificate for `localhost`, `127.0.0.1`, `::1` and `extra`.
    pub fn issue(platform: &Platform, extra: &[String]) -> Result<Arc<Self>, TlsError> {
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        for name in extra {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let current = certified(platform, &names)?;
        Ok(Arc::new(Self {
            names,
            current: RwLock::new(current),
        }))
    }

    pub fn not_after(&self) -> OffsetDateTime {
        self.current.read().unwrap_or_else(|e| e.into_inner()).1
    }

    /// Replaces the certificate when it is close to expiry.
    pub fn renew_if_due(&self, platform: &Platform) -> Result<bool, TlsError> {
        if self.not_after() - OffsetDateTime::now_utc() > RENEW_BEFORE {
            return Ok(false);
        }
        let fresh = certified(platform, &self.names)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(true)
    }

    /// Checks for renewal every few hours, forever.
    pub async fn renew_forever(self: Arc<Self>, platform: Arc<Platform>) {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            match self.renew_if_due(&platform) {
                Ok(true) => {
                    tracing::info!(not_after = %self.not_after(), "renewed the API certificate")
                }
                Ok(false) => {}
                Err(error) => tracing::error!(%error, "cannot renew the API certificate"),
            }
        }
    }
}

impl ResolvesServerCert for ApiCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .0
                .clone(),
        )
    }
}

/// A server configuration with TLS 1.2 and 1.3 only and the AEAD suites of
/// the ring provider (rustls offers no others), speaking HTTP/2 and 1.1.
pub fn server_config(cert: Arc<ApiCertificate>) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
