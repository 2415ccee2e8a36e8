//! Enrollment: the portal starts it, the phone registers with the activation
//! code and its new key, and a first number round confirms it.

use super::{
    device::PendingChallenge, input, new_id, now_ms, secret_hash, Client, Error, Reason, Result,
    Service,
};
use crate::{events::Change, model::*, telemetry::metrics};
use mfa_proto::{
    enrollment::{
        display_activation_code, normalize_activation_code, EnrollmentUri, CODE_ALPHABET,
        CODE_LENGTH,
    },
    signing,
};
use rand::{rngs::OsRng, Rng};

/// What the portal shows to start an enrollment.
#[derive(Debug)]
pub struct EnrollmentStarted {
    pub enrollment: Enrollment,
    pub qr_uri: String,
    pub manual_code: String,
    pub server_url: String,
}

/// What a phone sends to register.
pub struct NewDevice<'a> {
    pub activation_code: &'a str,
    /// The key's algorithm as the request names it; `None` when it leaves
    /// it unset (Ed25519, and nothing signed for it).
    pub key_algorithm: Option<KeyAlgorithm>,
    pub public_key: &'a [u8],
    pub push_platform: PushPlatform,
    /// The wire name of the platform, as signed.
    pub push_platform_name: &'a str,
    pub push_token: &'a str,
    pub device_name: &'a str,
    pub signature: &'a [u8],
    /// The caller, for audit and for limits on failed attempts.
    pub client: &'a Client,
}

/// What a registered phone learns.
pub struct Registered {
    pub device: Device,
    pub tenant: Tenant,
    pub user_email: String,
    pub verification: PendingChallenge,
    /// The device's offline-code secret, for it alone; `None` when the
    /// server offers no offline codes.
    pub offline_code_secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("device", &self.device)
            .field("tenant", &self.tenant)
            .field("verification", &self.verification)
            .field("offline_code_secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Scope of failed activations, counted per client address.
const ACTIVATION_BY_ADDRESS: &str = "activation";
/// Scope of failed activations of a known code (a proof of possession that
/// does not verify), counted per enrollment.
const ACTIVATION_BY_ENROLLMENT: &str = "activation.enrollment";

impl Service {
    /// Starts an enrollment for a user.
    pub async fn begin_enrollment(
        &self,
        tenant_id: &str,
        user_id: &str,
        email: &str,
    ) -> Result<EnrollmentStarted> {
        input::user_id(user_id)?;
        input::email(email)?;
        let tenant = self.tenant(tenant_id).await?;
        let now = now_ms();
        let code: String = (0..CODE_LENGTH)
            .map(|_| CODE_ALPHABET[OsRng.gen_range(0..CODE_ALPHABET.len())] as char)
            .collect();
        let enrollment = Enrollment {
            id: new_id(),
            tenant_id: tenant_id.to_owned(),
            user_id: user_id.to_owned(),
            state: EnrollmentState::WaitingForScan,
            created_at: now,
            expires_at: now + self.enrollment_ttl(&tenant).as_millis() as i64,
            device_id: None,
            challenge_id: None,
        };
        self.store()
            .create_enrollment(&enrollment, email, &secret_hash(&code))
            .await?;
        self.add_deadline(enrollment.expires_at);
        metrics::enrollment(tenant_id, "started");
        self.audit(AuditEvent {
            tenant_id: Some(tenant_id.to_owned()),
            event_type: "enrollment.started".into(),
            user_id: Some(user_id.to_owned()),
            enrollment_id: Some(enrollment.id.clone()),
            ..Default::default()
        })
        .await;
        let uri = EnrollmentUri {
            server_url: self.inner.public_url.clone(),
            activation_code: code.clone(),
            server_public_key: Some(self.identity().public_key()),
        };
        Ok(EnrollmentStarted {
            enrollment,
            qr_uri: uri.to_uri(),
            manual_code: display_activation_code(&code),
            server_url: self.inner.public_url.clone(),
        })
    }

    /// Registers a phone on an enrollment and opens its verification round.
    pub async fn complete_enrollment(&self, new: NewDevice<'_>) -> Result<Registered> {
        let code = normalize_activation_code(new.activation_code)
            .map_err(|e| Error::invalid(e.to_string()))?;
        let algorithm = new.key_algorithm.unwrap_or(KeyAlgorithm::Ed25519);
        let key = signing::PublicKey::parse(algorithm, new.public_key)
            .map_err(|e| Error::invalid(e.to_string()))?;
        input::text("device_name", new.device_name, 128)?;
        if new.push_platform == PushPlatform::None {
            input::optional_text("push_token", new.push_token, 0)?;
        } else {
            input::text("push_token", new.push_token, 4096)?;
        }
        input::signature(new.signature)?;

        // Guessing codes is limited per client address (behind a load
        // balancer, the forwarded one: see `trusted_proxies`), before the
        // code is looked up, so that a guesser past the limit learns nothing.
        let now = now_ms();
        if self
            .activation_limit_reached(ACTIVATION_BY_ADDRESS, &new.client.throttle_key(), now)
            .await?
        {
            return Err(Error::refused(
                Reason::RateLimited,
                "too many failed activation attempts from this address; wait and try again",
            ));
        }
        let Some(enrollment) = self
            .store()
            .find_enrollment_by_code(&secret_hash(&code))
            .await?
        else {
            self.activation_failed(new.client, None, "unknown activation code")
                .await?;
            return Err(Error::refused(
                Reason::ActivationCodeUnknown,
                "activation code not found",
            ));
        };
        // Whoever holds a code can spoil only that enrollment.
        if self
            .activation_limit_reached(ACTIVATION_BY_ENROLLMENT, &enrollment.id, now)
            .await?
        {
            return Err(Error::refused(
                Reason::RateLimited,
                "too many failed attempts with this QR code; start enrollment again from the portal",
            ));
        }
        let proof = signing::EnrollmentProof {
            activation_code: &code,
            public_key: new.public_key,
            push_platform: new.push_platform_name,
            push_token: new.push_token,
            device_name: new.device_name,
            key_algorithm: new.key_algorithm.map(KeyAlgorithm::wire_name),
        }
        .signed_bytes();
        if key.verify(&proof, new.signature).is_err() {
            self.activation_failed(
                new.client,
                Some(&enrollment),
                "proof-of-possession signature does not verify",
            )
            .await?;
            return Err(Error::refused(
                Reason::SignatureInvalid,
                "proof-of-possession signature does not verify",
            ));
        }
        self.ensure_open(&enrollment, now)?;

        let tenant = self.tenant(&enrollment.tenant_id).await?;
        // Checked once the proof verified, so that only the code's holder
        // learns the policy; the code stays usable with an allowed key.
        self.ensure_algorithm_allowed(&tenant, &enrollment, algorithm, new.client)
            .await?;
        let device = Device {
            id: new_id(),
            tenant_id: tenant.id.clone(),
            user_id: enrollment.user_id.clone(),
            display_name: new.device_name.to_owned(),
            key_algorithm: algorithm,
            public_key: key.to_bytes(),
            push_platform: new.push_platform,
            push_token: new.push_token.to_owned(),
            state: DeviceState::PendingVerification,
            created_at: now,
            revoked_at: None,
            push_token_invalid: None,
        };
        let challenge = self.new_challenge(
            &tenant,
            &enrollment.user_id,
            ChallengeKind::EnrollmentVerification,
            SignInContext::default(),
            Some(device.id.clone()),
        );
        if !self
            .store()
            .register_device(&enrollment.id, &device, &challenge, now)
            .await?
        {
            // Another phone won the race, or the code expired meanwhile.
            let current = self
                .store()
                .get_enrollment(&enrollment.id)
                .await?
                .unwrap_or(enrollment);
            self.ensure_open(&current, now)?;
            return Err(Error::refused(
                Reason::ActivationCodeUsed,
                "this activation code was already used",
            ));
        }
        self.add_deadline(challenge.expires_at);
        let offline_code_secret = self.issue_offline_secret(&device.id).await?;
        metrics::enrollment(&tenant.id, "registered");
        self.audit(AuditEvent {
            tenant_id: Some(tenant.id.clone()),
            event_type: "enrollment.device_registered".into(),
            user_id: Some(device.user_id.clone()),
            device_id: Some(device.id.clone()),
            challenge_id: Some(challenge.id.clone()),
            enrollment_id: Some(enrollment.id.clone()),
            detail: format!(
                "device {:?}, key {}, push {}",
                device.display_name,
                device.key_algorithm,
                device.push_platform.as_str()
            ),
            ..Default::default()
        })
        .await;
        self.events()
            .publish(Change::Enrollment(enrollment.id.clone()));
        let user_email = self
            .store()
            .get_user(&tenant.id, &device.user_id)
            .await?
            .map(|u| u.email)
            .unwrap_or_default();
        let verification = self.sign_context(&tenant, &user_email, challenge);
        Ok(Registered {
            device,
            tenant,
            user_email,
            verification,
            offline_code_secret,
        })
    }

    /// Refuses a key algorithm the tenant does not allow (audited).
    async fn ensure_algorithm_allowed(
        &self,
        tenant: &Tenant,
        enrollment: &Enrollment,
        algorithm: KeyAlgorithm,
        client: &Client,
    ) -> Result<()> {
        let policy = &tenant.device_policy;
        if policy.allows(algorithm) {
            return Ok(());
        }
        self.audit(AuditEvent {
            tenant_id: Some(tenant.id.clone()),
            event_type: "enrollment.key_algorithm_refused".into(),
            user_id: Some(enrollment.user_id.clone()),
            enrollment_id: Some(enrollment.id.clone()),
            detail: format!("key {algorithm} is not allowed"),
            client_address: Some(client.address()),
            ..Default::default()
        })
        .await;
        let allowed: Vec<&str> = KeyAlgorithm::ALL
            .into_iter()
            .filter(|&a| policy.allows(a))
            .map(KeyAlgorithm::wire_name)
            .collect();
        Err(Error::refused(
            Reason::KeyAlgorithmNotAllowed,
            format!(
                "this organisation does not allow {} device keys",
                algorithm.wire_name()
            ),
        )
        .with(mfa_proto::status::ALLOWED_KEY_ALGORITHMS, allowed.join(",")))
    }

    /// Refuses a code whose enrollment is no longer waiting for a scan.
    fn ensure_open(&self, enrollment: &Enrollment, now: i64) -> Result<()> {
        match enrollment.state {
            EnrollmentState::WaitingForScan if enrollment.expires_at > now => Ok(()),
            EnrollmentState::WaitingForScan | EnrollmentState::Expired => Err(Error::refused(
                Reason::ActivationCodeExpired,
                "this QR code has expired; start enrollment again from the portal",
            )),
            _ => Err(Error::refused(
                Reason::ActivationCodeUsed,
                "this activation code was already used; start enrollment again from the portal",
            )),
        }
    }

    /// Whether `key` has `activation_failure_limit` failures in `scope`
    /// within `activation_window` (counted as throttled if so).
    async fn activation_limit_reached(&self, scope: &str, key: &str, now: i64) -> Result<bool> {
        let since = now - self.limits().activation_window.as_millis() as i64;
        let failures = self.store().count_failures(scope, key, since).await?;
        let reached = failures >= i64::from(self.limits().activation_failure_limit);
        if reached {
            metrics::throttled("activation");
        }
        Ok(reached)
    }

    /// Charges a failed activation to the caller's address and, for a known
    /// code, to its enrollment, and audits it (aggregated per minute).
    async fn activation_failed(
        &self,
        client: &Client,
        enrollment: Option<&Enrollment>,
        detail: &str,
    ) -> Result<()> {
        tracing::warn!(detail, client = %client.address(), "failed activation attempt");
        metrics::auth_failure("activation");
        let now = now_ms();
        self.store()
            .record_failure(ACTIVATION_BY_ADDRESS, &client.throttle_key(), now)
            .await?;
        if let Some(enrollment) = enrollment {
            self.store()
                .record_failure(ACTIVATION_BY_ENROLLMENT, &enrollment.id, now)
                .await?;
        }
        self.audit_failure(AuditEvent {
            tenant_id: enrollment.map(|e| e.tenant_id.clone()),
            event_type: "enrollment.activation_failed".into(),
            user_id: enrollment.map(|e| e.user_id.clone()),
            enrollment_id: enrollment.map(|e| e.id.clone()),
            detail: detail.to_owned(),
            client_address: Some(client.address()),
            ..Default::default()
        })
        .await;
        Ok(())
    }
}
