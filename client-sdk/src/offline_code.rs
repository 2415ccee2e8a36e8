//! Offline codes on the phone: the 6-digit code (RFC 6238) that the person
//! types into the portal when a push cannot reach the phone. It needs no
//! network: the device's secret came once, in the enrollment response, and
//! is kept in the [`KeyStore`](crate::KeyStore) with the account.

use crate::Account;
use mfa_proto::offline_code as totp;

/// The current offline code and how long it stays valid.
#[derive(Clone, PartialEq, Eq)]
pub struct OfflineCode {
    /// The 6 digits to type into the portal.
    pub code: String,
    /// Seconds until the next code (1 to 30).
    pub seconds_left: u32,
}

impl std::fmt::Debug for OfflineCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineCode")
            .field("code", &"<redacted>")
            .field("seconds_left", &self.seconds_left)
            .finish()
    }
}

/// The offline-code secret of an enrollment response, if the server sent
/// one of the length the protocol gives (any other is ignored: the account
/// then has no offline codes).
pub(crate) fn secret_of(response: &mfa_proto::v1::CompleteEnrollmentResponse) -> Option<Vec<u8>> {
    let secret = &response.offline_code_secret;
    (secret.len() == totp::SECRET_LENGTH).then(|| secret.clone())
}

impl Account {
    /// Whether the server gave this device offline codes.
    pub fn has_offline_codes(&self) -> bool {
        self.offline_code_secret.is_some()
    }

    /// The offline code at `unix_ms` (milliseconds since the Unix epoch);
    /// `None` when the account has no offline codes.
    pub fn offline_code_at(&self, unix_ms: i64) -> Option<OfflineCode> {
        let secret = self.offline_code_secret.as_deref()?;
        Some(OfflineCode {
            code: totp::code_at(secret, unix_ms),
            seconds_left: totp::seconds_left(unix_ms) as u32,
        })
    }

    /// The offline code now, by the phone's clock (which must be right to
    /// within 30 seconds or so: the server accepts the code of its own time
    /// step and of one step either side).
    pub fn offline_code(&self) -> Option<OfflineCode> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or_default();
        self.offline_code_at(now)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::tests::sample_account;

    /// The sample account's secret is RFC 6238's SHA-1 secret, so its codes
    /// are the appendix's values (their last six digits).
    #[test]
    fn codes_follow_rfc_6238() {
        let account = sample_account();
        assert!(account.has_offline_codes());
        let code = account.offline_code_at(1_111_111_109_000).unwrap();
        assert_eq!(code.code, "081804");
        assert_eq!(code.seconds_left, 1);
        let code = account.offline_code_at(1_111_111_111_000).unwrap();
        assert_eq!(code.code, "050471");
        assert_eq!(code.seconds_left, 29);
        assert_eq!(
            account.offline_code_at(1_234_567_890_000).unwrap().code,
            "005924"
        );
        assert!(!format!("{code:?}").contains("050471"));
    }

    #[test]
    fn an_account_without_a_secret_has_no_codes() {
        let mut account = sample_account();
        account.offline_code_secret = None;
        assert!(!account.has_offline_codes());
        assert_eq!(account.offline_code(), None);
        let json = serde_json::to_value(&account).unwrap();
        assert!(json.get("offline_code_secret").is_none());
        let back: crate::Account = serde_json::from_value(json).unwrap();
        assert_eq!(back, account);
    }
}
