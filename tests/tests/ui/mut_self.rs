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

    // The same receiver written out, and pinned.
    #[cached(key = id)]
    fn explicit(self: &mut Self, id: u64) -> u64 {
        self.calls += 1;
        id
    }

    #[cached(key = id)]
    fn pinned(self: std::pin::Pin<&mut Self>, id: u64) -> u64 {
        id
    }
}

fn main() {}
