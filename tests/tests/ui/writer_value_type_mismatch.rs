use memokit::{cache_put, cached};

#[derive(Clone)]
struct User {
    id: u64,
}

#[cached]
fn load_user(id: u64) -> Result<User, String> {
    Ok(User { id })
}

#[cache_put(load_user, key = id)]
fn rename_user(id: u64, name: String) -> Result<String, String> {
    Ok(name)
}

// An `Option` is stored whole, and `load_user` does not cache `Option<User>`.
#[cache_put(load_user, key = user.id)]
fn save_user(user: User) -> Option<User> {
    Some(user)
}

fn main() {}
