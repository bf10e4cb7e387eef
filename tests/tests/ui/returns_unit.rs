use memokit::cached;

#[cached]
fn log(line: String) -> () {
    println!("{line}");
}

fn main() {}
