use memokit::cached;

struct Repo;

impl Repo {
    #[cached]
    fn get(&self, id: u64) -> String {
        format!("row {id}")
    }
}

fn main() {}
