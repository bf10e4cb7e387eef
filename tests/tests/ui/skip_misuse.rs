use memokit::cached;

struct Db;

// `#[skip]` beside `key = …`: two answers to one question.
#[cached(key = id)]
fn user(id: u64, #[skip] db: &Db) -> String {
    let _ = db;
    format!("user {id}")
}

// `#[skip]` with arguments.
#[cached]
fn order(id: u64, #[skip(always)] db: &Db) -> String {
    let _ = db;
    format!("order {id}")
}

struct Repo;

impl Repo {
    // `self` is never in the key.
    #[cached]
    fn row(#[skip] &self, id: u64, #[skip] db: &Db) -> String {
        let _ = db;
        format!("row {id}")
    }
}

fn main() {}
