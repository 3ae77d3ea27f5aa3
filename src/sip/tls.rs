//! SIP over TLS (RFC 3261 §26) at the socket edge: rustls configurations for the TLS
//! listener (`sip.tls_listen`) and for outgoing connections to registrars and call
//! targets.
//!
//! Certificates: `[sip.tls] cert_file`/`key_file` (PEM), or a self-signed one generated
//! at start-up (tests, first trials) with a log line giving its SHA-256 fingerprint.
//! Peers are verified against the Mozilla roots (`webpki-roots`) or, when set,
//! `[sip.tls] ca_file` only. `verify = false` turns verification off and is logged
//! loudly at start-up and on every connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::SipTlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("sip.tls.{key} {path}: {reason}. Give a readable PEM file (or remove cert_file and key_file to use a self-signed certificate for tests).")]
    File {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("sip.tls.ca_file {path} holds no usable certificate: {reason}. Give the PEM of the CA that signed your registrar's certificate.")]
    Ca { path: PathBuf, reason: String },
    #[error("sip.tls: {0}. Check that cert_file and key_file belong together.")]
    Config(String),
}

/// rustls set-up for one agent: the listener's acceptor and the connector for peers.
#[derive(Clone)]
pub struct TlsContext {
    pub acceptor: TlsAcceptor,
    pub connector: TlsConnector,
    pub verify: bool,
    /// Host names to verify for resolved addresses (registrars configured by name).
    pub names: HashMap<SocketAddr, String>,
}

impl std::fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsContext")
            .field("verify", &self.verify)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 fingerprint as `AB:CD:…` (what `openssl x509 -fingerprint -sha256` prints).
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    Sha256::digest(cert.as_ref())
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A self-signed certificate for `names` (IP addresses become IP SANs).
pub fn self_signed(
    names: Vec<String>,
) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), TlsError> {
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsError::Config(format!("cannot generate a certificate: {e}")))?;
    let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
    Ok((ck.cert.der().clone(), key))
}

fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::File {
        key,
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

impl TlsContext {
    /// Builds the context from `[sip.tls]`; `listen` names the self-signed certificate.
    pub fn from_config(cfg: &SipTlsConfig, listen: SocketAddr) -> Result<Self, TlsError> {
        let (chain, key) = match (&cfg.cert_file, &cfg.key_file) {
            (Some(c), Some(k)) => {
                let chain = read_certs("cert_file", c)?;
                let key = PrivateKeyDer::from_pem_file(k).map_err(|e| TlsError::File {
                    key: "key_file",
                    path: k.clone(),
                    reason: e.to_string(),
                })?;
                tracing::info!(cert = %c.display(), fingerprint = %fingerprint(&chain[0]), "SIP TLS certificate loaded");
                (chain, key)
            }
            (None, None) => {
                let names = vec![listen.ip().to_string(), "localhost".to_string()];
                let (cert, key) = self_signed(names)?;
                tracing::warn!(
                    fingerprint = %fingerprint(&cert),
                    "SIP TLS: no sip.tls.cert_file/key_file, using a self-signed certificate generated at start-up; \
                     peers that verify certificates will refuse it (set cert_file and key_file for production)"
                );
                (vec![cert], key)
            }
            _ => {
                return Err(TlsError::Config(
                    "cert_file and key_file must be set together".into(),
                ))
            }
        };
        let ca = cfg.ca_file.as_deref().map(load_roots).transpose()?;
        Self::new(chain, key, ca, cfg.verify)
    }

    /// Builds the context from a certificate chain and key; `ca` replaces the Mozilla
    /// roots when given.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        ca: Option<rustls::RootCertStore>,
        verify: bool,
    ) -> Result<Self, TlsError> {
        let cfgerr = |e: rustls::Error| TlsError::Config(e.to_string());
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(cfgerr)?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(cfgerr)?;
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(cfgerr)?;
        let client = if verify {
            let roots = ca.unwrap_or_else(|| {
                let mut r = rustls::RootCertStore::empty();
                r.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                r
            });
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            tracing::warn!("SIP TLS: sip.tls.verify = false: peers' certificates are NOT verified; anyone on the path can impersonate the registrar");
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider())))
                .with_no_client_auth()
        };
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            verify,
            names: HashMap::new(),
        })
    }

    /// The name to verify when connecting to `dest`: the configured host name, else the IP.
    pub fn server_name(&self, dest: SocketAddr) -> ServerName<'static> {
        self.names
            .get(&dest)
            .and_then(|n| ServerName::try_from(n.clone()).ok())
            .unwrap_or_else(|| ServerName::IpAddress(dest.ip().into()))
    }
}

/// Root store from a PEM CA file.
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let certs = read_certs("ca_file", path)?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| TlsError::Ca {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Accepts any server certificate (only with `verify = false`), still checking the
/// handshake signatures so the session keys belong to whoever holds the presented key.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        tracing::warn!(peer = ?server_name, "SIP TLS: accepting the peer's certificate unverified (sip.tls.verify = false)");
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

/// RFC 5923: the sent-by address of a request's top Via when it carries `alias`, i.e.
/// the peer asks us to reach that address over the connection the request came on.
pub fn via_alias(message: &[u8]) -> Option<SocketAddr> {
    let head_end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(message.len());
    let head = std::str::from_utf8(&message[..head_end]).ok()?;
    if head.starts_with("SIP/2.0") {
        return None; // a response
    }
    let via = head.lines().skip(1).find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let name = name.trim();
        (name.eq_ignore_ascii_case("via") || name.eq_ignore_ascii_case("v")).then_some(value)
    })?;
    let top = via.split(',').next()?.trim();
    let mut parts = top.split(';');
    let sent = parts.next()?;
    if !parts.any(|p| p.trim().eq_ignore_ascii_case("alias")) {
        return None;
    }
    let sent_by = sent.split_whitespace().nth(1)?;
    sent_by.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_alias_reads_the_top_via_of_requests_only() {
        let req = b"INVITE sip:bot@127.0.0.1:5091 SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK1;alias, SIP/2.0/TLS 10.0.0.1:5061;branch=z9\r\nCall-ID: x\r\n\r\n";
        assert_eq!(via_alias(req), Some("127.0.0.1:5061".parse().unwrap()));
        let no_alias =
            b"INVITE sip:bot@h SIP/2.0\r\nv: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bK1\r\n\r\n";
        assert_eq!(via_alias(no_alias), None);
        let resp = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;alias\r\n\r\n";
        assert_eq!(via_alias(resp), None);
    }

    #[test]
    fn self_signed_context_builds_and_ca_file_errors_name_the_file() {
        let (cert, key) = self_signed(vec!["127.0.0.1".into()]).unwrap();
        assert_eq!(fingerprint(&cert).len(), 32 * 3 - 1);
        let ctx = TlsContext::new(vec![cert], key, None, true).unwrap();
        let dest: SocketAddr = "127.0.0.1:5061".parse().unwrap();
        assert!(matches!(ctx.server_name(dest), ServerName::IpAddress(_)));
        let err = load_roots(Path::new("/nonexistent/ca.pem")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }

    /// A full handshake on loopback: verified against the CA file, refused when the
    /// client trusts another CA (the error names the reason).
    #[tokio::test]
    async fn handshake_verifies_against_the_ca_and_refuses_an_untrusted_certificate() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (cert, key) = self_signed(vec!["127.0.0.1".into()]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert.clone()).unwrap();
        let server = TlsContext::new(vec![cert], key.clone_key(), None, true).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = server.acceptor.clone();
        tokio::spawn(async move {
            for _ in 0..2 {
                let (s, _) = listener.accept().await.unwrap();
                if let Ok(mut tls) = acceptor.accept(s).await {
                    let mut b = [0u8; 5];
                    tls.read_exact(&mut b).await.unwrap();
                    tls.write_all(&b).await.unwrap();
                }
            }
        });
        let (other, other_key) = self_signed(vec!["127.0.0.1".into()]).unwrap();
        let good = TlsContext::new(
            vec![other.clone()],
            other_key.clone_key(),
            Some(roots),
            true,
        )
        .unwrap();
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls = good
            .connector
            .connect(good.server_name(addr), s)
            .await
            .unwrap();
        tls.write_all(b"hello").await.unwrap();
        let mut b = [0u8; 5];
        tls.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"hello");

        let mut wrong = rustls::RootCertStore::empty();
        wrong.add(other.clone()).unwrap();
        let bad = TlsContext::new(vec![other], other_key, Some(wrong), true).unwrap();
        let s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let Err(err) = bad.connector.connect(bad.server_name(addr), s).await else {
            panic!("untrusted certificate must be refused");
        };
        assert!(
            err.to_string().to_ascii_lowercase().contains("certificate"),
            "{err}"
        );
    }
}
