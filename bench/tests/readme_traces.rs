//! The README says where the benchmark's traces come from: every trace the report would replay
//! is named there with its source, and the way to point the report at a copy is given.

use std::path::Path;

use memokit_bench::workloads::{default_trace_dir, trace_files};

fn readme() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    std::fs::read_to_string(&path).expect("README.md beside the bench crate")
}

#[test]
fn the_readme_says_how_to_point_the_report_at_the_traces() {
    let readme = readme();
    for needed in [
        "### The traces",
        "--traces DIR",
        "MEMOKIT_TRACE_DIR",
        "../shared/traces",
    ] {
        assert!(
            readme.contains(needed),
            "README.md does not mention {needed}"
        );
    }
}

#[test]
fn every_shared_trace_is_named_in_the_readme_with_its_source() {
    let dir = default_trace_dir();
    if !dir.is_dir() {
        eprintln!("no traces at {}: nothing to compare", dir.display());
        return;
    }
    let readme = readme();
    let section = &readme[readme.find("### The traces").expect("the traces section")..];
    for file in trace_files(&dir).expect("the trace directory lists") {
        let name = file.file_name().expect("a file name").to_string_lossy();
        assert!(
            section.contains(&format!("`{name}`")),
            "README.md's traces table does not name {name}: say where it comes from and its licence"
        );
    }
}
