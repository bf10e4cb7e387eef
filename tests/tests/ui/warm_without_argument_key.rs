//! `warm` needs a function whose key is its arguments: not one with `key = …` or `#[skip]`,
//! not a method, not one with a `&'static` argument.

use memokit::cached;

#[cached(key = id)]
fn row(id: u64, _trace_id: u128) -> String {
    format!("row {id}")
}

#[cached]
fn name_len(name: &'static str) -> usize {
    name.len()
}

#[cached]
fn traced(id: u64, #[skip] trace_id: u128) -> String {
    format!("row {id} traced {trace_id}")
}

struct Repo {
    tenant: u32,
}

impl Repo {
    #[cached(key = (id, self.tenant), key_type = (u64, u32))]
    fn get(&self, id: u64) -> String {
        format!("row {id} of tenant {}", self.tenant)
    }
}

fn main() {
    row_cache().warm([1, 2]);
    Repo::get_cache().warm_with_parallelism([(1, 7)], 4);
    name_len_cache().warm(["a".to_string()]);
    traced_cache().warm([1]);
}
