use memokit::cached;

struct Repo;

impl Repo {
    #[cached(key = id, lru)]
    fn get(&self, id: u64) -> String {
        format!("row {id}")
    }
}

fn main() {}
