//! TLS client settings shared by the cloud's MQTT subscriber and the simulator's live bridge: rustls with the
//! ring provider (no system OpenSSL), trusting the CA certificates of a PEM file (a private broker's CA, not
//! the system store), optionally presenting a client certificate (per-gateway credentials by certificate).

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where the TLS material lives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM file of the CA certificate(s) the broker's certificate must chain to.
    pub ca: PathBuf,
    /// PEM files of a client certificate chain and its private key (both or neither).
    pub client: Option<(PathBuf, PathBuf)>,
}

fn read(what: &str, p: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{what} {}: {e}", p.display()))
}

fn certs(what: &str, p: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = read(what, p)?;
    let v: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{what} {}: not a PEM certificate file ({e})", p.display()))?;
    if v.is_empty() {
        return Err(format!("{what} {}: holds no certificate", p.display()));
    }
    Ok(v)
}

/// The rustls client configuration for `files`; errors name the file and what is wrong with it.
pub fn client_config(files: &TlsFiles) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in certs("CA file", &files.ca)? {
        roots.add(c).map_err(|e| format!("CA file {}: {e}", files.ca.display()))?;
    }
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    let cfg = match &files.client {
        None => b.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certs("client certificate", cert)?;
            let pem = read("client key", key)?;
            let k = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| format!("client key {}: not a PEM private key ({e})", key.display()))?;
            b.with_client_auth_cert(chain, k).map_err(|e| format!("client key {}: {e}", key.display()))?
        }
    };
    Ok(Arc::new(cfg))
}
