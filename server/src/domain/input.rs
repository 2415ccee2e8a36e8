//! Checks on caller-supplied values, shared by every operation that takes them.

use super::{Error, Result};

/// A non-empty string of at most `max` bytes without control characters.
pub fn text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.is_empty() {
        return Err(Error::invalid(format!("{field} is required")));
    }
    optional_text(field, value, max)
}

/// Like [`text`] but may be empty.
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<()> {
    if value.len() > max {
        return Err(Error::invalid(format!(
            "{field} is longer than {max} bytes"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "{field} contains control characters"
        )));
    }
    Ok(())
}

/// The portal's user id.
pub fn user_id(value: &str) -> Result<()> {
    text("user_id", value, 128)
}

/// An e-mail address (loosely: something@something).
pub fn email(value: &str) -> Result<()> {
    text("email", value, 254)?;
    match value.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && value.len() >= 3 => {
            Ok(())
        }
        _ => Err(Error::invalid("email must look like name@domain")),
    }
}

/// An object id: a UUID in its hyphenated form.
pub fn id(field: &str, value: &str) -> Result<()> {
    uuid::Uuid::try_parse(value)
        .map(drop)
        .map_err(|_| Error::invalid(format!("{field} must be a UUID")))
}

/// The digits a person typed.
pub fn typed_number(value: &str) -> Result<()> {
    if value.len() > 6 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid("typed_number must be at most 6 digits"));
    }
    Ok(())
}

/// The most bytes a device signature has: a P-256 signature in DER (an
/// Ed25519 signature has 64).
pub const MAX_SIGNATURE_LEN: usize = 72;

/// A device signature's size. Its encoding is checked against the key's
/// algorithm when it is verified, and refused as a signature that does not
/// verify, so that a caller learns nothing of a device's algorithm.
pub fn signature(value: &[u8]) -> Result<()> {
    if value.is_empty() || value.len() > MAX_SIGNATURE_LEN {
        return Err(Error::invalid(format!(
            "signature must be 1 to {MAX_SIGNATURE_LEN} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_what_it_should() {
        assert!(user_id("").is_err());
        assert!(user_id(&"u".repeat(129)).is_err());
        assert!(user_id("a\u{0}b").is_err());
        assert!(user_id("user-1").is_ok());
        assert!(email("a@b").is_ok());
        assert!(email("@b").is_err());
        assert!(email("ab").is_err());
        assert!(id("challenge_id", "nope").is_err());
        assert!(id("challenge_id", "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a").is_ok());
        assert!(typed_number("1234567").is_err());
        assert!(typed_number("4a").is_err());
        assert!(typed_number("").is_ok());
        assert!(signature(&[]).is_err());
        assert!(signature(&[0; 73]).is_err());
        assert!(signature(&[0; 64]).is_ok());
        assert!(signature(&[0; 72]).is_ok());
    }
}
