//! Certificates from an ACME server (RFC 8555) over HTTP-01: the token is
//! answered by the edge's plain-HTTP listener. The account key and every
//! certificate are kept in the state directory (mode 0600) and reused across
//! restarts. Certificates are renewed at two thirds of their lifetime; a
//! failed order is retried with exponential backoff while the current
//! certificate keeps being served.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, OrderStatus, RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::pki::write_private;
use crate::tls::{CertError, Served, load_files, served};

/// An ACME client bound to one directory and account.
pub struct Acme {
    directory: String,
    email: Option<String>,
    trust: Option<PathBuf>,
    dir: PathBuf,
    challenges: Arc<Challenges>,
    account: OnceCell<Account>,
}

impl std::fmt::Debug for Acme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acme")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

fn err(e: impl std::fmt::Display) -> CertError {
    CertError::Issue(e.to_string())
}

/// File names of a site's certificate in the state directory.
fn cert_paths(dir: &Path, hosts: &[String]) -> (PathBuf, PathBuf) {
    let name = hosts
        .first()
        .map_or("site", String::as_str)
        .replace('*', "_");
    (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key.pem")),
    )
}

impl Acme {
    pub fn new(
        directory: String,
        email: Option<String>,
        trust: Option<PathBuf>,
        state_dir: &Path,
        challenges: Arc<Challenges>,
    ) -> Self {
        Self {
            directory,
            email,
            trust,
            dir: state_dir.join("acme"),
            challenges,
            account: OnceCell::new(),
        }
    }

    fn builder(&self) -> Result<instant_acme::AccountBuilder, CertError> {
        match &self.trust {
            Some(root) => Account::builder_with_root(root).map_err(err),
            None => Account::builder().map_err(err),
        }
    }

    async fn account(&self) -> Result<&Account, CertError> {
        self.account
            .get_or_try_init(|| async {
                std::fs::create_dir_all(&self.dir).map_err(err)?;
                let path = self.dir.join("account.json");
                if let Ok(text) = std::fs::read_to_string(&path) {
                    let creds: AccountCredentials = serde_json::from_str(&text)
                        .map_err(|e| err(format!("{} is damaged: {e}", path.display())))?;
                    return self.builder()?.from_credentials(creds).await.map_err(err);
                }
                let contact = self.email.as_ref().map(|e| format!("mailto:{e}"));
                let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
                let (account, creds) = self
                    .builder()?
                    .create(
                        &NewAccount {
                            contact: &contacts,
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        self.directory.clone(),
                        None,
                    )
                    .await
                    .map_err(err)?;
                let json = serde_json::to_vec(&creds).map_err(err)?;
                write_private(&path, &json, true).map_err(err)?;
                tracing::info!(directory = %self.directory, "created the ACME account");
                Ok(account)
            })
            .await
    }

    /// The stored certificate for `hosts`, if it exists.
    pub fn stored(&self, hosts: &[String]) -> Option<Served> {
        let (cert, key) = cert_paths(&self.dir, hosts);
        load_files(&cert, &key, "acme").ok()
    }

    /// The stored certificate chain and key for `hosts` as PEM text, if
    /// they exist and the certificate loads.
    pub fn stored_pem(&self, hosts: &[String]) -> Option<(String, String)> {
        let (cert, key) = cert_paths(&self.dir, hosts);
        load_files(&cert, &key, "acme").ok()?;
        Some((
            std::fs::read_to_string(cert).ok()?,
            std::fs::read_to_string(key).ok()?,
        ))
    }

    /// Orders a certificate for `hosts` and stores it.
    pub async fn issue(&self, hosts: &[String]) -> Result<Served, CertError> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> =
            hosts.iter().map(|h| Identifier::Dns(h.clone())).collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(err)?;
        let mut tokens = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(result) = authorizations.next().await {
            let mut authz = result.map_err(err)?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => return Err(err(format!("authorization is {other:?}"))),
            }
            let mut challenge = authz
                .challenge(ChallengeType::Http01)
                .ok_or_else(|| err("the ACME server offers no HTTP-01 challenge"))?;
            let token = challenge.token.clone();
            self.challenges.insert(
                token.clone(),
                challenge.key_authorization().as_str().to_owned(),
            );
            tokens.push(token);
            challenge.set_ready().await.map_err(err)?;
        }
        let retry = RetryPolicy::new()
            .initial_delay(ORDER_POLL_FIRST)
            .timeout(ORDER_TIMEOUT);
        let status = order.poll_ready(&retry).await;
        for token in &tokens {
            self.challenges.remove(token);
        }
        let status = status.map_err(err)?;
        if status != OrderStatus::Ready {
            return Err(err(format!("the order is {status:?}, not ready")));
        }
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(hosts.to_vec()).map_err(err)?;
        params.distinguished_name = DistinguishedName::new();
        let csr = params.serialize_request(&key).map_err(err)?;
        order.finalize_csr(csr.der()).await.map_err(err)?;
        let chain_pem = order.poll_certificate(&retry).await.map_err(err)?;

        let (cert_path, key_path) = cert_paths(&self.dir, hosts);
        let key_pem = key.serialize_pem();
        let chain = rustls_pki_types::CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(err)?;
        let fresh = served(chain, &key_der, "acme")?;
        write_private(&key_path, key_pem.as_bytes(), true).map_err(err)?;
        write_private(&cert_path, chain_pem.as_bytes(), true).map_err(err)?;
        tracing::info!(hosts = ?hosts, not_after = %fresh.not_after, "issued an ACME certificate");
        Ok(fresh)
    }
}

/// When a certificate valid from `not_before` to `not_after` is due: at two
/// thirds of its lifetime.
pub fn renewal_due(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    now: OffsetDateTime,
) -> bool {
    let lifetime = not_after - not_before;
    now >= not_before + lifetime * 2 / 3
}

/// The first pause while an order is checked, which then grows.
const ORDER_POLL_FIRST: Duration = Duration::from_millis(250);
/// How long the CA may take to validate an order.
const ORDER_TIMEOUT: Duration = Duration::from_secs(90);
/// The first retry's delay after a failed issuance, and the longest.
const RETRY_FIRST_SECS: u64 = 5;
const RETRY_MAX_SECS: u64 = 3600;

/// Delay before retry number `attempt` (0-based): 5 s doubling to 1 h.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(
        RETRY_FIRST_SECS
            .saturating_mul(1u64 << attempt.min(10))
            .min(RETRY_MAX_SECS),
    )
}

/// Tokens and key authorizations for ACME HTTP-01 challenges.
#[derive(Debug, Default)]
pub struct Challenges {
    map: std::sync::RwLock<std::collections::HashMap<String, String>>,
}

impl Challenges {
    pub fn insert(&self, token: String, key_authorization: String) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token, key_authorization);
    }

    pub fn remove(&self, token: &str) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(token);
    }

    /// Every challenge, token and key authorization, sorted by token.
    pub fn all(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort();
        all
    }

    /// Replaces every challenge with `all`.
    pub fn replace(&self, all: Vec<(String, String)>) {
        *self.map.write().unwrap_or_else(|e| e.into_inner()) = all.into_iter().collect();
    }

    pub(crate) fn get(&self, token: &str) -> Option<String> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(token)
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_at_two_thirds() {
        let start = OffsetDateTime::UNIX_EPOCH;
        let end = start + time::Duration::days(90);
        assert!(!renewal_due(start, end, start + time::Duration::days(59)));
        assert!(renewal_due(start, end, start + time::Duration::days(60)));
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff(0), Duration::from_secs(5));
        assert_eq!(backoff(1), Duration::from_secs(10));
        assert_eq!(backoff(20), Duration::from_secs(3600));
    }
}
