//! TLS client settings: rustls with ring (see `provider` for what is not ring).
//!
//! Trust: the system CA bundle where one exists (Debian, Alpine, OpenWrt and Red Hat
//! paths, or `$SSL_CERT_FILE`), else Mozilla's roots compiled in (feature `builtin-roots`);
//! plus `ca_file` for a private CA. `client_cert` + `client_key` give mTLS.

use super::client::SendError;
use super::endpoint::TlsOptions;
use super::provider::provider;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Where distributions keep their CA bundle (OpenWrt's ca-bundle package uses the first).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
];

/// Why TLS settings could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsSetupError {
    /// A PEM file could not be read or holds nothing usable.
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// rustls refused the settings (e.g. a key that does not match the certificate).
    Rustls(rustls::Error),
    /// There is no trust anchor at all (no system bundle, no built-in roots, no `ca_file`).
    NoRoots,
}

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsSetupError::Pem { path, reason } => write!(f, "{}: {reason}", path.display()),
            TlsSetupError::Rustls(e) => write!(f, "TLS settings rejected: {e}"),
            TlsSetupError::NoRoots => f.write_str(
                "no CA certificates: no system bundle, no built-in roots and no `ca_file`",
            ),
        }
    }
}

impl std::error::Error for TlsSetupError {}

/// The system bundle (read once per process), or the built-in roots.
fn base_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            let candidates = env
                .iter()
                .map(PathBuf::as_path)
                .chain(SYSTEM_BUNDLES.iter().map(Path::new));
            for path in candidates {
                if let Ok(iter) = CertificateDer::pem_file_iter(path) {
                    let certs: Vec<_> = iter.filter_map(Result::ok).collect();
                    let (added, _) = store.add_parsable_certificates(certs);
                    if added > 0 {
                        break;
                    }
                }
            }
            #[cfg(feature = "builtin-roots")]
            if store.is_empty() {
                store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(store)
        })
        .clone()
}

fn pem_err(path: &Path, reason: impl fmt::Display) -> TlsSetupError {
    TlsSetupError::Pem {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Builds the rustls client settings for one webhook.
///
/// # Errors
/// Unreadable or empty PEM files, a key that does not fit, or no trust anchors at all.
pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Rustls)?;
    let builder = if opts.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        // Webhooks without a `ca_file` share the one parsed store; only a private CA
        // needs a copy of it to add to.
        let roots = match &opts.ca_file {
            None => base_roots(),
            Some(path) => {
                let mut roots = (*base_roots()).clone();
                let certs: Vec<_> = CertificateDer::pem_file_iter(path)
                    .map_err(|e| pem_err(path, e))?
                    .collect::<Result<_, _>>()
                    .map_err(|e| pem_err(path, e))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(pem_err(path, "no usable CA certificate in the file"));
                }
                Arc::new(roots)
            }
        };
        if roots.is_empty() {
            return Err(TlsSetupError::NoRoots);
        }
        builder.with_root_certificates(roots)
    };
    let config = match (&opts.client_cert, &opts.client_key) {
        (Some(cert), Some(key)) => {
            let chain: Vec<_> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| pem_err(cert, e))?
                .collect::<Result<_, _>>()
                .map_err(|e| pem_err(cert, e))?;
            if chain.is_empty() {
                return Err(pem_err(cert, "no certificate in the file"));
            }
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| pem_err(key, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(TlsSetupError::Rustls)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `insecure_skip_verify`: accepts any certificate, still checks handshake signatures.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// rustls's error inside the `io::Error` a failed handshake arrives as: the one place
/// that looks inside.
fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

/// Writes a failed handshake's error: rustls's own text, except for a certificate that
/// failed in webpki's chain check (a CA used as the server's certificate, a name
/// constraint, an unsupported algorithm), which rustls renders as the `Debug` of its
/// wrapper (`Other(OtherError(CaUsedAsEndEntity))`). Here it is webpki's own error, which
/// also reads the same in the router builds, whose `Debug` output keeps variant names but
/// not fields (cross/levers: lean-fmt).
pub fn write_handshake_error(f: &mut fmt::Formatter<'_>, e: &std::io::Error) -> fmt::Result {
    match rustls_error(e) {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(o))) => {
            write!(f, "invalid peer certificate: {o}")
        }
        _ => write!(f, "{e}"),
    }
}

/// The error of a failed handshake: [`SendError::CertificateTime`] when the certificate
/// failed on time (not yet valid, expired), [`SendError::Tls`] otherwise.
pub fn handshake_error(e: std::io::Error) -> SendError {
    use rustls::CertificateError as C;
    let on_time = matches!(
        rustls_error(&e),
        Some(rustls::Error::InvalidCertificate(
            C::Expired | C::NotValidYet | C::ExpiredContext { .. } | C::NotValidYetContext { .. }
        ))
    );
    if on_time {
        SendError::CertificateTime(e)
    } else {
        SendError::Tls(e)
    }
}
