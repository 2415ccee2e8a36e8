#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mfa_fuzz::enrollment_uri(data));
