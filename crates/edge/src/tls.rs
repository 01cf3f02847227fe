//! Certificates by SNI: a store the TLS acceptor consults on every
//! handshake, filled from the internal CA, PEM files or ACME, and swapped
//! whole when sites change.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use time::OffsetDateTime;

use crate::routes::normalize_host;

/// A certificate ready to serve, with its expiry.
#[derive(Debug, Clone)]
pub struct Served {
    pub key: Arc<CertifiedKey>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// Where it came from: `internal`, `files` or `acme`.
    pub source: &'static str,
}

/// Certificates by host name (`*.example.com` for wildcards).
#[derive(Debug, Default)]
pub struct CertStore {
    certs: ArcSwap<HashMap<String, Served>>,
    /// Served to names no site claims, so the client reaches HTTP and gets
    /// a 421 instead of a handshake failure. It names no site.
    fallback: ArcSwap<Option<Arc<CertifiedKey>>>,
}

impl CertStore {
    pub fn set_fallback(&self, served: Served) {
        self.fallback.store(Arc::new(Some(served.key)));
    }

    pub fn replace(&self, certs: HashMap<String, Served>) {
        self.certs.store(Arc::new(certs));
    }

    pub fn snapshot(&self) -> Arc<HashMap<String, Served>> {
        self.certs.load_full()
    }

    /// Sets one host's certificate, keeping the others.
    pub fn set(&self, host: &str, served: Served) {
        self.certs.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.insert(host.to_owned(), served.clone());
            next
        });
    }

    fn find(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let host = normalize_host(name)?;
        let certs = self.certs.load();
        if let Some(s) = certs.get(&*host) {
            return Some(s.key.clone());
        }
        let (_, parent) = host.split_once('.')?;
        certs.get(&format!("*.{parent}")).map(|s| s.key.clone())
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|name| self.find(name))
            .or_else(|| self.fallback.load().as_ref().clone())
    }
}

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path} holds no certificate")]
    Empty { path: String },
    #[error("the key does not fit: {0}")]
    Key(String),
    #[error("{0}")]
    Issue(String),
}

/// Builds a served certificate from DER parts.
pub fn served(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'static>,
    source: &'static str,
) -> Result<Served, CertError> {
    let signing = rustls::crypto::ring::sign::any_supported_type(key)
        .map_err(|e| CertError::Key(e.to_string()))?;
    let (not_before, not_after) = chain
        .first()
        .and_then(|c| {
            use x509_parser::prelude::FromDer;
            x509_parser::certificate::X509Certificate::from_der(c)
                .ok()
                .map(|(_, x)| {
                    (
                        x.validity().not_before.to_datetime(),
                        x.validity().not_after.to_datetime(),
                    )
                })
        })
        .unwrap_or((OffsetDateTime::UNIX_EPOCH, OffsetDateTime::UNIX_EPOCH));
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| CertError::Key(e.to_string()))?;
    Ok(Served {
        key: Arc::new(certified),
        not_before,
        not_after,
        source,
    })
}

/// Loads a PEM certificate chain and key.
pub fn load_files(cert: &Path, key: &Path, source: &'static str) -> Result<Served, CertError> {
    let read_err = |path: &Path, e: &dyn std::fmt::Display| CertError::Read {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| read_err(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| read_err(cert, &e))?;
    if chain.is_empty() {
        return Err(CertError::Empty {
            path: cert.display().to_string(),
        });
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| read_err(key, &e))?;
    served(chain, &key_der, source)
}

/// TLS 1.2 and 1.3 only, the ring provider's suites (all AEAD), ALPN for
/// HTTP/2 and HTTP/1.1, certificates chosen by SNI.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
