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

fn find_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

impl RedisServer {
    /// Starts a server, or returns `None` after a loud message on the real standard error
    /// (shown by a plain `cargo test`) when `redis-server` is not installed: the calling test
    /// then passes without testing anything. With `MEMOKIT_REQUIRE_REDIS=1`, as in CI, that
    /// panics instead.
    pub fn start() -> Option<RedisServer> {
        let Some(binary) = find_binary() else {
            if std::env::var("MEMOKIT_REQUIRE_REDIS").as_deref() == Ok("1") {
                panic!("MEMOKIT_REQUIRE_REDIS=1 but `redis-server` is not on PATH: install it (apt-get install redis-server)");
            }
            report_skip(
                "`redis-server` is not on PATH",
                "Install Redis (apt-get install redis-server), or set MEMOKIT_REQUIRE_REDIS=1 \
                 to make this a failure.",
            );
            return None;
        };
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
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut conn) = self.try_connection() {
                if redis::cmd("PING").query::<String>(&mut conn).is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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
