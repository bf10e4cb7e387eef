use memokit::{cache_evict, cached, Memo};

// A type parameter needs what a cache needs of it: here `'static` is missing.
#[cached]
fn echo<T: Clone + std::hash::Hash + Eq + Send + Sync>(value: T) -> T {
    value
}

#[cached]
fn repeat<const N: usize>(text: &str) -> String {
    text.repeat(N)
}

struct Session {
    names: Memo<u64, String>,
}

impl Session {
    #[cached(instance = names)]
    fn name<T: 'static>(&self, id: u64) -> String {
        id.to_string()
    }
}

#[cached]
fn plain(id: u64) -> u64 {
    id
}

// `plain` is not generic: naming an instantiation of it is the compiler's error.
#[cache_evict(plain::<u8>, all)]
fn forget_all() {}

fn main() {}
