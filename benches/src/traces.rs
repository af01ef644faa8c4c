//! The ARC cache traces from ../shared/peers/cache-traces, expanded to keys, and the best hit ratio any
//! peer reached on each (the README's table).

use std::io::Read;
use std::path::PathBuf;

/// The keys one trace asks for, in order: each `.lis` line `start count _ _` is `count` accesses to
/// `start, start + 1, ...`.
pub fn load(name: &str) -> Vec<u64> {
    let path = trace_dir().join(format!("{name}.lis.zst"));
    let file = std::fs::File::open(&path).unwrap_or_else(|error| panic!("opening {}: {error}", path.display()));
    let mut text = String::new();
    ruzstd::decoding::StreamingDecoder::new(std::io::BufReader::new(file))
        .unwrap_or_else(|error| panic!("{}: not zstd: {error}", path.display()))
        .read_to_string(&mut text)
        .unwrap_or_else(|error| panic!("decompressing {}: {error}", path.display()));
    let mut keys = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace().map(|field| field.parse::<u64>());
        match (fields.next(), fields.next()) {
            (Some(Ok(start)), Some(Ok(count))) => keys.extend(start..start + count),
            _ => panic!("{}:{}: not `start count ...`: {line:?}", path.display(), number + 1),
        }
    }
    keys
}

fn trace_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/peers/cache-traces")
}

/// The README's rows: trace, capacity, and the best hit ratio (percent) any peer reached there (for theine,
/// a range in the README, its upper end).
pub const ROWS: [(&str, u64, f64); 6] = [
    ("OLTP", 256, 23.9),
    ("OLTP", 512, 32.9),
    ("OLTP", 1000, 39.7),
    ("OLTP", 2000, 46.4),
    ("P3", 20_000, 12.52),
    ("P3", 160_000, 53.81),
];
