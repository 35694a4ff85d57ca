//! TLS material for the Redis backends: the PEM files a URL names, read once
//! at connect time into what the `redis` crate takes.

use redis::{ClientTlsConfig, TlsCertificates};

use crate::error::{Error, Result};
use crate::options::TlsFiles;

/// The certificates `files` name, or `None` when it names none (the system's
/// roots, no client certificate).
pub(crate) fn certificates(files: &TlsFiles) -> Result<Option<TlsCertificates>> {
    if files.is_empty() {
        return Ok(None);
    }
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).map_err(|e| Error::invalid(format!("cannot read the TLS {what} {}: {e}", path.display())))
    };
    let client_tls = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            Some(ClientTlsConfig { client_cert: read(cert, "client certificate")?, client_key: read(key, "client key")? })
        }
        (None, None) => None,
        _ => return Err(Error::invalid("tls_cert and tls_key go together: the client certificate and its key")),
    };
    let root_cert = files.ca.as_deref().map(|ca| read(ca, "CA certificate")).transpose()?;
    Ok(Some(TlsCertificates { client_tls, root_cert }))
}

/// A client for one server at `url` trusting the CA of `files` and presenting
/// its client certificate.
pub(crate) fn client(url: &str, files: &TlsFiles) -> Result<redis::Client> {
    let certificates = certificates(files)?.expect("called with TLS files");
    redis::Client::build_with_tls(url, certificates).map_err(|e| Error::invalid(format!("invalid Redis TLS settings: {e}")))
}
