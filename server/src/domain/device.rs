//! Calls a device makes after enrollment, each proven with its key.

use super::{auth::Proof, now_ms, Client, Result, Service};
use crate::model::*;
use mfa_proto::signing;

/// A challenge with the server's signature over its context.
#[derive(Debug, Clone)]
pub struct PendingChallenge {
    pub challenge: Challenge,
    pub tenant_display_name: String,
    pub user_email: String,
    pub number_length: u32,
    pub server_signature: Vec<u8>,
    /// The user verification methods of which an approval needs one (the
    /// tenant's policy, told to the app); empty when none is required.
    pub required_user_verification: Vec<UserVerification>,
}

/// A device call's proof plus the method it is for.
pub struct DeviceCall<'a> {
    pub proof: Proof<'a>,
    pub method: &'a str,
    /// The caller, for audit and for limits on failed signatures.
    pub client: &'a Client,
}

impl Service {
    /// Signs what the app will show about a challenge.
    pub(super) fn sign_context(
        &self,
        tenant: &Tenant,
        user_email: &str,
        challenge: Challenge,
    ) -> PendingChallenge {
        let number_length = challenge.number.len() as u32;
        let message = signing::ChallengeContext {
            tenant_id: &tenant.id,
            tenant_display_name: &tenant.display_name,
            challenge_id: &challenge.id,
            kind: kind_name(challenge.kind),
            user_email,
            application_name: &challenge.context.application_name,
            client_ip: &challenge.context.client_ip,
            location: &challenge.context.location,
            message: &challenge.context.message,
            create_time_ms: challenge.created_at,
            expire_time_ms: challenge.expires_at,
            number_length: i64::from(number_length),
            nonce: &challenge.nonce,
        }
        .signed_bytes();
        PendingChallenge {
            server_signature: self.identity().sign(&message),
            tenant_display_name: tenant.display_name.clone(),
            user_email: user_email.to_owned(),
            number_length,
            required_user_verification: tenant.device_policy.required_user_verification(),
            challenge,
        }
    }

    /// The challenges waiting for this device (the pull path).
    pub async fn pending_challenges(&self, call: DeviceCall<'_>) -> Result<Vec<PendingChallenge>> {
        let device = self
            .authenticate_device(&call.proof, call.method, &[], call.client)
            .await?;
        let challenges = self.store().pending_for_device(&device, now_ms()).await?;
        if challenges.is_empty() {
            return Ok(Vec::new());
        }
        let tenant = self.tenant(&device.tenant_id).await?;
        Ok(challenges
            .into_iter()
            .map(|(challenge, email)| self.sign_context(&tenant, &email, challenge))
            .collect())
    }

    /// Replaces the device's push token.
    pub async fn update_push_token(
        &self,
        call: DeviceCall<'_>,
        platform: PushPlatform,
        platform_name: &str,
        token: &str,
    ) -> Result<()> {
        if platform == PushPlatform::None {
            super::input::optional_text("push_token", token, 0)?;
        } else {
            super::input::text("push_token", token, 4096)?;
        }
        let device = self
            .authenticate_device(
                &call.proof,
                call.method,
                &[platform_name, token],
                call.client,
            )
            .await?;
        self.store()
            .set_push_token(&device.id, platform, token)
            .await?;
        self.audit_device(
            &device,
            "device.push_token_updated",
            None,
            platform.as_str(),
            Some(call.client),
        )
        .await;
        Ok(())
    }

    /// Removes the calling device.
    pub async fn remove_device(&self, call: DeviceCall<'_>) -> Result<()> {
        let device = self
            .authenticate_device(&call.proof, call.method, &[], call.client)
            .await?;
        self.store().revoke_device(&device.id, now_ms()).await?;
        self.audit_device(
            &device,
            "device.removed",
            None,
            "removed by the device",
            Some(call.client),
        )
        .await;
        Ok(())
    }
}

/// The wire name of a challenge kind, as signed.
pub fn kind_name(kind: ChallengeKind) -> &'static str {
    match kind {
        ChallengeKind::SignIn => "CHALLENGE_KIND_SIGN_IN",
        ChallengeKind::EnrollmentVerification => "CHALLENGE_KIND_ENROLLMENT_VERIFICATION",
    }
}
