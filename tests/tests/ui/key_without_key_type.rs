use memokit::cached;

struct Repo {
    tenant: u32,
}

impl Repo {
    #[cached(key = (id, self.tenant))]
    fn get(&self, id: u64) -> String {
        format!("row {id} of tenant {}", self.tenant)
    }
}

fn main() {}
