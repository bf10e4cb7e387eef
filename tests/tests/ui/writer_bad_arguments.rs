use memokit::{cache_evict, cache_put, cached};

#[cached]
fn load_user(id: u64) -> u64 {
    id
}

#[cache_put]
fn no_target(id: u64) -> u64 {
    id
}

#[cache_evict(key = id)]
fn key_but_no_target(id: u64) {}

#[cache_put(load_user, key = id, key = id + 1, keys = 3)]
fn twice_and_unknown(id: u64) -> u64 {
    id
}

#[cache_put(load_user, key = id, before = true, all)]
fn evict_options_on_put(id: u64) -> u64 {
    id
}

#[cache_evict(load_user, key = id, all, befor = true)]
fn all_and_key(id: u64) {}

#[cache_evict(load_user, before, all = true)]
fn without_values(id: u64) {}

#[cache_evict(load_user, before = 1)]
fn before_not_a_flag(id: u64) {}

#[cache_evict(load_user)]
fn key_needed(id: u64, name: &str) {}

#[cache_put(load_user)]
fn key_needed_no_arguments() -> u64 {
    1
}

#[cache_evict(Users::<u64>::load_user, all)]
fn generic_target() {}

fn main() {}
