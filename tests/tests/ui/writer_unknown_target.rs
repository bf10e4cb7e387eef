use memokit::{cache_evict, cache_put, cached};

#[cached]
fn load_user(id: u64) -> String {
    format!("user {id}")
}

fn not_cached(id: u64) -> String {
    format!("user {id}")
}

mod users {}

// A typo.
#[cache_put(load_usr, key = id)]
fn save_user(id: u64) -> String {
    format!("saved {id}")
}

// A function that is not `#[cached]`.
#[cache_evict(not_cached, key = id)]
fn delete_user(id: u64) {}

// A module without it.
#[cache_evict(users::load_user, key = id)]
fn forget_user(id: u64) {}

struct Repo;

impl Repo {
    fn get(&self, id: u64) -> String {
        format!("row {id}")
    }

    // A method that is not `#[cached]`.
    #[cache_evict(Self::get, key = id)]
    fn delete(&self, id: u64) {}
}

fn main() {
    let _ = (load_user(1), not_cached(1), Repo.get(1));
}
