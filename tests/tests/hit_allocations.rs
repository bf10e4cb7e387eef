//! A hit allocates nothing: a `#[cached]` function looks its key up in the form its arguments
//! hold it (`&str`, `&[u8]`, `&T`, a tuple of borrowed and owned arguments) and builds the
//! owned key (`String`, `Vec<u8>`, `T`, …) only on a miss. Counted by a global allocator that
//! counts the allocations of the thread that asks, between two points.

// A global allocator is an `unsafe impl`; it only counts and hands every call to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use memokit::{cached, Cache};

struct Counting;

thread_local! {
    /// Whether this thread's allocations are counted now, and how many there were.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_one() {
    // `try_with`: no panic in the allocator while the thread's locals are torn down. Both are
    // `const` cells without destructors, so reading them allocates nothing.
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        }
    });
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so `System`'s
// guarantees are this allocator's; counting touches no memory the allocator hands out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: forwarded as is; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_one();
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_one();
        // SAFETY: `ptr` was allocated by `System` (every allocation goes there) with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// How many times `f` allocated on this thread.
fn allocations_in(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|count| count.set(0));
    COUNTING.with(|counting| counting.set(true));
    f();
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.with(Cell::get)
}

const HITS: u64 = 1_000;

#[cached]
fn by_str(name: &str) -> usize {
    name.len()
}

#[cached]
fn by_slice(bytes: &[u8]) -> usize {
    bytes.len()
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct User {
    name: String,
    id: u64,
}

#[cached]
fn by_struct(user: &User) -> u64 {
    user.id
}

#[cached]
fn by_str_and_u32(name: &str, n: u32) -> usize {
    name.len() + n as usize
}

#[cached]
fn by_u64(n: u64) -> u64 {
    n * 2
}

#[cached(key = (name, n))]
fn by_named_key(name: &str, n: u32, _unused: &[u8]) -> usize {
    name.len() + n as usize
}

#[cached]
async fn by_str_async(name: &str) -> usize {
    name.len()
}

struct Service {
    base: usize,
}

impl Service {
    #[cached(key = name)]
    fn method(&self, name: &str) -> usize {
        self.base + name.len()
    }
}

/// Polls `future` once: a hit is ready at once (and a noop waker allocates nothing).
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a hit is ready on its first poll"),
    }
}

/// A key shape's name and a call that hits.
type Call<'a> = (&'static str, Box<dyn Fn() + 'a>);

#[test]
fn hits_allocate_nothing_for_any_key_shape() {
    let name = "a name long enough to be allocated".to_string();
    let bytes = vec![7u8; 64];
    let user = User {
        name: name.clone(),
        id: 3,
    };
    let service = Service { base: 1 };
    let cache: Cache<String, usize> = Cache::new(10);
    cache.insert(name.clone(), 1);

    // Warm-up: the first call of each computes and stores (and builds its `static` handle).
    let calls: Vec<Call<'_>> = vec![
        (
            "&str",
            Box::new(|| assert_eq!(by_str(black_box(&name)), 34)),
        ),
        (
            "&[u8]",
            Box::new(|| assert_eq!(by_slice(black_box(&bytes)), 64)),
        ),
        (
            "&User",
            Box::new(|| assert_eq!(by_struct(black_box(&user)), 3)),
        ),
        (
            "(&str, u32)",
            Box::new(|| assert_eq!(by_str_and_u32(black_box(&name), black_box(5)), 39)),
        ),
        ("u64", Box::new(|| assert_eq!(by_u64(black_box(21)), 42))),
        (
            "key = (&str, u32)",
            Box::new(|| assert_eq!(by_named_key(&name, 5, black_box(&bytes)), 39)),
        ),
        (
            "async &str",
            Box::new(|| assert_eq!(ready(by_str_async(black_box(&name))), 34)),
        ),
        (
            "&self, key = &str",
            Box::new(|| assert_eq!(service.method(black_box(&name)), 35)),
        ),
        (
            "Cache<String, _>::get(&str)",
            Box::new(|| assert_eq!(cache.get(black_box(name.as_str())), Some(1))),
        ),
    ];
    for (_, call) in &calls {
        call();
    }

    let counts: Vec<(&str, u64)> = calls
        .iter()
        .map(|(shape, call)| {
            let allocations = allocations_in(|| {
                for _ in 0..HITS {
                    call();
                }
            });
            (*shape, allocations)
        })
        .collect();
    eprintln!("allocations in {HITS} hits: {counts:?}");
    assert!(
        counts.iter().all(|&(_, allocations)| allocations == 0),
        "allocations in {HITS} hits: {counts:?}"
    );

    // They were hits, each counted once, and no call computed again.
    for (stats, name) in [
        (by_str_cache().stats(), "&str"),
        (by_slice_cache().stats(), "&[u8]"),
        (by_struct_cache().stats(), "&User"),
        (by_str_and_u32_cache().stats(), "(&str, u32)"),
        (by_u64_cache().stats(), "u64"),
        (by_named_key_cache().stats(), "key = (&str, u32)"),
        (by_str_async_cache().stats(), "async &str"),
        (Service::method_cache().stats(), "&self"),
    ] {
        assert_eq!(
            (stats.hits, stats.misses, stats.loads),
            (HITS, 1, 1),
            "{name}"
        );
    }
    assert_eq!(cache.stats().hits, HITS + 1);
}

#[cached]
fn missed(name: &str, n: u32) -> usize {
    name.len() + n as usize
}

/// The counter counts: a call that must build its owned key (a miss of a `&str`) allocates, so
/// the zeros above are not the counter missing allocations.
#[test]
fn a_miss_allocates_its_owned_key() {
    missed("warm-up", 0);
    let misses = allocations_in(|| {
        for n in 1..=10u32 {
            assert_eq!(missed("miss", black_box(n)), 4 + n as usize);
        }
    });
    assert!(misses >= 10, "{misses} allocations in 10 misses");
    assert_eq!(missed_cache().get(&("miss".to_string(), 1)), Some(5));
}
