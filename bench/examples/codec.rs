//! The tiers' codec on a few value shapes: the bytes stored and the time to encode and decode,
//! for postcard as memokit stores it (compressed with LZ4 above 1 KiB when that saves bytes),
//! postcard never compressed, and the JSON envelope of `redis(codec = json)`; with
//! `--features zstd`, zstd level 1 of the same postcard bytes beside them. A short
//! measurement (about two seconds), not a benchmark: each time is the mean of repeated runs
//! for at least 20 ms, after one run to warm up.
//!
//! ```sh
//! cargo run -p memokit-bench --release --example codec
//! cargo run -p memokit-bench --release --example codec --features zstd
//! ```
//!
//! The figures and how to read them are in `bench/results/CODEC.md`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use memokit::__private::codec::{decode_value, encode_value, Encoding};
use memokit::redis::Codec;
use memokit_bench::machine::Machine;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A small deterministic generator (xorshift64), so that every run measures the same values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const NAMES: [&str; 8] = [
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "Ken Thompson",
];
const CITIES: [&str; 5] = ["Lyon", "Porto", "Leipzig", "Turin", "Ghent"];
const STATUSES: [&str; 4] = ["pending", "paid", "shipped", "delivered"];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct User {
    id: u64,
    name: String,
    email: String,
    city: String,
    active: bool,
    created_at: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: User,
    status: String,
    placed_at: u64,
    lines: Vec<Line>,
    note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Line {
    sku: String,
    title: String,
    quantity: u32,
    unit_cents: u64,
}

fn user(rng: &mut Rng, id: u64) -> User {
    let name = rng.pick(&NAMES);
    User {
        id,
        name: name.to_string(),
        email: format!("{}.{id}@example.com", name.to_lowercase().replace(' ', ".")),
        city: rng.pick(&CITIES).to_string(),
        active: rng.below(10) > 0,
        created_at: 1_700_000_000 + rng.below(30_000_000),
    }
}

fn order(rng: &mut Rng, id: u64, lines: u64) -> Order {
    let customer = 1_000 + rng.below(500);
    Order {
        id,
        customer: user(rng, customer),
        status: rng.pick(&STATUSES).to_string(),
        placed_at: 1_730_000_000 + id * 37,
        lines: (0..lines)
            .map(|_| {
                let sku = rng.below(400);
                Line {
                    sku: format!("SKU-{sku:05}"),
                    title: format!("Catalogue item {sku} ({} pack)", 1 + sku % 6),
                    quantity: 1 + rng.below(4) as u32,
                    unit_cents: 99 + sku * 25,
                }
            })
            .collect(),
        note: (rng.below(4) == 0).then(|| "leave with the neighbour".to_string()),
    }
}

/// An HTML page of `rows` table rows.
fn page(rng: &mut Rng, rows: u64) -> String {
    let mut html = String::from("<html><head><title>Orders</title></head><body><table>\n");
    for row in 0..rows {
        html.push_str(&format!(
            "<tr class=\"row\"><td>{row}</td><td>{}</td><td>{}</td><td>{}.{:02} EUR</td></tr>\n",
            rng.pick(&NAMES),
            rng.pick(&STATUSES),
            rng.below(500),
            rng.below(100)
        ));
    }
    html.push_str("</table></body></html>\n");
    html
}

/// Stored bytes and times of one way of storing one value.
struct Way {
    bytes: usize,
    encode: Duration,
    decode: Duration,
}

/// The mean time of `run`, repeated for at least 20 ms after one run to warm up.
fn time(mut run: impl FnMut()) -> Duration {
    run();
    let (mut runs, started) = (0_u32, Instant::now());
    while started.elapsed() < Duration::from_millis(20) || runs < 5 {
        run();
        runs += 1;
    }
    started.elapsed() / runs
}

fn measure<V>(value: &V, encoding: Encoding) -> Way
where
    V: Serialize + DeserializeOwned + PartialEq,
{
    let stored = encode_value(value, encoding).expect("encodes");
    assert!(
        decode_value::<V>(&stored).as_ref() == Some(value),
        "round trip"
    );
    Way {
        bytes: stored.len(),
        encode: time(|| {
            black_box(encode_value(black_box(value), encoding));
        }),
        decode: time(|| {
            black_box(decode_value::<V>(black_box(&stored)));
        }),
    }
}

/// zstd level 1 of the postcard bytes (the 6-byte header aside), timed with the postcard step.
#[cfg(feature = "zstd")]
fn measure_zstd<V>(value: &V) -> Option<Way>
where
    V: Serialize + DeserializeOwned + PartialEq,
{
    let plain = Encoding {
        codec: Codec::Postcard,
        compress_above: usize::MAX,
    };
    let stored = encode_value(value, plain).expect("encodes");
    let packed = zstd::bulk::compress(&stored[6..], 1).expect("compresses");
    let length = stored.len() - 6;
    Some(Way {
        bytes: 6 + packed.len(),
        encode: time(|| {
            let bytes = encode_value(black_box(value), plain).unwrap();
            black_box(zstd::bulk::compress(&bytes[6..], 1).unwrap());
        }),
        decode: time(|| {
            let bytes = zstd::bulk::decompress(black_box(&packed), length).unwrap();
            let mut whole = stored[..6].to_vec();
            whole.extend_from_slice(&bytes);
            black_box(decode_value::<V>(&whole));
        }),
    })
}

#[cfg(not(feature = "zstd"))]
fn measure_zstd<V>(_value: &V) -> Option<Way> {
    None
}

fn micros(duration: Duration) -> String {
    let micros = duration.as_secs_f64() * 1e6;
    if micros < 10.0 {
        format!("{micros:.2}")
    } else {
        format!("{micros:.0}")
    }
}

fn percent(part: usize, whole: usize) -> String {
    format!("{:.0} %", 100.0 * part as f64 / whole as f64)
}

fn row<V>(shape: &str, value: &V)
where
    V: Serialize + DeserializeOwned + PartialEq,
{
    let never = Encoding {
        codec: Codec::Postcard,
        compress_above: usize::MAX,
    };
    let json = Encoding {
        codec: Codec::Json,
        ..Encoding::DEFAULT
    };
    let plain = measure(value, never);
    let stored = measure(value, Encoding::DEFAULT);
    let json = measure(value, json);
    let layout = if encode_value(value, Encoding::DEFAULT).unwrap()[1] == 1 {
        "LZ4"
    } else {
        "plain"
    };
    let zstd = match measure_zstd(value) {
        Some(way) => format!(
            "{} ({}) | {} / {}",
            way.bytes,
            percent(way.bytes, plain.bytes),
            micros(way.encode),
            micros(way.decode)
        ),
        None => "– | –".to_string(),
    };
    println!(
        "| {shape} | {} | {} ({}, {layout}) | {} ({}) | {} / {} | {} / {} | {} / {} | {zstd} |",
        plain.bytes,
        stored.bytes,
        percent(stored.bytes, plain.bytes),
        json.bytes,
        percent(json.bytes, plain.bytes),
        micros(plain.encode),
        micros(plain.decode),
        micros(stored.encode),
        micros(stored.decode),
        micros(json.encode),
        micros(json.decode),
    );
}

fn main() {
    let machine = Machine::detect();
    println!(
        "{} cores ({}), {}, {}, load {} at start\n",
        machine.cores, machine.cpu, machine.os, machine.rustc, machine.load_at_start
    );
    println!(
        "| shape | postcard bytes | stored (default) | JSON envelope | postcard µs enc / dec | \
         stored µs enc / dec | JSON µs enc / dec | zstd-1 bytes | zstd-1 µs enc / dec |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    row("a user (struct of 6 fields)", &user(&mut rng, 42));
    row("an order, 5 lines", &order(&mut rng, 1, 5));
    row("an order, 40 lines", &order(&mut rng, 2, 40));
    let orders = |rng: &mut Rng, n: u64| -> Vec<Order> {
        (0..n).map(|id| order(rng, id, 1 + id % 10)).collect()
    };
    row("20 orders", &orders(&mut rng, 20));
    row("200 orders", &orders(&mut rng, 200));
    row("1,000 orders", &orders(&mut rng, 1_000));
    row("an HTML page, 300 rows", &page(&mut rng, 300));
    let readings: Vec<f64> = (0..4_000)
        .map(|n| 20.0 + (n as f64 / 50.0).sin() * 5.0 + rng.below(1_000) as f64 / 1_000.0)
        .collect();
    row("4,000 sensor readings (f64)", &readings);
    let noise: Vec<u8> = (0..8_192).map(|_| rng.next() as u8).collect();
    row("8 KiB of random bytes", &noise);
}
