//! Number-matching challenges: created by the portal, answered once by a
//! device of the user with the number the person typed.

use super::{input, now_ms, Client, Error, Reason, Result, Service};
use crate::{
    events::Change,
    model::*,
    push::Message,
    store::{Creation, Quota},
    telemetry::metrics,
};
use mfa_proto::{push::PushNotice, signing};
use subtle::ConstantTimeEq;

/// A device's answer, as decoded from the request.
pub struct Answer<'a> {
    pub device_id: &'a str,
    pub challenge_id: &'a str,
    pub decision: Decision,
    /// The wire name of the decision, as signed.
    pub decision_name: &'a str,
    pub typed_number: &'a str,
    /// How the person unlocked, as the request says; `None` when it leaves
    /// it unset (an app that predates the flag: no verification, and
    /// nothing signed for it).
    pub user_verification: Option<UserVerification>,
    pub signature: &'a [u8],
    /// The caller, for audit and for limits on failed signatures.
    pub client: &'a Client,
}

/// What the person decided on the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Deny,
    ReportFraud,
}

impl Service {
    /// Creates a sign-in challenge, superseding the user's pending one, and
    /// notifies the user's active devices.
    pub async fn create_challenge(
        &self,
        tenant_id: &str,
        user_id: &str,
        context: SignInContext,
    ) -> Result<Challenge> {
        input::user_id(user_id)?;
        input::optional_text("context.application_name", &context.application_name, 128)?;
        input::optional_text("context.location", &context.location, 128)?;
        input::optional_text("context.message", &context.message, 256)?;
        if !context.client_ip.is_empty() && context.client_ip.parse::<std::net::IpAddr>().is_err() {
            return Err(Error::invalid(
                "context.client_ip must be an IPv4 or IPv6 address",
            ));
        }
        let now = now_ms();
        let (user, devices) = self
            .store()
            .user_with_devices(tenant_id, user_id)
            .await?
            .unzip();
        if let Some(until) = user
            .and_then(|u| u.blocked_until)
            .filter(|&until| until > now)
        {
            self.audit(AuditEvent {
                tenant_id: Some(tenant_id.to_owned()),
                event_type: "challenge.refused_blocked".into(),
                user_id: Some(user_id.to_owned()),
                ..Default::default()
            })
            .await;
            return Err(Error::refused(
                Reason::UserBlocked,
                format!(
                    "sign-in approvals for this user are blocked after a fraud report (for {} more minutes, or until an administrator unblocks)",
                    (until - now + 59_999) / 60_000
                ),
            ));
        }
        let devices: Vec<Device> = devices
            .unwrap_or_default()
            .into_iter()
            .filter(|d| d.state == DeviceState::Active)
            .collect();
        if devices.is_empty() {
            return Err(Error::refused(
                Reason::NoActiveDevice,
                "this user has no active device; enroll one first",
            ));
        }
        let quota = Quota {
            since: now - self.limits().challenge_window.as_millis() as i64,
            limit: self.limits().challenge_limit,
        };
        let tenant = self.tenant(tenant_id).await?;
        let challenge = self.new_challenge(&tenant, user_id, ChallengeKind::SignIn, context, None);
        let Creation::Created(superseded) =
            self.store().create_challenge(&challenge, quota).await?
        else {
            metrics::throttled("challenges");
            self.audit(AuditEvent {
                tenant_id: Some(tenant_id.to_owned()),
                event_type: "challenge.rate_limited".into(),
                user_id: Some(user_id.to_owned()),
                ..Default::default()
            })
            .await;
            return Err(Error::refused(
                Reason::RateLimited,
                "too many sign-in challenges for this user; wait before trying again",
            ));
        };
        self.add_deadline(challenge.expires_at);
        for ended in &superseded {
            self.announce_end(ended);
        }
        tracing::info!(challenge_id = %challenge.id, "challenge created");
        metrics::challenge_created(tenant_id);
        self.events()
            .publish(Change::Challenge(challenge.id.clone()));

        let notice = PushNotice::new(&challenge.id, &tenant.id, &tenant.display_name);
        // Devices without push, or whose token the provider called dead,
        // answer through the pull path.
        for device in devices
            .into_iter()
            .filter(|d| d.push_platform != PushPlatform::None && !d.push_token.is_empty())
        {
            self.inner
                .push
                .dispatch(Message {
                    challenge_id: challenge.id.clone(),
                    tenant_id: tenant.id.clone(),
                    user_id: challenge.user_id.clone(),
                    device_id: device.id,
                    platform: device.push_platform,
                    token: device.push_token,
                    notice: notice.clone(),
                    created_at: challenge.created_at,
                    expires_at: challenge.expires_at,
                })
                .await;
        }
        Ok(challenge)
    }

    /// Applies a device's signed answer; exactly one answer wins.
    pub async fn respond(&self, answer: Answer<'_>) -> Result<Challenge> {
        input::id("device_id", answer.device_id)?;
        input::id("challenge_id", answer.challenge_id)?;
        input::typed_number(answer.typed_number)?;
        input::signature(answer.signature)?;
        if answer.decision == Decision::Approve && answer.typed_number.is_empty() {
            return Err(Error::invalid("typed_number is required to approve"));
        }

        let device = self.known_device(answer.device_id, answer.client).await?;
        let challenge = match self.store().get_challenge(answer.challenge_id).await? {
            Some(c)
                if c.tenant_id == device.tenant_id
                    && c.user_id == device.user_id
                    && c.target_device_id.as_ref().is_none_or(|t| *t == device.id) =>
            {
                c
            }
            _ => return Err(Error::not_found("challenge")),
        };
        let message = signing::Approval {
            tenant_id: &challenge.tenant_id,
            challenge_id: &challenge.id,
            device_id: &device.id,
            decision: answer.decision_name,
            typed_number: answer.typed_number,
            challenge_nonce: &challenge.nonce,
            user_verification: answer.user_verification.map(UserVerification::wire_name),
        }
        .signed_bytes();
        self.check_device_signature(
            &device,
            &message,
            answer.signature,
            Some(&challenge.id),
            answer.client,
        )
        .await?;
        self.ensure_not_revoked(&device, Some(&challenge.id), answer.client)
            .await?;
        if device.state != DeviceState::Active && challenge.target_device_id.is_none() {
            return Err(Error::not_found("challenge"));
        }

        let now = now_ms();
        ensure_pending(&challenge, now)?;
        let verification = answer.user_verification.unwrap_or(UserVerification::None);
        let policy = self.tenant(&challenge.tenant_id).await?.device_policy;
        let ending = match answer.decision {
            Decision::Approve
                if bool::from(
                    answer
                        .typed_number
                        .as_bytes()
                        .ct_eq(challenge.number.as_bytes()),
                ) =>
            {
                if policy.accepts(verification) {
                    Ending {
                        answered_by: Some(device.id.clone()),
                        note: Some(format!("user verification {verification}")),
                        ..Ending::unanswered(ChallengeState::Approved)
                    }
                } else {
                    Ending {
                        note: Some(format!(
                            "{}: approved with user verification {verification}",
                            DenyReason::UserVerificationRequired.as_str()
                        )),
                        ..denied(&device, DenyReason::UserVerificationRequired, None)
                    }
                }
            }
            Decision::Approve => denied(&device, DenyReason::WrongNumber, None),
            Decision::Deny => denied(&device, DenyReason::UserDenied, None),
            Decision::ReportFraud => denied(
                &device,
                DenyReason::FraudReported,
                Some(now + self.limits().fraud_block.as_millis() as i64),
            ),
        };
        let Some(ended) = self.store().end_challenge(&challenge, &ending, now).await? else {
            // Lost the race to another answer, a cancel or the expiry.
            let current = self
                .store()
                .get_challenge(&challenge.id)
                .await?
                .unwrap_or(challenge);
            ensure_pending(&current, now)?;
            return Err(Error::refused(
                Reason::ChallengeEnded,
                "challenge already ended",
            ));
        };
        self.announce_end(&ended);
        if ending.block_user_until.is_some() {
            tracing::warn!(challenge_id = %ended.challenge.id, "fraud reported; user blocked");
        }
        match (ended.challenge.state, ended.challenge.deny_reason) {
            (ChallengeState::Approved, _) => metrics::approval(&ended.challenge, verification),
            (_, Some(DenyReason::UserVerificationRequired)) => {
                return Err(user_verification_required(&policy, verification));
            }
            _ => {}
        }
        Ok(ended.challenge)
    }

    /// Cancels a pending challenge of this tenant.
    pub async fn cancel_challenge(&self, tenant_id: &str, challenge_id: &str) -> Result<Challenge> {
        let challenge = self.challenge(tenant_id, challenge_id).await?;
        let now = now_ms();
        ensure_pending(&challenge, now)?;
        let ending = Ending {
            note: Some("cancelled by the portal".into()),
            ..Ending::unanswered(ChallengeState::Cancelled)
        };
        match self.store().end_challenge(&challenge, &ending, now).await? {
            Some(ended) => {
                self.announce_end(&ended);
                Ok(ended.challenge)
            }
            None => {
                let current = self.challenge(tenant_id, challenge_id).await?;
                ensure_pending(&current, now)?;
                Err(Error::refused(
                    Reason::ChallengeEnded,
                    "challenge already ended",
                ))
            }
        }
    }
}

/// The refusal of an approval that does not meet the tenant's policy; the
/// challenge has ended denied for it, so the portal sees why.
fn user_verification_required(policy: &DevicePolicy, verification: UserVerification) -> Error {
    let accepted: Vec<&str> = policy
        .required_user_verification()
        .into_iter()
        .map(UserVerification::wire_name)
        .collect();
    Error::refused(
        Reason::UserVerificationRequired,
        format!(
            "this organisation requires unlocking with {} to approve (the approval said {}); \
             the sign-in was denied",
            accepted.join(" or "),
            verification.wire_name()
        ),
    )
    .with(
        mfa_proto::status::ACCEPTED_USER_VERIFICATIONS,
        accepted.join(","),
    )
}

fn denied(device: &Device, reason: DenyReason, block_user_until: Option<i64>) -> Ending {
    Ending {
        state: ChallengeState::Denied,
        deny_reason: Some(reason),
        answered_by: Some(device.id.clone()),
        block_user_until,
        note: None,
    }
}

/// Refuses a challenge that can no longer be answered.
fn ensure_pending(challenge: &Challenge, now: i64) -> Result<()> {
    match challenge.state {
        ChallengeState::Pending if challenge.expires_at > now => Ok(()),
        ChallengeState::Pending | ChallengeState::Expired => Err(Error::refused(
            Reason::ChallengeExpired,
            "challenge expired",
        )),
        state => Err(Error::refused(
            Reason::ChallengeEnded,
            format!("challenge already ended ({})", state.as_str()),
        )),
    }
}
