//! The floor: the work a sign-in cannot avoid on the server's side, measured
//! in the same run as the scenarios it is compared with. A full cycle makes
//! four calls (create, list, respond, get) and, on the server, verifies two
//! device signatures (list and respond) and signs once (the challenge
//! context). Its floor is therefore the server's CPU for four of the
//! cheapest calls it answers (health checks, measured at the same
//! concurrency) plus two strict Ed25519 verifications and one signature,
//! timed here with the same crate and build profile as the server's. No
//! server can do a cycle for less; the multiple of it that a scenario costs
//! is what is left to drive down, and it compares across machines.

use ed25519_dalek::{Signer, SigningKey};
use std::time::Duration;

/// Calls a full cycle makes.
pub const CYCLE_CALLS: f64 = 4.0;

/// Signing and verifying, the way the server does for one cycle, this many
/// times, to time them.
const ROUNDS: u32 = 2_000;

/// The server's CPU per 1,000 cycles at the floor, in milliseconds, given
/// its CPU per 1,000 health checks in this run.
pub fn ms_per_1000_cycles(health_check_ms_per_1000: f64) -> f64 {
    CYCLE_CALLS * health_check_ms_per_1000 + signatures_ms_per_1000_cycles()
}

/// Two strict verifications and one signature, per 1,000 cycles, in CPU
/// milliseconds of this process (which is otherwise idle while this runs).
pub fn signatures_ms_per_1000_cycles() -> f64 {
    let server = SigningKey::from_bytes(&[7; 32]);
    let device = SigningKey::from_bytes(&[9; 32]);
    let device_public = device.verifying_key();
    // Messages the size of the signed device request and challenge context.
    let request = [0x5a_u8; 160];
    let signature = device.sign(&request);
    let before = crate::server::cpu_time(std::process::id());
    for round in 0..ROUNDS {
        let mut context = [0x33_u8; 200];
        context[..4].copy_from_slice(&round.to_le_bytes());
        std::hint::black_box(server.sign(std::hint::black_box(&context)));
        for _ in 0..2 {
            device_public
                .verify_strict(std::hint::black_box(&request), &signature)
                .expect("a valid signature");
        }
    }
    let spent: Duration = crate::server::cpu_time(std::process::id()).saturating_sub(before);
    spent.as_secs_f64() * 1000.0 * 1000.0 / f64::from(ROUNDS)
}
