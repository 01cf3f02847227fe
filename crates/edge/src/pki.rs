//! Rampart's internal certificate authority.
//!
//! On first start an ECDSA P-256 CA is created whose certificate is written
//! to `ca.pem` for clients to trust and whose key stays in `ca-key.pem`
//! (mode 0600). The CA issues short-lived server certificates: for sites with
//! `tls = "internal"` on the edge, and for the platform's control-plane API.

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

/// How long the CA certificate is valid.
const CA_VALIDITY: Duration = Duration::days(3650);
/// How long an issued server certificate is valid; it is renewed well before.
pub const LEAF_VALIDITY: Duration = Duration::days(90);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable CA {what}: {reason}")]
    Invalid {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("{path} exists without {other}; restore both files or remove both to create a new CA")]
    HalfPresent { path: PathBuf, other: PathBuf },
    #[error("cannot issue a certificate: {0}")]
    Issue(#[from] rcgen::Error),
}

/// A certificate and key ready for a TLS server.
#[derive(Debug)]
pub struct Issued {
    /// The leaf followed by the CA certificate.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub not_after: OffsetDateTime,
}

/// The internal CA, loaded and able to issue.
pub struct InternalCa {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
    cert_der: CertificateDer<'static>,
}

impl std::fmt::Debug for InternalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InternalCa").finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

impl InternalCa {
    /// Loads the CA from `cert_path` and `key_path`, creating both when
    /// neither exists.
    pub fn load_or_create(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        match (cert_path.exists(), key_path.exists()) {
            (true, true) => Self::load(cert_path, key_path),
            (false, false) => Self::create(cert_path, key_path),
            (true, false) => Err(PkiError::HalfPresent {
                path: cert_path.to_owned(),
                other: key_path.to_owned(),
            }),
            (false, true) => Err(PkiError::HalfPresent {
                path: key_path.to_owned(),
                other: cert_path.to_owned(),
            }),
        }
    }

    fn create(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "Rampart");
        // A random suffix tells the CAs of different installations apart.
        let suffix: u32 = rand::random();
        dn.push(
            DnType::CommonName,
            format!("Rampart internal CA {suffix:08x}"),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + CA_VALIDITY;
        let cert = params.clone().self_signed(&key)?;

        let key_pem = key.serialize_pem();
        write_private(key_path, key_pem.as_bytes(), false).map_err(|source| PkiError::Io {
            action: "create",
            path: key_path.to_owned(),
            source,
        })?;
        fs::write(cert_path, cert.pem()).map_err(|source| PkiError::Io {
            action: "create",
            path: cert_path.to_owned(),
            source,
        })?;
        Ok(Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            params,
            key,
        })
    }

    fn load(cert_path: &Path, key_path: &Path) -> Result<Self, PkiError> {
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let key = KeyPair::from_pem(&key_pem).map_err(|e| PkiError::Invalid {
            path: key_path.to_owned(),
            what: "key",
            reason: e.to_string(),
        })?;
        let params =
            CertificateParams::from_ca_cert_pem(&cert_pem).map_err(|e| PkiError::Invalid {
                path: cert_path.to_owned(),
                what: "certificate",
                reason: e.to_string(),
            })?;
        let cert_der: CertificateDer<'static> = PemObject::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e: rustls_pki_types::pem::Error| PkiError::Invalid {
                path: cert_path.to_owned(),
                what: "certificate",
                reason: e.to_string(),
            })?;
        // Signing with a key that does not belong to the certificate would
        // issue certificates no client can verify; catch it here.
        let rebuilt = params.clone().self_signed(&key)?;
        let stored_spki = spki_of(&cert_der);
        if stored_spki.is_none() || stored_spki != spki_of(rebuilt.der()) {
            return Err(PkiError::Invalid {
                path: key_path.to_owned(),
                what: "key",
                reason: format!("it does not belong to {}", cert_path.display()),
            });
        }
        Ok(Self {
            params,
            key,
            cert_pem,
            cert_der,
        })
    }

    /// The CA certificate in PEM, as written to `ca.pem`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a server certificate for DNS names and IP addresses.
    pub fn issue(&self, names: &[String]) -> Result<Issued, PkiError> {
        let (cert, key, not_after) = self.leaf(names)?;
        Ok(Issued {
            chain: vec![cert.der().clone(), self.cert_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            not_after,
        })
    }

    /// Like [`InternalCa::issue`], as PEM text: the chain (leaf, then this
    /// CA) and the key, for a server elsewhere (an ingress node's edge).
    pub fn issue_pem(
        &self,
        names: &[String],
    ) -> Result<(String, String, OffsetDateTime), PkiError> {
        let (cert, key, not_after) = self.leaf(names)?;
        Ok((
            format!("{}{}", cert.pem(), self.cert_pem),
            key.serialize_pem(),
            not_after,
        ))
    }

    fn leaf(
        &self,
        names: &[String],
    ) -> Result<(rcgen::Certificate, KeyPair, OffsetDateTime), PkiError> {
        let issuer = self.params.clone().self_signed(&self.key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_else(|| "localhost".into()),
        );
        params.distinguished_name = dn;
        for name in names {
            let san = match name.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(name.clone().try_into()?),
            };
            params.subject_alt_names.push(san);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + LEAF_VALIDITY;
        let not_after = params.not_after;
        let cert = params.signed_by(&key, &issuer, &self.key)?;
        Ok((cert, key, not_after))
    }
}

/// Writes a file readable only by its owner; with `replace` false the file
/// must not exist yet.
pub fn write_private(path: &Path, contents: &[u8], replace: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut options = fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if replace {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path)?;
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The subjectPublicKeyInfo of a DER certificate, for comparing keys.
fn spki_of(der: &[u8]) -> Option<Vec<u8>> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der).ok()?;
    Some(cert.tbs_certificate.subject_pki.raw.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("ca.pem");
        let key = dir.path().join("ca-key.pem");
        let ca = InternalCa::load_or_create(&cert, &key).unwrap();
        let pem = ca.cert_pem().to_owned();
        let again = InternalCa::load_or_create(&cert, &key).unwrap();
        assert_eq!(again.cert_pem(), pem);
        let issued = again
            .issue(&["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        assert_eq!(issued.chain.len(), 2);
    }

    #[test]
    fn mismatched_or_damaged_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("ca.pem");
        let key = dir.path().join("ca-key.pem");
        InternalCa::load_or_create(&cert, &key).unwrap();

        let other = tempfile::tempdir().unwrap();
        let other_key = other.path().join("ca-key.pem");
        InternalCa::load_or_create(&other.path().join("ca.pem"), &other_key).unwrap();
        let err = InternalCa::load_or_create(&cert, &other_key).unwrap_err();
        assert!(err.to_string().contains("does not belong"), "{err}");

        fs::write(&key, "garbage").unwrap();
        assert!(InternalCa::load_or_create(&cert, &key).is_err());
        fs::remove_file(&key).unwrap();
        assert!(matches!(
            InternalCa::load_or_create(&cert, &key),
            Err(PkiError::HalfPresent { .. })
        ));
        assert!(!key.exists(), "a half-present CA is not silently replaced");
    }
}
