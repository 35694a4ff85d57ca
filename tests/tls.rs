//! TLS against private redis-servers with certificates made at test time: a
//! self-signed one with `#insecure`, then a CA that signs the servers'
//! certificates and a client certificate, on one server, a Cluster and a
//! Sentinel group.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rcache::{Cache, ErrorKind, Options, Ttl};
use support::{RedisServer, free_port, query, wait_until};

const MINUTE: Ttl = Ttl::After(Duration::from_secs(60));

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

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl must be installed");
    assert!(status.success(), "openssl {args:?}");
}

fn self_signed_certificate(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ],
    );
}

fn start_tls_server() -> TlsServer {
    let port = free_port();
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

/// A CA, a server certificate it signs for 127.0.0.1, and a client
/// certificate it signs, as PEM files in a directory of their own.
struct Certificates {
    dir: PathBuf,
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Certificates {
    fn make() -> Certificates {
        let dir = std::env::temp_dir().join(format!("rcache-ca-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=rcache test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        );
        std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n").unwrap();
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        for (name, subject) in [("server", "/CN=127.0.0.1"), ("client", "/CN=rcache test client")] {
            openssl(
                &dir,
                &[
                    "req",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-subj",
                    subject,
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
            openssl(
                &dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "1",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
        }
        Certificates { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_str().unwrap().to_string()
    }

    /// `redis-server` arguments for a TLS port beside the plain one (which the
    /// harness uses to see the server is up); `clients` asks clients for a certificate.
    fn server_args(&self, tls_port: u16, clients: bool) -> Vec<String> {
        let auth = if clients { "yes" } else { "no" };
        [
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &self.path("server.pem"),
            "--tls-key-file",
            &self.path("server.key"),
            "--tls-ca-cert-file",
            &self.path("ca.pem"),
            "--tls-auth-clients",
            auth,
        ]
        .iter()
        .map(|arg| arg.to_string())
        .collect()
    }

    /// The URL query naming the CA, and the client certificate when `client`.
    fn query(&self, client: bool) -> String {
        let mut query = format!("tls_ca={}", self.path("ca.pem"));
        if client {
            query.push_str(&format!("&tls_cert={}&tls_key={}", self.path("client.pem"), self.path("client.key")));
        }
        query
    }
}

fn start_with(args: &[String]) -> RedisServer {
    RedisServer::start_with(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[test]
fn rediss_trusts_the_ca_named_in_the_url() {
    let certificates = Certificates::make();
    let tls_port = free_port();
    let _server = start_with(&certificates.server_args(tls_port, false));
    let url = format!("rediss://127.0.0.1:{tls_port}/0");

    let untrusted = Cache::connect(Some(&url), Options::default()).err().unwrap();
    assert_eq!(untrusted.kind, ErrorKind::Connection, "{untrusted}");

    let cache = Cache::connect(Some(&format!("{url}?{}", certificates.query(false))), Options::default()).unwrap();
    cache.set(b"k", b"verified", MINUTE).unwrap();
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"verified"[..]));

    let missing = Cache::connect(Some(&format!("{url}?tls_ca=/nonexistent/ca.pem")), Options::default()).err().unwrap();
    assert_eq!(missing.kind, ErrorKind::InvalidArgument);
    assert!(missing.message.contains("/nonexistent/ca.pem"), "{missing}");
    let half =
        Cache::connect(Some(&format!("{url}?tls_cert={}", certificates.path("client.pem"))), Options::default()).err().unwrap();
    assert_eq!(half.kind, ErrorKind::InvalidArgument, "a certificate without its key: {half}");
}

#[test]
fn a_server_that_checks_clients_accepts_the_client_certificate() {
    let certificates = Certificates::make();
    let tls_port = free_port();
    let _server = start_with(&certificates.server_args(tls_port, true));
    let url = format!("rediss://127.0.0.1:{tls_port}/0");

    let anonymous = Cache::connect(Some(&format!("{url}?{}", certificates.query(false))), Options::default()).err();
    assert!(anonymous.is_some_and(|error| error.kind == ErrorKind::Connection), "no certificate, no connection");

    let cache = Cache::connect(Some(&format!("{url}?{}", certificates.query(true))), Options::default()).unwrap();
    cache.set_with_tags(b"k", b"mutual", MINUTE, &[b"t"]).unwrap();
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"mutual"[..]));
}

#[test]
fn rediss_cluster_with_a_ca_and_a_client_certificate() {
    let certificates = Certificates::make();
    let nodes: Vec<(RedisServer, u16)> = (0..3)
        .map(|_| {
            let tls_port = free_port();
            let mut args = certificates.server_args(tls_port, true);
            args.extend(
                ["--tls-cluster", "yes", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"].map(String::from),
            );
            args.extend(["--cluster-node-timeout".into(), "1000".into(), "--cluster-port".into(), free_port().to_string()]);
            (start_with(&args), tls_port)
        })
        .collect();
    let mut create = Command::new("redis-cli");
    create.args(["--tls", "--cacert", &certificates.path("ca.pem"), "--cert", &certificates.path("client.pem")]);
    create.args(["--key", &certificates.path("client.key"), "--cluster", "create"]);
    create.args(nodes.iter().map(|(_, tls_port)| format!("127.0.0.1:{tls_port}")));
    let status =
        create.args(["--cluster-replicas", "0", "--cluster-yes"]).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "redis-cli --cluster create over TLS");
    assert!(wait_until(Duration::from_secs(30), || nodes.iter().all(|(node, _)| {
        let state: String = query(node.port, redis::cmd("CLUSTER").arg("INFO")).unwrap_or_default();
        state.contains("cluster_state:ok")
    })));

    let url = format!("rediss+cluster://127.0.0.1:{}?{}", nodes[0].1, certificates.query(true));
    let cache = Cache::connect(Some(&url), Options { key_prefix: b"tls:".to_vec(), ..Options::default() }).unwrap();
    for index in 0..50 {
        cache.set_with_tags(format!("k{index}").as_bytes(), b"v", MINUTE, &[b"all"]).unwrap();
    }
    let keys: Vec<String> = (0..50).map(|index| format!("k{index}")).collect();
    let keys: Vec<&[u8]> = keys.iter().map(|key| key.as_bytes()).collect();
    assert!(cache.get_many(&keys).unwrap().iter().all(|value| value.as_deref() == Some(&b"v"[..])), "every primary over TLS");
    cache.invalidate_tags(&[b"all"]).unwrap();
    assert!(cache.get_many(&keys).unwrap().iter().all(Option::is_none));

    let without = format!("rediss+cluster://127.0.0.1:{}?{}", nodes[0].1, certificates.query(false));
    assert!(Cache::connect(Some(&without), Options::default()).is_err(), "the nodes want a client certificate");
}

#[test]
fn rediss_sentinel_finds_the_primary_over_tls() {
    let certificates = Certificates::make();
    let tls_args = |tls_port: u16| {
        let mut args = certificates.server_args(tls_port, false);
        args.extend(["--tls-replication".to_string(), "yes".to_string()]);
        args
    };
    let primary_tls = free_port();
    let _primary = start_with(&tls_args(primary_tls));
    let replica_tls = free_port();
    let mut replica_args = tls_args(replica_tls);
    replica_args.extend(["--replicaof".to_string(), "127.0.0.1".to_string(), primary_tls.to_string()]);
    let replica = start_with(&replica_args);
    assert!(wait_until(Duration::from_secs(10), || {
        support::info(replica.port, "replication").get("master_link_status").map(String::as_str) == Some("up")
    }));
    let sentinel_tls = free_port();
    let sentinel = support::start_sentinel(primary_tls, &tls_args(sentinel_tls));
    assert!(wait_until(Duration::from_secs(20), || {
        let master: std::collections::HashMap<String, String> =
            query(sentinel.port, redis::cmd("SENTINEL").arg("MASTER").arg(support::SERVICE)).unwrap_or_default();
        master.get("num-slaves").map(String::as_str) == Some("1")
    }));

    let url = format!("rediss+sentinel://127.0.0.1:{sentinel_tls}/{}?{}", support::SERVICE, certificates.query(false));
    let cache = Cache::connect(Some(&url), Options::default()).unwrap();
    cache.set(b"k", b"through a TLS sentinel", MINUTE).unwrap();
    assert_eq!(cache.get(b"k").unwrap().as_deref(), Some(&b"through a TLS sentinel"[..]));
    let stored: Option<String> = query(_primary.port, redis::cmd("GET").arg("k")).unwrap();
    assert_eq!(stored.as_deref(), Some("through a TLS sentinel"));
}
