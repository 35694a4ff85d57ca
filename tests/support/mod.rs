//! A private redis-server per test: started on a free loopback port in its
//! own directory, stopped when dropped. Faults are real: kill, restart, pause.

#![allow(dead_code)]

pub mod near;
pub mod proxy;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
    /// Extra `redis-server` arguments, kept for restarts.
    args: Vec<String>,
    /// A configuration file to start from (sentinels need one they can rewrite).
    config: Option<PathBuf>,
    /// Started in sentinel mode.
    sentinel: bool,
    /// Killed (SIGKILL) when the thread that started it ends; see `shared_cluster`.
    die_with_thread: bool,
}

/// Free ports tried before a server start gives up.
const PORT_TRIES: usize = 5;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// A server with extra `redis-server` arguments (kept for restarts).
    /// Another process may take the free port before the server binds it:
    /// then the server exits, and a new port is tried.
    pub fn start_with(args: &[&str]) -> RedisServer {
        for _ in 0..PORT_TRIES {
            let mut server = Self::prepare(args);
            if server.try_launch() {
                return server;
            }
        }
        panic!("redis-server did not start on any of {PORT_TRIES} free ports");
    }

    /// A server that is set up but not started yet.
    fn prepare(args: &[&str]) -> RedisServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("rcache-test-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let args = args.iter().map(|arg| arg.to_string()).collect();
        let die_with_thread = KEEPER.with(|keeper| keeper.get());
        RedisServer { port, dir, child: None, args, config: None, sentinel: false, die_with_thread }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn launch(&mut self) {
        if !self.try_launch() {
            panic!("redis-server on port {} did not start", self.port);
        }
    }

    /// Starts the server; false when it exited (its port was taken) or did not answer.
    fn try_launch(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        if let Some(config) = &self.config {
            command.arg(config);
        }
        if self.sentinel {
            command.arg("--sentinel");
        } else {
            command.args(["--save", "", "--appendonly", "no", "--enable-debug-command", "local"]);
        }
        command
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&self.dir)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.die_with_thread {
            use std::os::unix::process::CommandExt;
            // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
            unsafe {
                command.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
        }
        let child = command.spawn().expect("redis-server must be installed (make prereqs)");
        if self.die_with_thread {
            KEPT.lock().unwrap().push((child.id() as libc::pid_t, self.dir.clone()));
        }
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            // A PONG counts only while our child runs: another process may own the port.
            let exited = self.child.as_mut().is_none_or(|child| !matches!(child.try_wait(), Ok(None)));
            if exited {
                self.child = None;
                return false;
            }
            if self.command(&["PING"]).is_some_and(|reply| reply.starts_with("+PONG")) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        false
    }

    /// SIGKILL: the server vanishes without closing anything gracefully.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// SIGSTOP: the server keeps its connections but answers nothing.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.as_ref().expect("server running").id() as libc::pid_t;
        // SAFETY: sends a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Sends one command over a fresh connection and returns the raw reply.
    pub fn command(&self, args: &[&str]) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).ok()?;
        let mut reply = [0u8; 4096];
        let read = stream.read(&mut reply).ok()?;
        Some(String::from_utf8_lossy(&reply[..read]).into_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.resume_if_paused();
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl RedisServer {
    fn resume_if_paused(&self) {
        if let Some(child) = &self.child {
            // SAFETY: sends SIGCONT to our own child; harmless if it is running.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
        }
    }
}

/// Polls `condition` every 5 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    condition()
}

/// Sends one command with the `redis` crate over a fresh connection, for structured replies.
pub fn query<T: redis::FromRedisValue>(port: u16, cmd: &redis::Cmd) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut connection = client.get_connection_with_timeout(Duration::from_secs(2))?;
    connection.set_read_timeout(Some(Duration::from_secs(10)))?;
    cmd.query(&mut connection)
}

/// The `name:value` fields of `INFO <section>`; empty when the server does not answer.
pub fn info(port: u16, section: &str) -> std::collections::HashMap<String, String> {
    let text: String = query(port, redis::cmd("INFO").arg(section)).unwrap_or_default();
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.to_string(), value.trim().to_string()))
        .collect()
}

thread_local! {
    /// Set in the thread that starts shared servers: they get a parent-death signal.
    static KEEPER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Shared servers, killed and removed when the test process exits.
static KEPT: Mutex<Vec<(libc::pid_t, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn remove_kept_servers() {
    if let Ok(kept) = KEPT.lock() {
        for (pid, dir) in kept.iter() {
            // SAFETY: signals a child this process started.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Builds something that starts servers (a cluster, a Sentinel group) once
/// for the whole test process and shares it. It is built in a thread that
/// never ends, so that the servers' parent-death signal (SIGKILL, tied to the
/// starting thread) fires only when the process goes, even if it crashes;
/// a normal exit kills and removes them at once.
pub fn keep<T: Send + Sync + 'static>(make: fn() -> T) -> &'static T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        KEEPER.with(|keeper| keeper.set(true));
        static CLEANUP: std::sync::Once = std::sync::Once::new();
        // SAFETY: registers a plain function to run at exit.
        CLEANUP.call_once(|| unsafe {
            libc::atexit(remove_kept_servers);
        });
        let kept: &'static T = Box::leak(Box::new(make()));
        sender.send(kept).unwrap();
        loop {
            std::thread::park();
        }
    });
    receiver.recv().expect("the shared servers started")
}

/// A Redis Cluster of 3 primaries with one replica each on loopback ports,
/// `cluster-node-timeout` 1000 ms so that a failover takes seconds.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        Self::start_with_replicas(1)
    }

    /// 3 primaries with `replicas` replicas each.
    pub fn start_with_replicas(replicas: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                let bus = free_port().to_string();
                let args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000"];
                RedisServer::start_with(&[&args[..], &["--cluster-port", &bus]].concat())
            })
            .collect();
        let addresses: Vec<String> = nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)).collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed (make prereqs)");
        assert!(status.success(), "redis-cli --cluster create failed");
        let cluster = RedisCluster { nodes };
        cluster.wait_healthy(Duration::from_secs(30));
        cluster
    }

    /// One cluster for the whole test process (see `keep`).
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<&'static RedisCluster> = OnceLock::new();
        SHARED.get_or_init(|| keep(RedisCluster::start))
    }

    /// A URL naming two of the nodes (any reachable one is enough).
    pub fn url(&self) -> String {
        format!("redis+cluster://127.0.0.1:{},127.0.0.1:{}", self.nodes[0].port, self.nodes[1].port)
    }

    pub fn is_running(&self, index: usize) -> bool {
        self.nodes[index].child.is_some()
    }

    /// "master" or "slave", from `INFO replication`.
    pub fn role(&self, index: usize) -> String {
        info(self.nodes[index].port, "replication").get("role").cloned().unwrap_or_default()
    }

    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&index| self.is_running(index) && self.role(index) == "master").collect()
    }

    /// The running replica of the primary at `index`.
    pub fn replica_of(&self, index: usize) -> usize {
        let port = self.nodes[index].port.to_string();
        (0..self.nodes.len())
            .find(|&other| {
                self.is_running(other) && info(self.nodes[other].port, "replication").get("master_port") == Some(&port)
            })
            .expect("every primary has a replica")
    }

    pub fn node_id(&self, index: usize) -> String {
        query(self.nodes[index].port, redis::cmd("CLUSTER").arg("MYID")).unwrap()
    }

    /// The index of the primary serving `slot`, as the node at `asked` sees it.
    pub fn owner(&self, slot: u16, asked: usize) -> usize {
        let ranges: Vec<(u16, u16, (String, u16))> = {
            let raw: Vec<Vec<redis::Value>> = query(self.nodes[asked].port, redis::cmd("CLUSTER").arg("SLOTS")).unwrap();
            raw.into_iter()
                .map(|range| {
                    let mut fields = range.into_iter();
                    let start = redis::FromRedisValue::from_redis_value(fields.next().unwrap()).unwrap();
                    let end = redis::FromRedisValue::from_redis_value(fields.next().unwrap()).unwrap();
                    let node: Vec<redis::Value> = redis::FromRedisValue::from_redis_value(fields.next().unwrap()).unwrap();
                    let mut node = node.into_iter();
                    let host = redis::FromRedisValue::from_redis_value(node.next().unwrap()).unwrap();
                    let port = redis::FromRedisValue::from_redis_value(node.next().unwrap()).unwrap();
                    (start, end, (host, port))
                })
                .collect()
        };
        let (_, _, (_, port)) = ranges.iter().find(|(start, end, _)| (*start..=*end).contains(&slot)).expect("slot served");
        self.nodes.iter().position(|node| node.port == *port).unwrap()
    }

    /// Every running node sees all slots served and the cluster ok, and every
    /// running replica is in sync with its primary.
    pub fn wait_healthy(&self, limit: Duration) {
        let healthy = || {
            (0..self.nodes.len()).filter(|&index| self.is_running(index)).all(|index| {
                let port = self.nodes[index].port;
                let state: String = query(port, redis::cmd("CLUSTER").arg("INFO")).unwrap_or_default();
                let replication = info(port, "replication");
                state.contains("cluster_state:ok")
                    && state.contains("cluster_slots_ok:16384")
                    && (replication.get("role").map(String::as_str) == Some("master")
                        || replication.get("master_link_status").map(String::as_str) == Some("up"))
            })
        };
        assert!(wait_until(limit, healthy), "the cluster did not become healthy");
    }
}

/// A sentinel monitoring the primary at `primary_port` as `SERVICE` (quorum
/// 2, down after 1000 ms), with extra `redis-server` arguments.
pub fn start_sentinel(primary_port: u16, args: &[String]) -> RedisServer {
    let mut sentinel = RedisServer::prepare(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let config = sentinel.dir.join("sentinel.conf");
    std::fs::write(
        &config,
        format!(
            "sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {SERVICE} 1000\n\
             sentinel failover-timeout {SERVICE} 3000\n\
             sentinel parallel-syncs {SERVICE} 1\n"
        ),
    )
    .unwrap();
    sentinel.config = Some(config);
    sentinel.sentinel = true;
    for _ in 0..PORT_TRIES {
        if sentinel.try_launch() {
            return sentinel;
        }
        sentinel.port = free_port();
    }
    panic!("redis-sentinel did not start on any of {PORT_TRIES} free ports");
}

/// The service name the sentinels of a `SentinelGroup` monitor.
pub const SERVICE: &str = "mymaster";

/// One primary, one replica and three sentinels (quorum 2) on loopback ports;
/// `down-after-milliseconds` 1000 so that a failover takes seconds.
pub struct SentinelGroup {
    pub primary: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisServer>,
}

impl SentinelGroup {
    pub fn start() -> SentinelGroup {
        let primary = RedisServer::start();
        let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &primary.port.to_string()]);
        let synced = || info(replica.port, "replication").get("master_link_status").map(String::as_str) == Some("up");
        assert!(wait_until(Duration::from_secs(10), synced), "the replica did not sync");
        let sentinels: Vec<RedisServer> = (0..3).map(|_| start_sentinel(primary.port, &[])).collect();
        let group = SentinelGroup { primary, replica, sentinels };
        // Sentinels find each other through hello messages every 2 s; a
        // failover needs the replica seen connected and in sync.
        let ready = || {
            group.sentinels.iter().all(|sentinel| {
                let master: std::collections::HashMap<String, String> =
                    query(sentinel.port, redis::cmd("SENTINEL").arg("MASTER").arg(SERVICE)).unwrap_or_default();
                let replicas: Vec<std::collections::HashMap<String, String>> =
                    query(sentinel.port, redis::cmd("SENTINEL").arg("REPLICAS").arg(SERVICE)).unwrap_or_default();
                master.get("num-other-sentinels").map(String::as_str) == Some("2")
                    && replicas.iter().any(|replica| {
                        replica.get("flags").map(String::as_str) == Some("slave")
                            && replica.get("master-link-status").map(String::as_str) == Some("ok")
                    })
            })
        };
        assert!(wait_until(Duration::from_secs(30), ready), "the sentinels did not find each other");
        group
    }

    /// One group for the whole test process (see `keep`).
    pub fn shared() -> &'static SentinelGroup {
        static SHARED: OnceLock<&'static SentinelGroup> = OnceLock::new();
        SHARED.get_or_init(|| keep(SentinelGroup::start))
    }

    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|sentinel| format!("127.0.0.1:{}", sentinel.port)).collect();
        format!("redis+sentinel://{}/{SERVICE}/0", hosts.join(","))
    }

    /// The port of the primary, as the first sentinel that answers names it.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|sentinel| {
            let address: (String, u16) =
                query(sentinel.port, redis::cmd("SENTINEL").arg("GET-MASTER-ADDR-BY-NAME").arg(SERVICE)).ok()?;
            Some(address.1)
        })
    }
}
