//! Offline codes: when a push cannot reach the phone, the person types the
//! 6-digit code the app shows (RFC 6238, [`mfa_proto::offline_code`]) into
//! the portal, which asks us to check it.
//!
//! Each device gets a secret at enrollment, sealed at rest with the server's
//! offline-code key. A code is accepted for the server's time step or one
//! step either side, at most once per step and device: the store accepts a
//! step only if it is later than the last one accepted, in one statement, so
//! a replayed code is refused on every replica. Wrong and replayed codes are
//! counted per user and per end-user address; past the limit every code is
//! refused, the right one too, so that guessing cannot outrun it.

use super::{input, now_ms, random_bytes, Client, Error, Reason, Result, Service};
use crate::{client_address::ClientAddress, model::*, telemetry::metrics};
use mfa_proto::offline_code::{self as totp, SECRET_LENGTH, SKEW_STEPS};
use subtle::ConstantTimeEq;

/// Scope of failed offline codes, counted per user (`tenant/user`, the key
/// that deleting the user forgets: `store::delete_user::FAILURES`).
const FAILURES_BY_USER: &str = "offline_code.user";
/// Scope of failed offline codes, counted per end-user address.
const FAILURES_BY_ADDRESS: &str = "offline_code.address";

/// A code typed by a person, as the portal sends it.
pub struct OfflineCodeAttempt<'a> {
    pub user_id: &'a str,
    /// The digits typed: a secret, never logged or audited.
    pub code: &'a str,
    /// The end user's address as the portal saw it; empty if not given.
    pub client_ip: &'a str,
}

/// An accepted offline code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflineCodeVerified {
    /// The device whose code it was.
    pub device_id: String,
    /// When it was accepted (ms since the Unix epoch).
    pub at: i64,
}

/// How a typed code compares with one device's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// The code of this step, later than the last one used.
    Fresh(i64),
    /// The code of a step already used (or earlier than one used).
    Used,
    /// None of the device's codes within the window.
    None,
}

/// Compares `typed` with the codes of `secret` for the steps around `step`
/// (±[`SKEW_STEPS`]), in constant time per code. The latest matching step
/// wins, so that a code that matches two steps (a one-in-a-million chance)
/// is never refused as used when its later step is still fresh.
fn compare(secret: &[u8], typed: &str, step: i64, last_step: Option<i64>) -> Match {
    let mut found = Match::None;
    for candidate in (step - SKEW_STEPS)..=(step + SKEW_STEPS) {
        let code = totp::code(secret, candidate);
        if bool::from(code.as_bytes().ct_eq(typed.as_bytes())) {
            found = match last_step {
                Some(last) if candidate <= last => match found {
                    Match::Fresh(_) => found,
                    _ => Match::Used,
                },
                _ => Match::Fresh(candidate),
            };
        }
    }
    found
}

impl Service {
    /// Whether this server can issue and check offline codes (it has a key).
    pub fn offline_codes_available(&self) -> bool {
        self.inner.offline_code_key.is_some()
    }

    /// Makes and stores a new device's offline-code secret, returned to be
    /// sent to the device once; `None` when the server has no key.
    pub(super) async fn issue_offline_secret(&self, device_id: &str) -> Result<Option<Vec<u8>>> {
        let Some(key) = &self.inner.offline_code_key else {
            return Ok(None);
        };
        let secret = random_bytes::<SECRET_LENGTH>();
        self.store()
            .save_offline_secret(device_id, &key.seal(device_id, &secret))
            .await?;
        Ok(Some(secret.to_vec()))
    }

    /// Checks an offline code for a user of `tenant_id` now.
    pub async fn verify_offline_code(
        &self,
        tenant_id: &str,
        attempt: &OfflineCodeAttempt<'_>,
    ) -> Result<OfflineCodeVerified> {
        self.verify_offline_code_at(tenant_id, attempt, now_ms())
            .await
    }

    /// [`Self::verify_offline_code`] as if the clock read `now` (ms since the
    /// Unix epoch), so that tests can check the window's edges.
    pub async fn verify_offline_code_at(
        &self,
        tenant_id: &str,
        attempt: &OfflineCodeAttempt<'_>,
        now: i64,
    ) -> Result<OfflineCodeVerified> {
        input::user_id(attempt.user_id)?;
        if !totp::is_well_formed(attempt.code) {
            return Err(Error::invalid("code must be exactly 6 digits"));
        }
        let address = match attempt.client_ip {
            "" => None,
            ip => Some(Client::new(Some(ClientAddress(ip.parse().map_err(
                |_| Error::invalid("client_ip must be an IPv4 or IPv6 address"),
            )?)))),
        };
        let tenant = self.tenant(tenant_id).await?;
        let key = match &self.inner.offline_code_key {
            Some(key) if tenant.offline_codes_enabled => key,
            _ => {
                metrics::offline_code(tenant_id, "disabled");
                return Err(Error::refused(
                    Reason::OfflineCodesDisabled,
                    "offline codes are turned off for this tenant",
                ));
            }
        };
        let user_key = format!("{tenant_id}/{}", attempt.user_id);
        let address_key = address.map(|a| a.throttle_key());
        let mut counters = vec![(FAILURES_BY_USER, user_key.as_str())];
        counters.extend(address_key.as_deref().map(|k| (FAILURES_BY_ADDRESS, k)));
        let event = AuditEvent {
            tenant_id: Some(tenant_id.to_owned()),
            user_id: Some(attempt.user_id.to_owned()),
            client_address: address.map(|a| a.address()),
            ..Default::default()
        };

        // Before anything about the code is looked at, so that a guesser
        // past the limit learns nothing, not even from the right code.
        let limits = self.limits();
        let window = (
            limits.offline_code_window,
            limits.offline_code_failure_limit,
        );
        if let Some(scope) = self.over_limit(&counters, window, now).await? {
            metrics::throttled("offline_code");
            metrics::offline_code(tenant_id, "throttled");
            self.audit_failure(AuditEvent {
                event_type: "offline_code.throttled".into(),
                detail: format!("too many failed offline codes ({scope})"),
                ..event
            })
            .await;
            return Err(Error::refused(
                Reason::RateLimited,
                "too many failed offline codes; wait and try again, or sign in with a push",
            ));
        }

        let (user, devices) = self
            .store()
            .user_with_devices(tenant_id, attempt.user_id)
            .await?
            .unzip();
        if !devices
            .unwrap_or_default()
            .iter()
            .any(|d| d.state == DeviceState::Active)
        {
            return Err(Error::refused(
                Reason::NoActiveDevice,
                "this user has no active device; enroll one first",
            ));
        }
        if user
            .and_then(|u| u.blocked_until)
            .is_some_and(|until| until > now)
        {
            return Err(Error::refused(
                Reason::UserBlocked,
                "sign-ins for this user are blocked after a fraud report",
            ));
        }
        let secrets = self
            .store()
            .offline_secrets(tenant_id, attempt.user_id)
            .await?;
        if secrets.is_empty() {
            metrics::offline_code(tenant_id, "not_set_up");
            return Err(Error::refused(
                Reason::OfflineCodeNotSetUp,
                "none of this user's devices has offline codes; enroll the phone again",
            ));
        }

        let step = totp::time_step(now);
        let mut used = false;
        for stored in &secrets {
            let secret = key.open(&stored.device_id, &stored.sealed).ok_or_else(|| {
                Error::Internal(format!(
                    "the offline-code secret of device {} does not open with this key",
                    stored.device_id
                ))
            })?;
            match compare(&secret, attempt.code, step, stored.last_step) {
                Match::Fresh(matched) => {
                    // One statement decides, so that of two replicas
                    // checking the same code only one accepts it.
                    if self
                        .store()
                        .use_offline_step(&stored.device_id, matched)
                        .await?
                    {
                        tracing::info!(device_id = %stored.device_id, "offline code accepted");
                        metrics::offline_code(tenant_id, "accepted");
                        self.audit(AuditEvent {
                            event_type: "offline_code.accepted".into(),
                            device_id: Some(stored.device_id.clone()),
                            ..event
                        })
                        .await;
                        return Ok(OfflineCodeVerified {
                            device_id: stored.device_id.clone(),
                            at: now,
                        });
                    }
                    used = true;
                }
                Match::Used => used = true,
                Match::None => {}
            }
        }

        let (outcome, detail, reason, message) = if used {
            (
                "used",
                "offline code already used",
                Reason::OfflineCodeUsed,
                "this code was already used; wait for the next code in the app",
            )
        } else {
            (
                "invalid",
                "wrong offline code",
                Reason::OfflineCodeInvalid,
                "this is not the user's current code",
            )
        };
        tracing::warn!(detail, "offline code refused");
        metrics::offline_code(tenant_id, outcome);
        self.record_failures(&counters, now).await?;
        self.audit(AuditEvent {
            event_type: "offline_code.failed".into(),
            detail: detail.into(),
            ..event
        })
        .await;
        Err(Error::refused(reason, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"12345678901234567890";

    /// The step of RFC 6238's `T = 0x023523EC` (1111111109 s).
    const STEP: i64 = 0x023523EC;

    #[test]
    fn the_current_step_and_one_either_side_are_accepted_and_no_further() {
        for offset in -1..=1 {
            let code = totp::code(SECRET, STEP + offset);
            assert_eq!(
                compare(SECRET, &code, STEP, None),
                Match::Fresh(STEP + offset),
                "offset {offset}"
            );
        }
        for offset in [-3, -2, 2, 3] {
            let code = totp::code(SECRET, STEP + offset);
            assert_eq!(
                compare(SECRET, &code, STEP, None),
                Match::None,
                "offset {offset}"
            );
        }
        // The RFC's own value for this step, at 6 digits.
        assert_eq!(compare(SECRET, "081804", STEP, None), Match::Fresh(STEP));
        assert_eq!(compare(SECRET, "000000", STEP, None), Match::None);
    }

    #[test]
    fn a_used_step_and_every_earlier_one_are_refused() {
        let code = totp::code(SECRET, STEP);
        assert_eq!(compare(SECRET, &code, STEP, Some(STEP)), Match::Used);
        assert_eq!(compare(SECRET, &code, STEP, Some(STEP + 1)), Match::Used);
        let previous = totp::code(SECRET, STEP - 1);
        assert_eq!(compare(SECRET, &previous, STEP, Some(STEP)), Match::Used);
        // The next step's code is still good after this one was used.
        let next = totp::code(SECRET, STEP + 1);
        assert_eq!(
            compare(SECRET, &next, STEP, Some(STEP)),
            Match::Fresh(STEP + 1)
        );
        // Used at the edge of the window: a step later, the same code is
        // both within the window and refused.
        assert_eq!(compare(SECRET, &code, STEP + 1, Some(STEP)), Match::Used);
    }
}
