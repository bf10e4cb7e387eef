use memokit::{cache_evict, cache_put, cached};

#[cached]
fn load_user(id: u64) -> u64 {
    id
}

#[cache_evict(load_user, all)]
struct Config {
    verbose: bool,
}

#[cache_put(load_user, key = id)]
fn returns_nothing(id: u64) {}

#[cache_evict(load_user, key = id)]
const fn constant(id: u64) -> u64 {
    id
}

#[cache_evict(load_user, key = id)]
fn returns_impl_trait(id: u64) -> impl std::fmt::Debug {
    id
}

// Cached writers: in either order.
#[cache_evict(load_user, all)]
#[cached]
fn cached_below(id: u64) -> u64 {
    id
}

#[cached]
#[cache_put(load_user, key = id)]
fn cached_above(id: u64) -> u64 {
    id
}

trait Store {
    #[cache_evict(load_user, key = id)]
    fn delete(&self, id: u64);
}

fn main() {}
