//! The short, stable-Rust run of the fuzz targets that `make test` includes:
//! every committed seed, then a bounded number of mutations of them from a
//! fixed random seed (`FUZZ_REPLAY_SEED` picks another, `FUZZ_REPLAY_MUTATIONS`
//! another count). Coverage-guided fuzzing is `make fuzz`.

use rand::{rngs::StdRng, Rng, SeedableRng};
use std::path::Path;

/// The seeds of a target, sorted by name.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// A random change of `input`: flipped bits, new bytes, cuts and splices.
fn mutate(rng: &mut StdRng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.gen_range(1..4) {
        let at = rng.gen_range(0..=out.len());
        match rng.gen_range(0..5) {
            0 if at < out.len() => out[at] ^= 1 << rng.gen_range(0..8),
            1 => out.insert(at, rng.gen()),
            2 if at < out.len() => {
                out.remove(at);
            }
            3 => out.truncate(at),
            _ => {
                let from = rng.gen_range(0..=other.len());
                out.splice(at..at, other[from..].iter().copied().take(16));
            }
        }
    }
    out
}

fn replay(target: &str, check: fn(&[u8])) {
    let seeds = seeds(target);
    for seed in &seeds {
        check(seed);
    }
    let seed = std::env::var("FUZZ_REPLAY_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7);
    let count: usize = std::env::var("FUZZ_REPLAY_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..count {
        let input = &seeds[rng.gen_range(0..seeds.len())];
        let other = &seeds[rng.gen_range(0..seeds.len())];
        let mutated = mutate(&mut rng, input, other);
        let outcome = std::panic::catch_unwind(|| check(&mutated));
        if outcome.is_err() {
            panic!("{target} failed on {mutated:?} (FUZZ_REPLAY_SEED={seed})");
        }
    }
}

#[test]
fn enrollment_uri() {
    replay("enrollment_uri", mfa_fuzz::enrollment_uri);
}

#[test]
fn signed_bytes() {
    replay("signed_bytes", mfa_fuzz::signed_bytes);
}

#[test]
fn push_payload() {
    replay("push_payload", mfa_fuzz::push_payload);
}

#[test]
fn request_decoding() {
    replay("request_decoding", mfa_fuzz::request_decoding);
}
