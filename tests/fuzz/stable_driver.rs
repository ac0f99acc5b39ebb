//! A stable, coverage-less fuzz driver for the same targets (`STABLE=1 tests/fuzz/run.sh`): random
//! mutations of seed files and of earlier inputs, each input through the target under
//! catch_unwind; the input about to run is kept in LAST so an abort can be recovered.
//! Usage: fuzz_stable TARGET SECONDS OUTDIR SEEDDIR...

// Built as an example of distill-data (a link made by run.sh): the targets' file by its place.
mod targets {
    include!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fuzz/fuzz_targets/targets.rs"));
}

use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

const TOKENS: &[&[u8]] = &[
    b":",
    b"\n",
    b"- ",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b"\"",
    b"'",
    b"null",
    b"~",
    b"1e999",
    b"-1",
    b"0",
    b"1.5",
    b"NaN",
    b"inf",
    b"-inf",
    b"18446744073709551616",
    b"&a",
    b"*a",
    b"!!binary",
    b"<<: ",
    b"kind: ",
    b"version: 1\n",
    b"extends: ",
    b"data:",
    b"source:",
    b"checks:",
    b"sweep:",
    b"grid:",
    b"teacher:",
    b"student:",
    b"model:",
    b"hidden: [",
    b"layers:",
    b"conv:",
    b"train:",
    b"epochs: ",
    b"batch: ",
    b"augment:",
    b"copies: ",
    b"predicate: ",
    b"label: ",
    b"path: ",
    b"\r\n",
    b"\t",
    b";",
    b"|",
    b"PAR1",
    b"\x1f\x8b",
    b"\0\0\x08\x03",
    b"\0\0\x08\x01",
    b"#",
    b"id: ",
    b"top_k: ",
    b"warmup_epochs: ",
];

fn mutate(rng: &mut impl Rng, input: &mut Vec<u8>, pool: &[Vec<u8>]) {
    for _ in 0..rng.gen_range(1..8) {
        let n = input.len();
        match rng.gen_range(0..8) {
            0 if n > 0 => {
                let i = rng.gen_range(0..n);
                input[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if n > 0 => {
                let i = rng.gen_range(0..n);
                input[i] = rng.gen();
            }
            2 => {
                let i = rng.gen_range(0..=n);
                input.insert(i, rng.gen());
            }
            3 if n > 1 => {
                let a = rng.gen_range(0..n);
                let b = (a + rng.gen_range(1..=n.min(64))).min(n);
                input.drain(a..b);
            }
            4 if n > 1 => {
                let a = rng.gen_range(0..n);
                let b = (a + rng.gen_range(1..=n.min(256))).min(n);
                let piece: Vec<u8> = input[a..b].to_vec();
                let at = rng.gen_range(0..=n);
                input.splice(at..at, piece);
            }
            5 if !pool.is_empty() => {
                let other = &pool[rng.gen_range(0..pool.len())];
                if !other.is_empty() {
                    let a = rng.gen_range(0..other.len());
                    let b = (a + rng.gen_range(1..=other.len().min(512))).min(other.len());
                    let at = rng.gen_range(0..=n);
                    input.splice(at..at, other[a..b].iter().copied());
                }
            }
            6 if n > 0 => input.truncate(rng.gen_range(0..n)),
            _ => {
                let t = TOKENS[rng.gen_range(0..TOKENS.len())];
                let at = rng.gen_range(0..=n);
                input.splice(at..at, t.iter().copied());
            }
        }
    }
    input.truncate(1 << 16);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (target, seconds, out) = (&args[1], args[2].parse::<u64>().unwrap(), std::path::PathBuf::from(&args[3]));
    let run: fn(&[u8]) = match target.as_str() {
        "recipe" => targets::recipe,
        "load_csv" => targets::csv,
        "load_parquet" => targets::parquet,
        "load_idx" => targets::idx,
        t => panic!("unknown target {t}"),
    };
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for dir in &args[4..] {
        for e in walk(std::path::Path::new(dir)) {
            if let Ok(b) = std::fs::read(&e) {
                seeds.push(b);
            }
        }
    }
    seeds.push(Vec::new());
    std::fs::create_dir_all(&out).unwrap();
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(std::process::id() as u64 ^ Instant::now().elapsed().as_nanos() as u64 ^ 0x5eed);
    let mut pool: Vec<Vec<u8>> = seeds.clone();
    let (start, mut execs, mut panics, mut slowest) = (Instant::now(), 0u64, 0u64, Duration::ZERO);
    let last = out.join("LAST");
    while start.elapsed() < Duration::from_secs(seconds) {
        let mut input = if rng.gen_bool(0.5) { seeds[rng.gen_range(0..seeds.len())].clone() } else { pool[rng.gen_range(0..pool.len())].clone() };
        mutate(&mut rng, &mut input, &pool);
        std::fs::write(&last, &input).unwrap();
        let t = Instant::now();
        let result = std::panic::catch_unwind(|| run(&input));
        let took = t.elapsed();
        if took > slowest {
            slowest = took;
            std::fs::write(out.join("slowest"), &input).unwrap();
        }
        execs += 1;
        if result.is_err() {
            panics += 1;
            std::fs::write(out.join(format!("panic-{execs}")), &input).unwrap();
        }
        if pool.len() < 4096 {
            pool.push(input);
        } else {
            let i = rng.gen_range(0..pool.len());
            pool[i] = input;
        }
    }
    println!("{target}: {execs} inputs in {:.0} s, {panics} panics, slowest input {:.3} s", start.elapsed().as_secs_f64(), slowest.as_secs_f64());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(list) = std::fs::read_dir(dir) {
        for e in list.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
