use memokit::cached;

struct Counter {
    calls: u64,
}

impl Counter {
    #[cached(key = id)]
    fn get(&mut self, id: u64) -> u64 {
        self.calls += 1;
        id
    }
}

fn main() {}
