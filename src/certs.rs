//! Certificates for the webhook: a private CA and a serving certificate signed by it.
//!
//! This is the library behind `pod-hardener certs`. It generates, with ECDSA P-256 keys:
//!
//! - a self-signed CA (`CN=pod-hardener-ca`, path length 0, default validity 10 years), whose
//!   private key is used once and then dropped: it is never written anywhere, so nobody can mint
//!   further certificates from it. Rotating means generating a new pair (see `certs/README.md`);
//! - a serving certificate (ServerAuth EKU, default validity 365 days) for
//!   `<service>.<namespace>.svc` (also its subject CN), `<service>.<namespace>.svc.cluster.local`,
//!   `<service>`, `<service>.<namespace>`, then the extra DNS names and the extra IP addresses
//!   (as real `iPAddress` SANs).
//!
//! # API
//!
//! ```no_run
//! use pod_hardener::certs::{self, CertRequest};
//! use std::path::Path;
//!
//! let mut req = CertRequest::new("pod-hardener", "pod-hardener"); // defaults: 365 / 3650 days
//! req.extra_dns.push("webhook.example.com".into());
//! req.extra_ips.push("127.0.0.1".parse()?);
//! req.validity_days = 90;
//! let generated = certs::generate(&req)?;          // Result<GeneratedCerts, CertsError>
//! let written = certs::write_files(&generated, Path::new("certs/out"))?;
//! // written.ca_cert, written.cert, written.key: the paths of ca.crt, tls.crt, tls.key (0600)
//! println!("{}", generated.ca_bundle_base64());    // the webhook configurations' caBundle
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - [`CertRequest`]: `service`, `namespace`, `extra_dns`, `extra_ips`, `validity_days` (leaf),
//!   `ca_validity_days`; [`CertRequest::new`] fills the defaults, [`CertRequest::dns_names`] lists
//!   the DNS SANs the leaf will carry.
//! - [`generate`] uses the current time; [`generate_at`] takes the time explicitly. The
//!   certificates are valid from 5 minutes before that time (clock skew) until `validity_days`
//!   after it.
//! - [`GeneratedCerts`]: `ca_pem`, `cert_pem`, `key_pem` (PKCS#8), and
//!   [`GeneratedCerts::ca_bundle_base64`].
//! - [`write_files`] creates the directory if needed and writes [`CA_CERT_FILE`],
//!   [`CERT_FILE`] and [`KEY_FILE`] (mode 0600), each through a temporary file and a rename, so a
//!   server polling the files never reads half of one.
//!
//! Everything here is synchronous and does no logging; only [`write_files`] touches the disk.

use base64::Engine as _;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};

/// Default validity of the serving certificate, in days.
pub const DEFAULT_VALIDITY_DAYS: u32 = 365;
/// Default validity of the CA certificate, in days (10 years).
pub const DEFAULT_CA_VALIDITY_DAYS: u32 = 3650;
/// The longest validity accepted for either certificate, in days (100 years).
pub const MAX_VALIDITY_DAYS: u32 = 36_500;
/// File name of the CA certificate written by [`write_files`].
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the serving certificate written by [`write_files`].
pub const CERT_FILE: &str = "tls.crt";
/// File name of the serving key written by [`write_files`].
pub const KEY_FILE: &str = "tls.key";
/// Common name of the generated CA.
pub const CA_COMMON_NAME: &str = "pod-hardener-ca";

/// How far before "now" the certificates become valid, to tolerate clock skew between nodes.
const BACKDATE: Duration = Duration::from_secs(5 * 60);
const SECONDS_PER_DAY: u64 = 24 * 60 * 60;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRequest {
    /// The webhook Service's name, e.g. `pod-hardener`.
    pub service: String,
    /// The webhook Service's namespace, e.g. `pod-hardener`.
    pub namespace: String,
    /// DNS names added after the four service names.
    pub extra_dns: Vec<String>,
    /// IP addresses, added as `iPAddress` SANs.
    pub extra_ips: Vec<IpAddr>,
    /// Validity of the serving certificate, in days.
    pub validity_days: u32,
    /// Validity of the CA certificate, in days; at least `validity_days`.
    pub ca_validity_days: u32,
}

impl CertRequest {
    /// A request for `service` in `namespace` with no extra names and the default validities.
    pub fn new(service: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            service: service.into(),
            namespace: namespace.into(),
            extra_dns: Vec::new(),
            extra_ips: Vec::new(),
            validity_days: DEFAULT_VALIDITY_DAYS,
            ca_validity_days: DEFAULT_CA_VALIDITY_DAYS,
        }
    }

    /// The DNS names the serving certificate carries, in order and without duplicates:
    /// `<service>.<namespace>.svc`, `<service>.<namespace>.svc.cluster.local`, `<service>`,
    /// `<service>.<namespace>`, then `extra_dns`.
    pub fn dns_names(&self) -> Vec<String> {
        let (svc, ns) = (&self.service, &self.namespace);
        let mut names = vec![
            format!("{svc}.{ns}.svc"),
            format!("{svc}.{ns}.svc.cluster.local"),
            svc.clone(),
            format!("{svc}.{ns}"),
        ];
        for name in &self.extra_dns {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
    }

    fn validate(&self) -> Result<(), CertsError> {
        check_label("service", &self.service)?;
        check_label("namespace", &self.namespace)?;
        for name in &self.extra_dns {
            check_dns_name(name)?;
        }
        for (field, days) in [
            ("validity_days", self.validity_days),
            ("ca_validity_days", self.ca_validity_days),
        ] {
            if days == 0 || days > MAX_VALIDITY_DAYS {
                return Err(invalid(
                    field,
                    format!("{days} days is not between 1 and {MAX_VALIDITY_DAYS}"),
                ));
            }
        }
        if self.ca_validity_days < self.validity_days {
            return Err(invalid(
                "ca_validity_days",
                format!(
                    "the CA ({} days) would expire before the serving certificate ({} days)",
                    self.ca_validity_days, self.validity_days
                ),
            ));
        }
        Ok(())
    }
}

/// A CA and a serving certificate with its key, all PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct GeneratedCerts {
    /// The CA certificate: what clients (the API server) trust.
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// The serving certificate's private key, PKCS#8.
    pub key_pem: String,
}

impl GeneratedCerts {
    /// The `caBundle` of the webhook configurations: base64 of the CA certificate's PEM.
    pub fn ca_bundle_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes())
    }
}

impl std::fmt::Debug for GeneratedCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCerts")
            .field("ca_pem", &self.ca_pem)
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The paths [`write_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFiles {
    /// `<dir>/ca.crt`.
    pub ca_cert: PathBuf,
    /// `<dir>/tls.crt`.
    pub cert: PathBuf,
    /// `<dir>/tls.key`, mode 0600.
    pub key: PathBuf,
}

/// Why certificates could not be generated or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertsError {
    /// A field of the [`CertRequest`] is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidRequest {
        /// The field, as named in [`CertRequest`].
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// rcgen failed to build a key or a certificate.
    #[error("failed to generate the {what}: {source}")]
    Generate {
        /// `CA key`, `CA certificate`, `serving key`, ...
        what: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// A file or directory could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> CertsError {
    CertsError::InvalidRequest {
        field,
        reason: reason.into(),
    }
}

fn generate_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> CertsError {
    move |source| CertsError::Generate { what, source }
}

/// A DNS-1123 label, as Service and Namespace names are.
fn check_label(field: &'static str, value: &str) -> Result<(), CertsError> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!(
                "{value:?} is not a DNS-1123 label (1-63 lowercase letters, digits or '-', \
                 starting and ending with a letter or digit)"
            ),
        ))
    }
}

/// A DNS name: dot-separated labels of letters, digits, '-' (and '_'), optionally with a leading
/// `*.` wildcard label.
fn check_dns_name(name: &str) -> Result<(), CertsError> {
    let rest = name.strip_prefix("*.").unwrap_or(name);
    let ok = !rest.is_empty()
        && name.len() <= 253
        && rest.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(invalid("extra_dns", format!("{name:?} is not a DNS name")))
    }
}

fn days(n: u32) -> Duration {
    Duration::from_secs(u64::from(n) * SECONDS_PER_DAY)
}

fn validity(
    params: &mut CertificateParams,
    now: SystemTime,
    valid_days: u32,
) -> Result<(), CertsError> {
    let not_before = now.checked_sub(BACKDATE).unwrap_or(now);
    let not_after = now
        .checked_add(days(valid_days))
        .ok_or_else(|| invalid("validity_days", "the expiry date is out of range"))?;
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    Ok(())
}

/// Generates a CA and a serving certificate for `req`, valid from now.
pub fn generate(req: &CertRequest) -> Result<GeneratedCerts, CertsError> {
    generate_at(req, SystemTime::now())
}

/// Generates a CA and a serving certificate for `req`, valid from `now` (minus 5 minutes) for
/// `req.ca_validity_days` and `req.validity_days`.
pub fn generate_at(req: &CertRequest, now: SystemTime) -> Result<GeneratedCerts, CertsError> {
    req.validate()?;

    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut ca, now, req.ca_validity_days)?;
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_err("CA key"))?;
    let ca = CertifiedIssuer::self_signed(ca, ca_key).map_err(generate_err("CA certificate"))?;

    let dns_names = req.dns_names();
    let mut leaf = CertificateParams::new(dns_names.clone())
        .map_err(generate_err("serving certificate's DNS names"))?;
    leaf.subject_alt_names
        .extend(req.extra_ips.iter().copied().map(SanType::IpAddress));
    leaf.distinguished_name
        .push(DnType::CommonName, dns_names[0].as_str());
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.use_authority_key_identifier_extension = true;
    validity(&mut leaf, now, req.validity_days)?;
    let leaf_key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_err("serving key"))?;
    let cert = leaf
        .signed_by(&leaf_key, &ca)
        .map_err(generate_err("serving certificate"))?;

    Ok(GeneratedCerts {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: leaf_key.serialize_pem(),
    })
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` (mode 0600) into `dir`, creating it if needed and
/// replacing existing files.
pub fn write_files(certs: &GeneratedCerts, dir: &Path) -> Result<WrittenFiles, CertsError> {
    fs::create_dir_all(dir).map_err(|source| CertsError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let written = WrittenFiles {
        ca_cert: dir.join(CA_CERT_FILE),
        cert: dir.join(CERT_FILE),
        key: dir.join(KEY_FILE),
    };
    // The key first: a reader never sees a new certificate next to an old key for long.
    write_atomically(&written.key, certs.key_pem.as_bytes(), 0o600)?;
    write_atomically(&written.cert, certs.cert_pem.as_bytes(), 0o644)?;
    write_atomically(&written.ca_cert, certs.ca_pem.as_bytes(), 0o644)?;
    Ok(written)
}

/// Writes `contents` to a temporary file beside `path`, created with `mode`, then renames it over
/// `path`.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertsError> {
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CertsError::Io { path, source }
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(&tmp)(e)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    // The umask may have narrowed `mode`; a key must never be wider than asked either way.
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(io_err(&tmp))?;
    file.write_all(contents).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject as _};
    use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
    use std::sync::{Arc, Once};
    use x509_parser::prelude::*;

    static PROVIDER: Once = Once::new();

    fn install_provider() {
        PROVIDER.call_once(|| {
            // Another test in this binary may have installed it first; either way ring is in use.
            let _ = rustls::crypto::ring::default_provider().install_default();
        });
    }

    fn request() -> CertRequest {
        let mut req = CertRequest::new("pod-hardener", "pod-hardener");
        req.extra_dns = vec!["webhook.example.com".into(), "pod-hardener".into()];
        req.extra_ips = vec!["127.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()];
        req
    }

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec()
    }

    /// Completes an in-memory TLS handshake: a client trusting `ca_pem` connects to `name`, served
    /// with `certs`.
    fn handshake(
        ca_pem: &str,
        certs: &GeneratedCerts,
        name: ServerName<'static>,
    ) -> Result<(), rustls::Error> {
        install_provider();
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
            .unwrap();
        let client_cfg = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let chain = vec![CertificateDer::from_pem_slice(certs.cert_pem.as_bytes()).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(certs.key_pem.as_bytes()).unwrap();
        let server_cfg = ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let mut client = ClientConnection::new(Arc::new(client_cfg), name).unwrap();
        let mut server = ServerConnection::new(Arc::new(server_cfg)).unwrap();
        for _ in 0..10 {
            let mut buf = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut buf).unwrap();
            }
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                server.read_tls(&mut rd).unwrap();
                server.process_new_packets()?;
            }
            let mut buf = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut buf).unwrap();
            }
            let mut rd = buf.as_slice();
            while !rd.is_empty() {
                client.read_tls(&mut rd).unwrap();
                client.process_new_packets()?;
            }
            if !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not complete");
    }

    fn dns(name: &str) -> ServerName<'static> {
        ServerName::try_from(name.to_owned()).unwrap()
    }

    #[test]
    fn dns_names_are_ordered_and_deduplicated() {
        assert_eq!(
            request().dns_names(),
            [
                "pod-hardener.pod-hardener.svc",
                "pod-hardener.pod-hardener.svc.cluster.local",
                "pod-hardener",
                "pod-hardener.pod-hardener",
                "webhook.example.com",
            ]
        );
    }

    #[test]
    fn leaf_carries_the_sans_eku_and_validity() {
        let now = SystemTime::now();
        let certs = generate_at(&request(), now).unwrap();
        let ca_der = der(&certs.ca_pem);
        let leaf_der = der(&certs.cert_pem);
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();

        // Chain: issued by the CA and signed by its key.
        assert_eq!(leaf.issuer(), ca.subject());
        leaf.verify_signature(Some(ca.public_key())).unwrap();
        ca.verify_signature(None).unwrap();

        // SANs: the DNS names in order, then the IPs as iPAddress entries.
        let san = leaf.subject_alternative_name().unwrap().unwrap();
        let mut dns_names = Vec::new();
        let mut ips = Vec::new();
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => dns_names.push((*n).to_owned()),
                GeneralName::IPAddress(bytes) => ips.push(bytes.to_vec()),
                other => panic!("unexpected SAN {other:?}"),
            }
        }
        assert_eq!(dns_names, request().dns_names());
        let mut v6 = vec![0xfd, 0];
        v6.extend([0; 13]);
        v6.push(1);
        assert_eq!(ips, [vec![127, 0, 0, 1], v6]);
        let cn: Vec<_> = leaf.subject().iter_common_name().collect();
        assert_eq!(cn[0].as_str().unwrap(), "pod-hardener.pod-hardener.svc");

        // Usage: a server certificate, not a CA; the CA may only sign leaves.
        let eku = leaf.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth && !eku.any);
        assert!(!leaf.is_ca());
        assert!(leaf.key_usage().unwrap().unwrap().value.digital_signature());
        let bc = ca.basic_constraints().unwrap().unwrap().value;
        assert!(bc.ca);
        assert_eq!(bc.path_len_constraint, Some(0));
        assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());

        // ECDSA P-256 keys.
        for cert in [&ca, &leaf] {
            let spki = cert.public_key();
            assert_eq!(spki.algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1");
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .unwrap()
                .as_oid()
                .unwrap();
            assert_eq!(curve.to_id_string(), "1.2.840.10045.3.1.7");
        }

        // Validity: backdated 5 minutes, 365 days for the leaf and 3650 for the CA.
        let now_s = i64::try_from(
            now.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
        )
        .unwrap();
        let day = 86_400;
        for (cert, days) in [(&leaf, 365), (&ca, 3650)] {
            let v = cert.validity();
            assert!((v.not_before.timestamp() - (now_s - 300)).abs() <= 1);
            assert!((v.not_after.timestamp() - (now_s + days * day)).abs() <= 1);
        }
    }

    #[test]
    fn tls_handshake_succeeds_for_each_name_and_ip() {
        let req = request();
        let certs = generate(&req).unwrap();
        for name in req.dns_names() {
            handshake(&certs.ca_pem, &certs, dns(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for ip in &req.extra_ips {
            handshake(&certs.ca_pem, &certs, ServerName::IpAddress((*ip).into()))
                .unwrap_or_else(|e| panic!("{ip}: {e}"));
        }
    }

    #[test]
    fn tls_handshake_fails_for_other_names_and_other_cas() {
        let certs = generate(&request()).unwrap();
        let err = handshake(&certs.ca_pem, &certs, dns("other.pod-hardener.svc")).unwrap_err();
        assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
        let err = handshake(
            &certs.ca_pem,
            &certs,
            ServerName::IpAddress("10.0.0.1".parse::<IpAddr>().unwrap().into()),
        )
        .unwrap_err();
        assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
        let other = generate(&request()).unwrap();
        assert_ne!(other.ca_pem, certs.ca_pem);
        let err =
            handshake(&other.ca_pem, &certs, dns("pod-hardener.pod-hardener.svc")).unwrap_err();
        assert!(matches!(err, rustls::Error::InvalidCertificate(_)), "{err}");
    }

    #[test]
    fn validity_is_configurable() {
        let mut req = CertRequest::new("svc", "ns");
        req.validity_days = 7;
        req.ca_validity_days = 30;
        let certs = generate(&req).unwrap();
        let leaf_der = der(&certs.cert_pem);
        let ca_der = der(&certs.ca_pem);
        let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        let span = |c: &X509Certificate<'_>| {
            c.validity().not_after.timestamp() - c.validity().not_before.timestamp()
        };
        assert_eq!(span(&leaf), 7 * 86_400 + 300);
        assert_eq!(span(&ca), 30 * 86_400 + 300);
    }

    #[test]
    fn ca_bundle_is_base64_of_the_ca_pem() {
        let certs = generate(&CertRequest::new("a", "b")).unwrap();
        let bundle = certs.ca_bundle_base64();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&bundle)
            .unwrap();
        assert_eq!(decoded, certs.ca_pem.as_bytes());
        assert!(bundle.starts_with("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t")); // "-----BEGIN CERTIFICATE-----"
        assert!(!format!("{certs:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn rejects_invalid_requests() {
        type Case = (&'static str, fn(&mut CertRequest));
        let cases: [Case; 9] = [
            ("service", |r| r.service = String::new()),
            ("service", |r| r.service = "Pod_Hardener".into()),
            ("namespace", |r| r.namespace = "-ns".into()),
            ("namespace", |r| r.namespace = "a".repeat(64)),
            ("extra_dns", |r| r.extra_dns = vec!["bad name".into()]),
            ("extra_dns", |r| r.extra_dns = vec!["a..b".into()]),
            ("validity_days", |r| r.validity_days = 0),
            ("ca_validity_days", |r| {
                r.ca_validity_days = MAX_VALIDITY_DAYS + 1
            }),
            ("ca_validity_days", |r| {
                r.ca_validity_days = r.validity_days - 1
            }),
        ];
        for (expected, mutate) in cases {
            let mut req = CertRequest::new("pod-hardener", "pod-hardener");
            mutate(&mut req);
            match generate(&req) {
                Err(CertsError::InvalidRequest { field, .. }) => assert_eq!(field, expected),
                other => panic!("{req:?}: expected an invalid {expected}, got {other:?}"),
            }
        }
        let mut req = CertRequest::new("pod-hardener", "pod-hardener");
        req.extra_dns = vec!["*.example.com".into(), "under_score.local".into()];
        generate(&req).unwrap();
    }

    #[test]
    fn writes_the_three_files_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested/out");
        let certs = generate(&CertRequest::new("pod-hardener", "pod-hardener")).unwrap();

        // A stale, world-readable key is replaced by a 0600 one.
        fs::create_dir_all(&out).unwrap();
        fs::write(out.join(KEY_FILE), "old").unwrap();
        fs::set_permissions(out.join(KEY_FILE), fs::Permissions::from_mode(0o644)).unwrap();

        let written = write_files(&certs, &out).unwrap();
        assert_eq!(written.ca_cert, out.join("ca.crt"));
        assert_eq!(written.cert, out.join("tls.crt"));
        assert_eq!(written.key, out.join("tls.key"));
        assert_eq!(fs::read_to_string(&written.ca_cert).unwrap(), certs.ca_pem);
        assert_eq!(fs::read_to_string(&written.cert).unwrap(), certs.cert_pem);
        assert_eq!(fs::read_to_string(&written.key).unwrap(), certs.key_pem);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&written.key), 0o600);
        assert_eq!(mode(&written.cert), 0o644);
        let mut names: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["ca.crt", "tls.crt", "tls.key"],
            "no temporary files left"
        );

        // The key parses and matches the certificate (rustls checks the pair).
        install_provider();
        let chain = vec![CertificateDer::from_pem_file(&written.cert).unwrap()];
        let key = PrivateKeyDer::from_pem_file(&written.key).unwrap();
        ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    }

    #[test]
    fn write_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "").unwrap();
        let certs = generate(&CertRequest::new("a", "b")).unwrap();
        let err = write_files(&certs, &blocker.join("out")).unwrap_err();
        assert!(matches!(err, CertsError::Io { .. }));
        assert!(err.to_string().contains("file/out"), "{err}");
    }
}
