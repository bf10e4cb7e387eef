//! `size = …` given as something other than a literal: constants of any integer type,
//! constant expressions (checked at build time to be at least 1), associated constants, and a
//! call evaluated at run time. Each function's cache must get exactly the capacity written.
//! Like every test file, this one is built by `cargo clippy --all-targets -- -D warnings`.

use memokit::cached;

const ENTRIES: usize = 64;
const SMALL: u32 = 8;
const SIGNED: i64 = 16;

#[cached(size = ENTRIES)]
fn usize_constant(n: u64) -> u64 {
    n
}

#[cached(size = SMALL)]
fn u32_constant(n: u64) -> u64 {
    n
}

#[cached(size = SIGNED)]
fn signed_constant(n: u64) -> u64 {
    n
}

#[cached(size = 1 << 10)]
fn shifted(n: u64) -> u64 {
    n
}

#[cached(size = ENTRIES * 2 + SMALL as usize)]
fn arithmetic(n: u64) -> u64 {
    n
}

fn entries_from_the_environment() -> u64 {
    32
}

#[cached(size = entries_from_the_environment())]
fn called(n: u64) -> u64 {
    n
}

struct Repo;

impl Repo {
    const CAPACITY: u64 = 5;

    #[cached(size = Self::CAPACITY, key = id)]
    fn get(&self, id: u64) -> u64 {
        id
    }
}

struct Typed<T>(T);

trait Capacity {
    const CAPACITY: usize;
}

impl Capacity for u8 {
    const CAPACITY: usize = 3;
}

impl<T: Capacity> Typed<T> {
    #[cached(size = T::CAPACITY, key = id)]
    fn get(&self, id: u64) -> u64 {
        id
    }
}

#[test]
fn every_size_reaches_the_cache() {
    assert_eq!(usize_constant(1), 1);
    assert_eq!(usize_constant_cache().cache().capacity(), Some(64));
    assert_eq!(u32_constant(1), 1);
    assert_eq!(u32_constant_cache().cache().capacity(), Some(8));
    assert_eq!(signed_constant(1), 1);
    assert_eq!(signed_constant_cache().cache().capacity(), Some(16));
    assert_eq!(shifted(1), 1);
    assert_eq!(shifted_cache().cache().capacity(), Some(1024));
    assert_eq!(arithmetic(1), 1);
    assert_eq!(arithmetic_cache().cache().capacity(), Some(136));
    assert_eq!(called(1), 1);
    assert_eq!(called_cache().cache().capacity(), Some(32));
    assert_eq!(Repo.get(1), 1);
    assert_eq!(Repo::get_cache().cache().capacity(), Some(5));
    assert_eq!(Typed(0u8).get(1), 1);
    assert_eq!(Typed::<u8>::get_cache().cache().capacity(), Some(3));
}
