use memokit::{cached, Memo};

#[cached(instance = cache)]
fn free(n: u32) -> u32 {
    n
}

struct Repo {
    cache: Memo<u32, u32>,
}

impl Repo {
    #[cached(instance = cache)]
    fn by_value(self, n: u32) -> u32 {
        n
    }

    #[cached(instance = cache, redis)]
    fn shared(&self, n: u32) -> u32 {
        n
    }

    #[cached(instance = self.cache)]
    fn path(&self, n: u32) -> u32 {
        n
    }
}

fn main() {}
