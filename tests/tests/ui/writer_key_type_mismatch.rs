use memokit::{cache_evict, cache_put, cached};

#[derive(Clone)]
struct User {
    email: String,
}

#[cached]
fn load_user(id: u64) -> Option<String> {
    Some(format!("user {id}"))
}

#[cache_put(load_user, key = user.email)]
fn save_user(user: User) -> Option<String> {
    Some(user.email)
}

// The default key: the only argument.
#[cache_evict(load_user)]
fn delete_user(name: &str) -> bool {
    name.is_empty()
}

#[cache_evict(load_user, key = (id, name))]
fn rename_user(id: u64, name: &str) {}

// Stacked: the second attribute's key is wrong.
#[cache_evict(load_user, key = id)]
#[cache_evict(load_user, key = name)]
fn replace_user(id: u64, name: String) {}

fn main() {}
