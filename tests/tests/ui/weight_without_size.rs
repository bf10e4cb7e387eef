use memokit::cached;

fn weigh(_key: &u32, value: &Vec<u8>) -> u32 {
    value.len() as u32
}

#[cached(weight = weigh)]
fn blob(id: u32) -> Vec<u8> {
    vec![0; id as usize]
}

fn main() {}
