//! The cost of finding a generic `#[cached]` function's instantiation, for an instruction
//! counter: `generic_hit plain|generic N` makes N hits on one key, through a non-generic
//! function or through one instantiation of a generic one. Run each under
//! `valgrind --tool=callgrind` at two N and take the difference per hit (see
//! bench/results/GENERIC.md); timings on these shared machines are too noisy for a few ns.

use std::hint::black_box;

#[memokit::cached(size = 1_000)]
fn plain(key: u64) -> u64 {
    key ^ 1
}

#[memokit::cached(size = 1_000)]
fn generic<T: 'static>(key: u64) -> u64 {
    key ^ 1
}

fn main() {
    let mut args = std::env::args().skip(1);
    let way = args.next().unwrap_or_default();
    let hits: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    let mut sum = 0u64;
    match way.as_str() {
        "plain" => (0..=hits).for_each(|_| sum = sum.wrapping_add(plain(black_box(7)))),
        "generic" => {
            // Other instantiations in the list, as a program with a few would have.
            generic::<u8>(7);
            generic::<u16>(7);
            (0..=hits).for_each(|_| sum = sum.wrapping_add(generic::<u32>(black_box(7))));
        }
        _ => {
            eprintln!("usage: generic_hit plain|generic N");
            std::process::exit(2);
        }
    }
    println!("{sum}");
}
