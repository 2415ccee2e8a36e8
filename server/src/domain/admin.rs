//! What administrators and the portal manage about users: devices, resets,
//! blocks, terms of use and the audit log.

use super::{input, now_ms, Error, Result, Service};
use crate::{events::Change, model::*, telemetry::metrics};

/// A user as the portal sees them.
#[derive(Debug, Clone, Default)]
pub struct UserStatus {
    pub user_id: String,
    pub email: String,
    pub devices: Vec<Device>,
    pub blocked_until: Option<i64>,
    pub terms_version: Option<String>,
    pub terms_accepted_at: Option<i64>,
}

/// Counts of what a deletion removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeletionCounts {
    /// False if there was no such user (nothing was deleted).
    pub user_found: bool,
    pub deleted_devices: u32,
    pub deleted_challenges: u32,
    pub deleted_enrollments: u32,
    pub cancelled_challenges: u32,
    pub cancelled_enrollments: u32,
    pub anonymised_audit_events: u32,
}

/// Counts of what a reset changed.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResetCounts {
    pub revoked_devices: u32,
    pub cancelled_challenges: u32,
    pub cancelled_enrollments: u32,
}

impl Service {
    /// Devices, block and terms of a user; an unknown user has none of them.
    pub async fn user_status(&self, tenant_id: &str, user_id: &str) -> Result<UserStatus> {
        input::user_id(user_id)?;
        let now = now_ms();
        let Some((user, devices)) = self.store().user_with_devices(tenant_id, user_id).await?
        else {
            return Ok(UserStatus {
                user_id: user_id.to_owned(),
                ..Default::default()
            });
        };
        Ok(UserStatus {
            user_id: user.user_id,
            email: user.email,
            devices: devices
                .into_iter()
                .filter(|d| d.state != DeviceState::Revoked)
                .collect(),
            blocked_until: user.blocked_until.filter(|&until| until > now),
            terms_version: user.terms_version,
            terms_accepted_at: user.terms_accepted_at,
        })
    }

    /// Records the terms version a user accepted.
    pub async fn record_terms(&self, tenant_id: &str, user_id: &str, version: &str) -> Result<i64> {
        input::user_id(user_id)?;
        input::text("terms_version", version, 64)?;
        let now = now_ms();
        self.store()
            .record_terms(tenant_id, user_id, version, now)
            .await?;
        self.audit(AuditEvent {
            tenant_id: Some(tenant_id.to_owned()),
            event_type: "terms.accepted".into(),
            user_id: Some(user_id.to_owned()),
            detail: format!("version {version}"),
            ..Default::default()
        })
        .await;
        Ok(now)
    }

    /// All of a user's devices, revoked ones included.
    pub async fn list_devices(&self, tenant_id: &str, user_id: &str) -> Result<Vec<Device>> {
        input::user_id(user_id)?;
        Ok(self.store().list_devices(tenant_id, user_id).await?)
    }

    /// Revokes one device of this tenant.
    pub async fn revoke_device(&self, tenant_id: &str, device_id: &str) -> Result<Device> {
        input::id("device_id", device_id)?;
        let device = match self.store().get_device(device_id).await? {
            Some(d) if d.tenant_id == tenant_id => d,
            _ => return Err(Error::not_found("device")),
        };
        if self.store().revoke_device(device_id, now_ms()).await? {
            self.audit_device(
                &device,
                "device.revoked",
                None,
                "revoked by an administrator",
                None,
            )
            .await;
        }
        self.store()
            .get_device(device_id)
            .await?
            .ok_or(Error::not_found("device"))
    }

    /// Revokes every device of a user and cancels what is open, so that the
    /// person can enroll again.
    pub async fn reset_user(&self, tenant_id: &str, user_id: &str) -> Result<ResetCounts> {
        input::user_id(user_id)?;
        if self.store().get_user(tenant_id, user_id).await?.is_none() {
            return Err(Error::not_found("user"));
        }
        let reset = self
            .store()
            .reset_user(tenant_id, user_id, now_ms())
            .await?;
        for id in &reset.cancelled_challenges {
            self.events().publish(Change::Challenge(id.clone()));
        }
        for id in &reset.cancelled_enrollments {
            self.events().publish(Change::Enrollment(id.clone()));
        }
        metrics::challenges_cancelled(tenant_id, reset.cancelled_sign_ins);
        for _ in &reset.cancelled_enrollments {
            metrics::enrollment(tenant_id, "cancelled");
        }
        let counts = ResetCounts {
            revoked_devices: reset.revoked_devices.len() as u32,
            cancelled_challenges: reset.cancelled_challenges.len() as u32,
            cancelled_enrollments: reset.cancelled_enrollments.len() as u32,
        };
        self.audit(AuditEvent {
            tenant_id: Some(tenant_id.to_owned()),
            event_type: "user.reset".into(),
            user_id: Some(user_id.to_owned()),
            detail: format!(
                "revoked {} devices, cancelled {} challenges and {} enrollments",
                counts.revoked_devices, counts.cancelled_challenges, counts.cancelled_enrollments
            ),
            ..Default::default()
        })
        .await;
        Ok(counts)
    }

    /// Deletes a user and their data (devices, challenges with their push
    /// deliveries, enrollments, device nonces, the user's record) in one
    /// store transaction; `by` names who asked, for the `user.deleted` audit
    /// entry, which holds counts and no user id. Their pending challenges
    /// and open enrollments are cancelled first and announced, so that a
    /// watch on one re-reads and ends with NOT_FOUND. Their audit events are
    /// kept without anything that points to them. Idempotent: an unknown or
    /// already deleted user is no error and counts nothing.
    pub async fn delete_user(
        &self,
        tenant_id: &str,
        user_id: &str,
        by: &str,
    ) -> Result<DeletionCounts> {
        input::user_id(user_id)?;
        let deleted = self
            .store()
            .delete_user(tenant_id, user_id, by, now_ms())
            .await?;
        for id in &deleted.cancelled_challenges {
            self.events().publish(Change::Challenge(id.clone()));
        }
        for id in &deleted.cancelled_enrollments {
            self.events().publish(Change::Enrollment(id.clone()));
        }
        metrics::challenges_cancelled(tenant_id, deleted.cancelled_sign_ins);
        for _ in &deleted.cancelled_enrollments {
            metrics::enrollment(tenant_id, "cancelled");
        }
        let count = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        let counts = DeletionCounts {
            user_found: deleted.found,
            deleted_devices: count(deleted.devices),
            deleted_challenges: count(deleted.challenges),
            deleted_enrollments: count(deleted.enrollments),
            cancelled_challenges: deleted.cancelled_challenges.len() as u32,
            cancelled_enrollments: deleted.cancelled_enrollments.len() as u32,
            anonymised_audit_events: count(deleted.anonymised_audit_events),
        };
        if deleted.found {
            // The tenant and counts only: the log names no one either.
            tracing::info!(
                tenant_id,
                devices = counts.deleted_devices,
                challenges = counts.deleted_challenges,
                enrollments = counts.deleted_enrollments,
                "user deleted"
            );
        }
        Ok(counts)
    }

    /// Lifts a fraud block.
    pub async fn unblock_user(&self, tenant_id: &str, user_id: &str) -> Result<()> {
        input::user_id(user_id)?;
        if !self
            .store()
            .set_blocked_until(tenant_id, user_id, None)
            .await?
        {
            return Err(Error::not_found("user"));
        }
        self.audit(AuditEvent {
            tenant_id: Some(tenant_id.to_owned()),
            event_type: "user.unblocked".into(),
            user_id: Some(user_id.to_owned()),
            ..Default::default()
        })
        .await;
        Ok(())
    }

    /// A page of audit events, newest first, and the token of the next page.
    pub async fn audit_events(
        &self,
        tenant_id: &str,
        user_id: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<(Vec<AuditEvent>, String)> {
        let user_id = (!user_id.is_empty()).then_some(user_id);
        if let Some(user_id) = user_id {
            input::user_id(user_id)?;
        }
        let limit = match page_size {
            0 => 100,
            1..=1000 => i64::from(page_size),
            _ => return Err(Error::invalid("page_size must be between 0 and 1000")),
        };
        let before = match page_token {
            "" => None,
            token => Some(
                token
                    .parse::<i64>()
                    .map_err(|_| Error::invalid("page_token is not one this server issued"))?,
            ),
        };
        let events = self
            .store()
            .list_audit(tenant_id, user_id, before, limit)
            .await?;
        let next = match events.last() {
            Some(last) if events.len() as i64 == limit => last.id.to_string(),
            _ => String::new(),
        };
        Ok((events, next))
    }
}
