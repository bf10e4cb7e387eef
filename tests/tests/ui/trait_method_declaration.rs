use memokit::cached;

trait Repo {
    #[cached(key = id)]
    fn get(&self, id: u64) -> u64;
}

fn main() {}
