//! A warm restart: run it twice. The first run computes 20 reports and keeps them in a file;
//! the second serves all of them from the file, computing none.
//!
//! Run it with `cargo run -p memokit-examples --example warm_restart [path/to/cache.redb]`.

use memokit_examples::warm_restart::{report_cache, run};

fn main() -> Result<(), memokit::disk::Error> {
    let path = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("memokit-warm-restart.redb"));
    let computed = run(&path, 20)?;
    println!("computed={computed} (of 20) file={}", path.display());
    println!("{}", report_cache().stats());
    Ok(())
}
