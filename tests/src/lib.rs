//! Integration tests of memokit live in `tests/`; this crate holds what they share: the
//! policies the behaviour tests run under, and a throw-away Redis server for the shared-tier
//! tests.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod tracing_capture;

/// The policies whose capacity, expiry and listener behaviour the tests check one by one: the
/// default and every other structure (S3-FIFO's admission filter adds no behaviour of that kind).
pub const POLICIES: [memokit::Policy; 5] = [
    memokit::Policy::WTinyLfu,
    memokit::Policy::Lru,
    memokit::Policy::Lfu,
    memokit::Policy::Fifo,
    memokit::Policy::S3Fifo,
];

/// A `redis-server` child on a free port, without persistence, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    binary: PathBuf,
}

fn find_named(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The binary, or `None` after saying loudly that the calling test is skipped (a failure
/// with `MEMOKIT_REQUIRE_REDIS=1`).
fn required_binary(name: &str) -> Option<PathBuf> {
    if let Some(binary) = find_named(name) {
        return Some(binary);
    }
    if std::env::var("MEMOKIT_REQUIRE_REDIS").as_deref() == Ok("1") {
        panic!("MEMOKIT_REQUIRE_REDIS=1 but `{name}` is not on PATH: install it (apt-get install redis-server)");
    }
    report_skip(
        &format!("`{name}` is not on PATH"),
        "Install Redis (apt-get install redis-server), or set MEMOKIT_REQUIRE_REDIS=1 \
         to make this a failure.",
    );
    None
}

impl RedisServer {
    /// Starts a server, or returns `None` after a loud message on the real standard error
    /// (shown by a plain `cargo test`) when `redis-server` is not installed: the calling test
    /// then passes without testing anything. With `MEMOKIT_REQUIRE_REDIS=1`, as in CI, that
    /// panics instead.
    pub fn start() -> Option<RedisServer> {
        let binary = required_binary("redis-server")?;
        let port = free_port();
        let mut server = RedisServer {
            child: None,
            port,
            binary,
        };
        server.restart();
        Some(server)
    }

    /// (Re)starts the server on its port, with empty data, and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        assert!(
            answers_ping(&self.url(), Duration::from_secs(10)),
            "redis-server did not start on port {}",
            self.port
        );
    }

    /// `kill -9` of the server.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The server's process id, while it runs (to `kill -STOP` it).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn try_connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(1))
    }

    /// A plain connection, for the test's own commands.
    pub fn connection(&self) -> redis::Connection {
        self.try_connection().expect("the test server answers")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy in front of a server, for the shared-tier tests: it forwards every connection
/// until [`partition`](Proxy::partition) closes them all and turns new ones away (each closed
/// as soon as accepted), and [`heal`](Proxy::heal) lets connections through again. A hook can
/// run once just before bytes that hold a pattern are forwarded, to make a race happen at a
/// chosen moment. Threads of std only; stopped when dropped.
pub struct Proxy {
    port: u16,
    shared: std::sync::Arc<ProxyShared>,
}

type Hook = (Vec<u8>, Box<dyn FnOnce() + Send>);

struct ProxyShared {
    target: std::net::SocketAddr,
    cut: std::sync::atomic::AtomicBool,
    stopped: std::sync::atomic::AtomicBool,
    /// Both ends of every forwarded connection, to close them on a partition.
    open: std::sync::Mutex<Vec<std::net::TcpStream>>,
    hook: std::sync::Mutex<Option<Hook>>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("port", &self.port)
            .field("target", &self.shared.target)
            .finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy on a free loopback port to `server`, letting connections through.
    pub fn start(server: &RedisServer) -> Proxy {
        use std::sync::atomic::AtomicBool;
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let port = listener.local_addr().expect("its address").port();
        let shared = std::sync::Arc::new(ProxyShared {
            target: ([127, 0, 0, 1], server.port).into(),
            cut: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            open: std::sync::Mutex::new(Vec::new()),
            hook: std::sync::Mutex::new(None),
        });
        let accepting = shared.clone();
        std::thread::spawn(move || accept_loop(&listener, &accepting));
        Proxy { port, shared }
    }

    /// `redis://127.0.0.1:<proxy port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Closes every connection and turns new ones away until [`heal`](Proxy::heal).
    pub fn partition(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.shared.cut.store(true, SeqCst);
        self.shared.close_all();
    }

    /// Lets new connections through again.
    pub fn heal(&self) {
        self.shared
            .cut
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Runs `hook` once, just before the first bytes from a client that contain `pattern`
    /// are forwarded to the server.
    pub fn before_forwarding(&self, pattern: &[u8], hook: impl FnOnce() + Send + 'static) {
        *self.shared.hook.lock().unwrap() = Some((pattern.to_vec(), Box::new(hook)));
    }
}

impl ProxyShared {
    fn close_all(&self) {
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    /// The hook to run before forwarding `bytes`, taken if they hold its pattern.
    fn hook_for(&self, bytes: &[u8]) -> Option<Box<dyn FnOnce() + Send>> {
        let mut hook = self.hook.lock().unwrap();
        let (pattern, _) = hook.as_ref()?;
        if !bytes
            .windows(pattern.len())
            .any(|window| window == &pattern[..])
        {
            return None;
        }
        hook.take().map(|(_, hook)| hook)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.shared.stopped.store(true, SeqCst);
        self.shared.close_all();
    }
}

fn accept_loop(listener: &TcpListener, shared: &std::sync::Arc<ProxyShared>) {
    use std::sync::atomic::Ordering::SeqCst;
    while !shared.stopped.load(SeqCst) {
        let client = match listener.accept() {
            Ok((client, _)) => client,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(2));
                continue;
            }
        };
        if shared.cut.load(SeqCst) {
            let _ = client.shutdown(std::net::Shutdown::Both);
            continue;
        }
        let _ = client.set_nonblocking(false);
        let Ok(server) = std::net::TcpStream::connect(shared.target) else {
            continue;
        };
        let streams = (client.try_clone(), server.try_clone());
        let (Ok(client_end), Ok(server_end)) = streams else {
            continue;
        };
        {
            let mut open = shared.open.lock().unwrap();
            open.push(client_end);
            open.push(server_end);
        }
        let (Ok(client_reader), Ok(server_writer)) = (client.try_clone(), server.try_clone())
        else {
            continue;
        };
        let upstream = shared.clone();
        std::thread::spawn(move || forward(client_reader, server_writer, Some(&upstream)));
        std::thread::spawn(move || forward(server, client, None));
    }
}

/// Copies `from` to `to` until either closes; bytes from a client go through `hooks`.
fn forward(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    hooks: Option<&ProxyShared>,
) {
    use std::io::{Read, Write};
    let mut buffer = [0_u8; 16 * 1024];
    loop {
        let read = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if let Some(hook) = hooks.and_then(|shared| shared.hook_for(&buffer[..read])) {
            hook();
        }
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

/// Says that the calling test tests nothing, on the process's real standard error: the test
/// harness captures `eprintln!` of a passing test, but not a direct write, so a plain
/// `cargo test` shows it.
pub fn report_skip(why: &str, remedy: &str) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let _ = writeln!(
        std::io::stderr().lock(),
        "\n=== SKIPPED {test}: {why}, so this test tests nothing and passes. {remedy} ==="
    );
}

/// A Redis Cluster of three masters with one replica each, on loopback: one `redis-server
/// --cluster-enabled yes` per node (each on a free port, with a free cluster bus port), joined
/// by `redis-cli --cluster create … --cluster-replicas 1`. A node that stops answering is taken
/// for failed after 1 s (`cluster-node-timeout`), so that a replica takes over within a few
/// seconds. Every node is killed, and its directory removed, when dropped.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<ClusterNode>,
    dir: PathBuf,
}

#[derive(Debug)]
struct ClusterNode {
    child: Option<Child>,
    port: u16,
}

impl RedisCluster {
    /// Starts the six nodes and the cluster, or returns `None` as [`RedisServer::start`] does.
    pub fn start() -> Option<RedisCluster> {
        let server = required_binary("redis-server")?;
        let cli = required_binary("redis-cli")?;
        let mut why = String::new();
        // A port found free may be taken before the node binds it: start over on new ones.
        for _ in 0..3 {
            match RedisCluster::try_start(&server, &cli) {
                Ok(cluster) => return Some(cluster),
                Err(error) => why = error,
            }
        }
        panic!("the test cluster did not start: {why}");
    }

    fn try_start(server: &PathBuf, cli: &PathBuf) -> Result<RedisCluster, String> {
        let ports = free_ports(12);
        let dir = std::env::temp_dir().join(format!(
            "memokit-cluster-{}-{}",
            std::process::id(),
            ports[0]
        ));
        std::fs::create_dir_all(&dir).expect("a directory for the cluster's node files");
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            dir,
        };
        for pair in ports.chunks(2) {
            let (port, bus) = (pair[0], pair[1]);
            let child = Command::new(server)
                .args(["--port", &port.to_string()])
                .args(["--cluster-port", &bus.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                // A replica takes over however long it was cut off from its master.
                .args(["--cluster-replica-validity-factor", "0"])
                .arg("--dir")
                .arg(&cluster.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            cluster.nodes.push(ClusterNode {
                child: Some(child),
                port,
            });
        }
        for node in &cluster.nodes {
            let url = format!("redis://127.0.0.1:{}", node.port);
            if !answers_ping(&url, Duration::from_secs(10)) {
                return Err(format!("no node answered at {url}"));
            }
        }
        let status = Command::new(cli)
            .arg("--cluster")
            .arg("create")
            .args(
                cluster
                    .nodes
                    .iter()
                    .map(|node| format!("127.0.0.1:{}", node.port)),
            )
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli runs");
        if !status.success() {
            return Err(format!("redis-cli --cluster create failed: {status}"));
        }
        cluster.wait_until_healthy(Duration::from_secs(30));
        Ok(cluster)
    }

    /// The URL of every node, for `Config::cluster`.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect()
    }

    /// A cluster client of the test's own, for its commands (reading what memokit wrote).
    pub fn connection(&self) -> redis::cluster::ClusterConnection {
        let live: Vec<String> = self
            .nodes
            .iter()
            .filter(|node| node.child.is_some())
            .map(|node| format!("redis://127.0.0.1:{}", node.port))
            .collect();
        redis::cluster::ClusterClient::new(live)
            .and_then(|client| client.get_connection())
            .expect("the test cluster answers")
    }

    fn node_connection(&self, port: u16) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}"))?;
        let connection = client.get_connection_with_timeout(Duration::from_secs(1))?;
        connection.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(connection)
    }

    /// The port of the master that owns `key`'s slot, as a live node sees it.
    pub fn master_of(&self, key: &str) -> u16 {
        let node = self.live_ports()[0];
        let mut conn = self.node_connection(node).expect("a live node answers");
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut conn)
            .expect("CLUSTER KEYSLOT");
        let ranges: Vec<redis::Value> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut conn)
            .expect("CLUSTER SLOTS");
        for range in ranges {
            let redis::Value::Array(range) = range else {
                continue;
            };
            let bound = |at: usize| match range.get(at) {
                Some(redis::Value::Int(n)) => *n,
                _ => -1,
            };
            if (bound(0)..=bound(1)).contains(&i64::from(slot)) {
                if let Some(redis::Value::Array(master)) = range.get(2) {
                    if let Some(redis::Value::Int(port)) = master.get(1) {
                        return u16::try_from(*port).expect("a port");
                    }
                }
            }
        }
        panic!("no master owns slot {slot}");
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|node| node.child.is_some())
            .map(|node| node.port)
            .collect()
    }

    /// The names of the cluster's keys that match `pattern` (`KEYS` on every live master).
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for port in self.live_ports() {
            let Ok(mut conn) = self.node_connection(port) else {
                continue;
            };
            let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut conn).unwrap_or_default();
            if !matches!(role.first(), Some(redis::Value::BulkString(role)) if role == b"master") {
                continue;
            }
            let found: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut conn)
                .unwrap_or_default();
            keys.extend(found);
        }
        keys.sort();
        keys
    }

    /// The port of a replica of the master on `port`.
    pub fn replica_of(&self, master: u16) -> u16 {
        let node = self.live_ports()[0];
        let mut conn = self.node_connection(node).expect("a live node answers");
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query(&mut conn)
            .expect("CLUSTER NODES");
        let id_of = |line: &str| line.split(' ').next().unwrap_or_default().to_string();
        let master_id = nodes
            .lines()
            .find(|line| line.contains(&format!(":{master}@")))
            .map(id_of)
            .expect("the master is listed");
        nodes
            .lines()
            .find(|line| line.split(' ').nth(3) == Some(master_id.as_str()))
            .and_then(|line| line.split(' ').nth(1))
            .and_then(|address| address.split(['@', ':']).nth(1))
            .and_then(|port| port.parse().ok())
            .expect("the master has a replica")
    }

    /// Whether the node on `port` (a replica too) holds `key`.
    pub fn node_has(&self, port: u16, key: &str) -> bool {
        let Ok(mut conn) = self.node_connection(port) else {
            return false;
        };
        let _ = redis::cmd("READONLY").query::<redis::Value>(&mut conn);
        redis::cmd("EXISTS")
            .arg(key)
            .query::<bool>(&mut conn)
            .unwrap_or(false)
    }

    /// Closes the replication links of the master on `port` (`CLIENT KILL TYPE replica`):
    /// what it acknowledges next reaches no replica until they connect again.
    pub fn cut_replication(&self, master: u16) {
        let mut conn = self.node_connection(master).expect("the master answers");
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("replica")
            .query(&mut conn)
            .expect("CLIENT KILL TYPE replica");
        assert!(killed > 0, "the master had no replica link");
    }

    /// `kill -STOP` (`stop`) or `kill -CONT` of the node on `port`.
    pub fn pause(&self, port: u16, stop: bool) {
        let pid = self
            .nodes
            .iter()
            .find(|node| node.port == port)
            .and_then(|node| node.child.as_ref())
            .map(Child::id)
            .expect("a live node of this cluster");
        let status = Command::new("kill")
            .arg(if stop { "-STOP" } else { "-CONT" })
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// `kill -9` of the node on `port`.
    pub fn kill(&mut self, port: u16) {
        let node = self
            .nodes
            .iter_mut()
            .find(|node| node.port == port)
            .expect("a node of this cluster");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Closes every pub/sub connection on every live node (`CLIENT KILL TYPE pubsub`): the
    /// subscribers of every process lose their subscription at once.
    pub fn kill_subscriptions(&self) {
        for port in self.live_ports() {
            if let Ok(mut conn) = self.node_connection(port) {
                let _ = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("pubsub")
                    .query::<redis::Value>(&mut conn);
            }
        }
    }

    /// Waits until the cluster [is healthy](RedisCluster::is_healthy).
    pub fn wait_until_healthy(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.is_healthy() {
            assert!(
                Instant::now() < deadline,
                "the cluster was not healthy within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether every live node says `cluster_state:ok` and sees three live masters (after a
    /// failover: a replica was promoted).
    pub fn is_healthy(&self) -> bool {
        let live = self.live_ports();
        live.iter().all(|&port| {
            let Ok(mut conn) = self.node_connection(port) else {
                return false;
            };
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut conn)
                .unwrap_or_default();
            let nodes: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut conn)
                .unwrap_or_default();
            let live_masters = nodes
                .lines()
                .filter(|line| line.contains("master") && !line.contains("fail"))
                .filter(|line| live.iter().any(|port| line.contains(&format!(":{port}@"))))
                .count();
            info.contains("cluster_state:ok") && live_masters == 3
        })
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether a server at `url` answers `PING` within `timeout`.
fn answers_ping(url: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let answered = redis::Client::open(url)
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
            .and_then(|mut conn| redis::cmd("PING").query::<String>(&mut conn));
        if answered.is_ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `n` distinct ports that were free a moment ago (all held until all are found).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("its address").port())
        .collect()
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// A child process running one test of the current test binary, with `role` in
/// `MEMOKIT_TEST_ROLE` and more environment; its stdout lines can be awaited.
#[derive(Debug)]
pub struct ChildTest {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl ChildTest {
    /// Runs `test` (an exact test name) of this binary in a child process.
    pub fn spawn(test: &str, role: &str, env: &[(&str, String)]) -> ChildTest {
        let mut command = Command::new(std::env::current_exe().expect("the test binary"));
        command
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("MEMOKIT_TEST_ROLE", role)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the test binary runs");
        let stdout = child.stdout.take().expect("piped");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        ChildTest { child, lines }
    }

    /// The rest of the first line that has `marker`, waiting at most `timeout`.
    pub fn expect_line(&self, marker: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    // The test harness may have printed `test name ... ` before it.
                    if let Some(at) = line.find(marker) {
                        return line[at + marker.len()..].trim().to_string();
                    }
                }
                Err(_) => panic!("the child process did not print `{marker}` within {timeout:?}"),
            }
        }
    }

    /// Waits for the child and asserts that its test passed.
    pub fn success(mut self) {
        let status = self.child.wait().expect("the child ends");
        assert!(status.success(), "the child process failed: {status}");
    }
}

impl Drop for ChildTest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every Rust block of the README, compiled and run as a doctest of this crate (so by
/// `cargo test --workspace`), with the features the README describes turned on. Hidden `# `
/// lines hold each block's set-up.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
