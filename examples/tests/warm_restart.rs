//! The warm-restart example run twice, each run a process of its own: the second computes
//! nothing.

use std::process::Command;

#[test]
fn the_second_run_serves_every_report_from_the_file() {
    if let Ok(path) = std::env::var("MEMOKIT_EXAMPLE_DISK") {
        let computed = memokit_examples::warm_restart::run(path.as_ref(), 20).unwrap();
        println!("COMPUTED {computed}");
        return;
    }
    // Removed, with the file, when the test ends.
    let dir = tempfile::Builder::new()
        .prefix("memokit-warm-restart-")
        .tempdir()
        .unwrap();
    let path = dir.path().join("cache.redb");
    let run = || {
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "the_second_run_serves_every_report_from_the_file",
                "--exact",
                "--nocapture",
            ])
            .env("MEMOKIT_EXAMPLE_DISK", &path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let at = stdout.find("COMPUTED ").expect("the run reports") + "COMPUTED ".len();
        stdout[at..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(run(), 20, "the first run computes every report");
    assert_eq!(run(), 0, "the restarted run computes none");
}
