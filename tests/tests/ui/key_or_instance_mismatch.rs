use memokit::{cached, Memo};

#[cached(key = id, key_type = u32)]
fn by_id(id: u64) -> u64 {
    id
}

struct Repo {
    cache: Memo<String, u64>,
}

impl Repo {
    #[cached(instance = cache)]
    fn get(&self, id: u64) -> u64 {
        id
    }
}

struct Counter {
    count: u32,
}

impl Counter {
    #[cached(instance = count)]
    fn get(&self, id: u64) -> u64 {
        id
    }
}

fn main() {}
