//! `rediss://` against a private TLS redis-server with a certificate made at test time.

mod support;

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcache::{Cache, ErrorKind, Options, Ttl};
use support::wait_until;

struct TlsServer {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn self_signed_certificate(dir: &Path) {
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed");
    assert!(status.success());
}

fn start_tls_server() -> TlsServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("rcache-tls-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    self_signed_certificate(&dir);
    let child = Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--tls-cert-file", "cert.pem", "--tls-key-file", "key.pem", "--tls-ca-cert-file", "cert.pem"])
        .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let server = TlsServer { child, port, dir };
    assert!(wait_until(Duration::from_secs(10), || TcpStream::connect(("127.0.0.1", port)).is_ok()));
    server
}

#[test]
fn rediss_encrypts_and_verifies_the_server() {
    let server = start_tls_server();
    let url = format!("rediss://127.0.0.1:{}/0", server.port);

    let untrusted = Cache::connect(Some(&url), Options::default()).err().unwrap();
    assert_eq!(untrusted.kind, ErrorKind::Connection);
    assert!(untrusted.message.contains("certificate"), "{untrusted}");

    // `#insecure` skips verification: for tests against self-signed servers only.
    let cache = Cache::connect(Some(&format!("{url}#insecure")), Options::default()).unwrap();
    cache.set(b"k", b"over tls", Ttl::After(Duration::from_secs(60))).unwrap();
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"over tls"[..]));

    // The near cache's own connection speaks TLS too.
    let near = Cache::connect(Some(&format!("{url}?near_cache=100#insecure")), Options::default()).unwrap();
    assert!(wait_until(Duration::from_secs(2), || {
        let hits = near.stats().near_hits;
        near.get(b"k").unwrap().as_deref() == Some(&b"over tls"[..]) && near.stats().near_hits > hits
    }));
    cache.set(b"k", b"changed", Ttl::After(Duration::from_secs(60))).unwrap();
    assert!(wait_until(Duration::from_secs(2), || near.get(b"k").unwrap().as_deref() == Some(&b"changed"[..])));
}
