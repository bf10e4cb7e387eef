//! Integration tests of memokit live in `tests/`; this crate holds what they share: the
//! policies the behaviour tests run under, a test run again as a child process, and (from
//! `memokit-fixtures`) throw-away Redis servers and clusters for the shared-tier tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub mod tracing_capture;

pub use memokit_fixtures::{entries, report_skip, Proxy, RedisCluster, RedisServer};

/// The policies whose capacity, expiry and listener behaviour the tests check one by one: the
/// default and every other structure (S3-FIFO's admission filter adds no behaviour of that kind).
pub const POLICIES: [memokit::Policy; 5] = [
    memokit::Policy::WTinyLfu,
    memokit::Policy::Lru,
    memokit::Policy::Lfu,
    memokit::Policy::Fifo,
    memokit::Policy::S3Fifo,
];

/// The role this test binary was started with by [`ChildTest::spawn`] (`MEMOKIT_TEST_ROLE`);
/// `None` in the test's own process.
pub fn role() -> Option<String> {
    std::env::var("MEMOKIT_TEST_ROLE").ok()
}

/// Waits until `done`, checking every 2 ms, and returns how long it took; panics with `what`
/// after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < timeout,
            "{what}: not within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    started.elapsed()
}

/// This process's folder `<prefix><pid>` in the system's temporary folder, made if missing.
/// A file in it may stay open until the process exits, so the folder outlives the run: the
/// folders `<prefix><pid>` of processes that are gone are removed here (whether a process is
/// alive is read from `/proc`; elsewhere nothing is removed). Call it once per process and
/// prefix (a `OnceLock`), before the files are opened.
///
/// ```
/// let temp = std::env::temp_dir();
/// // Above Linux's largest pid (2^22): a process that is gone. Pid 1 is always alive.
/// let (gone, alive) = (temp.join("memokit-doc-run-9999999"), temp.join("memokit-doc-run-1"));
/// std::fs::create_dir_all(&gone).unwrap();
/// std::fs::create_dir_all(&alive).unwrap();
/// let folder = memokit_tests::run_folder("memokit-doc-run-");
/// assert!(folder.is_dir());
/// assert!(folder.ends_with(format!("memokit-doc-run-{}", std::process::id())));
/// if std::path::Path::new("/proc/self").exists() {
///     assert!(!gone.exists(), "the folder of a process that is gone is removed");
/// }
/// assert!(alive.exists(), "the folder of a live process stays");
/// # for dir in [&folder, &gone, &alive] {
/// #     let _ = std::fs::remove_dir_all(dir);
/// # }
/// ```
pub fn run_folder(prefix: &str) -> PathBuf {
    let temp = std::env::temp_dir();
    let listed = Path::new("/proc/self").exists();
    let entries = std::fs::read_dir(&temp).into_iter().flatten().flatten();
    for entry in entries.filter(|_| listed) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let gone = name
            .strip_prefix(prefix)
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if gone {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let folder = temp.join(format!("{prefix}{}", std::process::id()));
    std::fs::create_dir_all(&folder).expect("a folder in the temporary folder");
    folder
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
        command.args([test, "--exact", "--nocapture", "--test-threads=1"]);
        Self::start(command, role, env)
    }

    /// [`ChildTest::spawn`] with no file of the child allowed past `bytes` (`RLIMIT_FSIZE`, set
    /// by `prlimit`, with `SIGXFSZ` ignored so that a write past it fails with `EFBIG` instead
    /// of killing the child): a full disk, without privileges. `None` without `prlimit`.
    pub fn spawn_with_file_limit(
        test: &str,
        role: &str,
        env: &[(&str, String)],
        bytes: u64,
    ) -> Option<ChildTest> {
        let prlimit = Command::new("prlimit")
            .arg("--version")
            .stdout(Stdio::null())
            .status();
        if !prlimit.is_ok_and(|status| status.success()) {
            return None;
        }
        // An ignored signal stays ignored across `exec`.
        let mut command = Command::new("sh");
        command
            .args(["-c", "trap '' XFSZ; exec prlimit --fsize=\"$0\" -- \"$@\""])
            .arg(bytes.to_string())
            .arg(std::env::current_exe().expect("the test binary"))
            .args([test, "--exact", "--nocapture", "--test-threads=1"]);
        Some(Self::start(command, role, env))
    }

    fn start(mut command: Command, role: &str, env: &[(&str, String)]) -> ChildTest {
        command
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
