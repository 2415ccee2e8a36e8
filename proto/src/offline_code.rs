//! Offline codes: time-based one-time passwords (TOTP, RFC 6238) that a
//! person types when the phone has no network and a push cannot reach it.
//!
//! The parameters are the ones every authenticator app uses: HMAC-SHA-1,
//! a 30-second time step counted from the Unix epoch, 6 decimal digits, and
//! a 20-byte (160-bit) secret per device, which the server hands to the
//! device once, in `CompleteEnrollmentResponse.offline_code_secret`. The
//! server and the SDK both compute codes here, so that they cannot differ;
//! `docs/protocol.md` ("Offline codes") specifies the same for native apps.

use ring::hmac;

/// Length of a device's offline-code secret, in bytes (RFC 4226's
/// recommended 160 bits, the output size of HMAC-SHA-1).
pub const SECRET_LENGTH: usize = 20;
/// Digits of a code.
pub const DIGITS: u32 = 6;
/// Seconds per time step (RFC 6238's `X`); steps count from the Unix epoch
/// (`T0 = 0`).
pub const TIME_STEP_SECONDS: i64 = 30;
/// Time steps accepted on either side of the server's current one, for
/// clocks that are slightly off and codes typed as the step turns.
pub const SKEW_STEPS: i64 = 1;

/// The time step (RFC 6238's `T`) at `unix_ms` milliseconds since the Unix
/// epoch; times before the epoch are step 0.
pub fn time_step(unix_ms: i64) -> i64 {
    unix_ms.max(0) / 1000 / TIME_STEP_SECONDS
}

/// Whole seconds until the step at `unix_ms` ends (1 to 30): how long the
/// current code stays valid on the phone.
pub fn seconds_left(unix_ms: i64) -> i64 {
    TIME_STEP_SECONDS - (unix_ms.max(0) / 1000) % TIME_STEP_SECONDS
}

/// The HOTP value (RFC 4226) of `secret` at `counter`, as `digits` decimal
/// digits with leading zeros (1 to 9 digits).
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    assert!((1..=9).contains(&digits), "1 to 9 digits");
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = hmac::sign(&key, &counter.to_be_bytes());
    let mac = mac.as_ref();
    // Dynamic truncation (RFC 4226, 5.3): the low nibble of the last byte
    // picks four bytes, whose top bit is dropped.
    let offset = usize::from(mac[mac.len() - 1] & 0x0f);
    let value = u32::from_be_bytes([
        mac[offset] & 0x7f,
        mac[offset + 1],
        mac[offset + 2],
        mac[offset + 3],
    ]);
    format!(
        "{:0width$}",
        value % 10u32.pow(digits),
        width = digits as usize
    )
}

/// The offline code of `secret` for time step `step` (6 digits).
pub fn code(secret: &[u8], step: i64) -> String {
    hotp(secret, step.max(0) as u64, DIGITS)
}

/// The offline code of `secret` at `unix_ms` milliseconds since the epoch.
pub fn code_at(secret: &[u8], unix_ms: i64) -> String {
    code(secret, time_step(unix_ms))
}

/// Whether `typed` has the form of a code: exactly 6 ASCII digits.
pub fn is_well_formed(typed: &str) -> bool {
    typed.len() == DIGITS as usize && typed.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SHA-1 secret of RFC 6238's appendix B (and RFC 4226's appendix D).
    const RFC_SECRET: &[u8] = b"12345678901234567890";

    /// RFC 6238, appendix B: the SHA-1 rows (time in seconds, `T` in hex,
    /// the 8-digit TOTP).
    #[test]
    fn rfc_6238_appendix_b_sha1_vectors() {
        let rows: [(i64, i64, &str); 6] = [
            (59, 0x1, "94287082"),
            (1_111_111_109, 0x023523EC, "07081804"),
            (1_111_111_111, 0x023523ED, "14050471"),
            (1_234_567_890, 0x0273EF07, "89005924"),
            (2_000_000_000, 0x03F940AA, "69279037"),
            (20_000_000_000, 0x27BC86AA, "65353130"),
        ];
        for (seconds, t, totp) in rows {
            let step = time_step(seconds * 1000);
            assert_eq!(step, t, "T at {seconds}");
            assert_eq!(hotp(RFC_SECRET, step as u64, 8), totp, "at {seconds}");
            // Our 6 digits are the same value modulo 10^6: its last six.
            assert_eq!(code(RFC_SECRET, step), totp[2..], "at {seconds}");
        }
    }

    /// RFC 4226, appendix D: HOTP of the same secret at counters 0 to 9.
    #[test]
    fn rfc_4226_appendix_d_vectors() {
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_SECRET, counter as u64, 6), *want, "{counter}");
        }
    }

    /// The committed vectors (`testdata/offline-code-vectors.json`), which
    /// `tests/interop/check_vectors.py` checks with Python's own HMAC.
    #[test]
    fn the_committed_vectors() {
        let text = include_str!("../testdata/offline-code-vectors.json");
        let all: serde_json::Value = serde_json::from_str(text).unwrap();
        let vectors = all["vectors"].as_array().unwrap();
        assert!(vectors.len() >= 10);
        for v in vectors {
            let secret = hex::decode(v["secret"].as_str().unwrap()).unwrap();
            let unix_ms = v["unix_ms"].as_i64().unwrap();
            assert_eq!(time_step(unix_ms), v["time_step"].as_i64().unwrap(), "{v}");
            assert_eq!(
                code_at(&secret, unix_ms),
                v["code"].as_str().unwrap(),
                "{v}"
            );
        }
    }

    #[test]
    fn steps_turn_every_thirty_seconds() {
        assert_eq!(time_step(0), 0);
        assert_eq!(time_step(29_999), 0);
        assert_eq!(time_step(30_000), 1);
        assert_eq!(time_step(-5_000), 0);
        assert_eq!(seconds_left(0), 30);
        assert_eq!(seconds_left(29_000), 1);
        assert_eq!(seconds_left(29_999), 1);
        assert_eq!(seconds_left(30_000), 30);
        assert_eq!(code_at(RFC_SECRET, 59_000), "287082");
        assert_eq!(code_at(RFC_SECRET, 60_000), "359152");
    }

    #[test]
    fn only_six_ascii_digits_are_a_code() {
        assert!(is_well_formed("012345"));
        for bad in [
            "",
            "12345",
            "1234567",
            "12345a",
            " 12345",
            "１２３４５６",
            "+12345",
        ] {
            assert!(!is_well_formed(bad), "{bad:?}");
        }
    }
}
