//! The checks of `memokit-wasm-check` as a program: on `wasm32-wasip1` (run by `run.mjs` under
//! Node.js's WASI) and natively. Prints what each check saw; exits 1 on the first failure.

use std::process::ExitCode;

fn main() -> ExitCode {
    let target = if cfg!(target_family = "wasm") {
        "wasm32-wasip1"
    } else {
        "native"
    };
    #[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
    let result = memokit_wasm_check::check()
        .and_then(|report| memokit_wasm_check::check_real_clock().map(|clock| report + &clock));
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    let result = memokit_wasm_check::check();
    match result {
        Ok(report) => {
            print!("{report}");
            println!("memokit-wasm-check on {target}: every check passed");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("memokit-wasm-check on {target} failed: {failure}");
            ExitCode::FAILURE
        }
    }
}
