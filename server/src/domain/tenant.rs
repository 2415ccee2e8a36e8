//! Tenants: the organisations served, each with its display name, the digits
//! of its numbers and, if it chooses, its own challenge and enrollment
//! lifetimes. Operators manage them with `mfa-server tenant …`; every
//! replica reads them through a cache of `tenant_cache_ttl`, so that a change
//! reaches running servers within that time.

use super::{input, new_id, now_ms, Error, Result, Service};
use crate::{model::*, store::TenantCounts};
use std::{collections::BTreeSet, ops::RangeInclusive, time::Duration};

/// The challenge lifetimes a tenant may choose: long enough to find the
/// phone, short enough that a forgotten sign-in does not wait for long.
pub const CHALLENGE_TTLS: RangeInclusive<Duration> =
    Duration::from_secs(30)..=Duration::from_secs(10 * 60);
/// The activation code lifetimes a tenant may choose: from a minute (the
/// person is at the desk) to a day (the code is sent ahead).
pub const ENROLLMENT_TTLS: RangeInclusive<Duration> =
    Duration::from_secs(60)..=Duration::from_secs(24 * 60 * 60);

/// A tenant with what it has, for `mfa-server tenant show`.
#[derive(Debug, Clone)]
pub struct TenantSummary {
    pub tenant: Tenant,
    pub counts: TenantCounts,
}

impl Service {
    /// Creates a tenant (CLI and `--dev`).
    pub async fn create_tenant(&self, display_name: &str, number_digits: u8) -> Result<Tenant> {
        check_name(display_name)?;
        check_digits(number_digits)?;
        let tenant = Tenant {
            id: new_id(),
            display_name: display_name.to_owned(),
            number_digits,
            created_at: now_ms(),
            challenge_ttl: None,
            enrollment_ttl: None,
            offline_codes_enabled: true,
            device_policy: DevicePolicy::default(),
        };
        self.store().create_tenant(&tenant).await?;
        Ok(tenant)
    }

    /// Every tenant, oldest first (CLI).
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        Ok(self.store().list_tenants().await?)
    }

    /// The tenant named by an operator (CLI): NOT_FOUND if there is none.
    pub async fn known_tenant(&self, tenant_id: &str) -> Result<Tenant> {
        input::id("tenant", tenant_id)?;
        self.store()
            .get_tenant(tenant_id)
            .await?
            .ok_or(Error::not_found("tenant"))
    }

    /// A tenant with its counts of users, active devices and pending
    /// challenges (CLI).
    pub async fn tenant_summary(&self, tenant_id: &str) -> Result<TenantSummary> {
        let tenant = self.known_tenant(tenant_id).await?;
        let counts = self.store().tenant_counts(tenant_id, now_ms()).await?;
        Ok(TenantSummary { tenant, counts })
    }

    /// Changes a tenant's settings (CLI), checking every change before any
    /// is made. New challenges and enrollments follow them on every running
    /// server within `tenant_cache_ttl`; those already open keep theirs.
    pub async fn update_tenant(&self, tenant_id: &str, changes: &TenantChanges) -> Result<Tenant> {
        input::id("tenant", tenant_id)?;
        if changes.is_empty() {
            return Err(Error::invalid(
                "nothing to change: give a name, digits, lifetimes, offline codes, key algorithms or user verification",
            ));
        }
        if let Some(name) = &changes.display_name {
            check_name(name)?;
        }
        if let Some(digits) = changes.number_digits {
            check_digits(digits)?;
        }
        if let Some(Some(ttl)) = changes.challenge_ttl {
            check_lifetime("challenge TTL", ttl, CHALLENGE_TTLS)?;
        }
        if let Some(Some(ttl)) = changes.enrollment_ttl {
            check_lifetime("enrollment TTL", ttl, ENROLLMENT_TTLS)?;
        }
        if changes
            .allowed_key_algorithms
            .as_ref()
            .is_some_and(|allowed| allowed.as_ref().is_some_and(BTreeSet::is_empty))
        {
            return Err(Error::invalid(
                "allow at least one key algorithm (or every one)",
            ));
        }
        if let Some(Some(methods)) = &changes.user_verification {
            if methods.is_empty() || methods.contains(&UserVerification::None) {
                return Err(Error::invalid(
                    "user verification methods must be device_pin, biometric or both",
                ));
            }
        }
        let tenant = self
            .store()
            .update_tenant(tenant_id, changes)
            .await?
            .ok_or(Error::not_found("tenant"))?;
        self.inner.tenants.insert(tenant.id.clone(), tenant.clone());
        self.audit(AuditEvent {
            tenant_id: Some(tenant.id.clone()),
            event_type: "tenant.updated".into(),
            detail: describe(changes),
            ..Default::default()
        })
        .await;
        Ok(tenant)
    }

    /// How long a challenge of `tenant` waits for an answer.
    pub fn challenge_ttl(&self, tenant: &Tenant) -> Duration {
        tenant.challenge_ttl.unwrap_or(self.limits().challenge_ttl)
    }

    /// How long an activation code of `tenant` stays valid.
    pub fn enrollment_ttl(&self, tenant: &Tenant) -> Duration {
        tenant
            .enrollment_ttl
            .unwrap_or(self.limits().enrollment_ttl)
    }

    /// A tenant that an authenticated caller belongs to, from the cache when
    /// it was read within `tenant_cache_ttl`.
    pub(super) async fn tenant(&self, tenant_id: &str) -> Result<Tenant> {
        if let Some(tenant) = self.inner.tenants.get(tenant_id) {
            return Ok(tenant);
        }
        let tenant = self
            .store()
            .get_tenant(tenant_id)
            .await?
            .ok_or_else(|| Error::Internal(format!("tenant {tenant_id} vanished")))?;
        self.inner
            .tenants
            .insert(tenant_id.to_owned(), tenant.clone());
        Ok(tenant)
    }
}

fn check_name(name: &str) -> Result<()> {
    input::text("tenant name", name, 128)
}

fn check_digits(digits: u8) -> Result<()> {
    if !(2..=6).contains(&digits) {
        return Err(Error::invalid("digits must be between 2 and 6"));
    }
    Ok(())
}

fn check_lifetime(what: &str, ttl: Duration, allowed: RangeInclusive<Duration>) -> Result<()> {
    if !allowed.contains(&ttl) {
        return Err(Error::invalid(format!(
            "{what} must be between {} and {} (not {})",
            humantime::format_duration(*allowed.start()),
            humantime::format_duration(*allowed.end()),
            humantime::format_duration(ttl),
        )));
    }
    Ok(())
}

/// The audit detail of an update: what it set, in the CLI's words.
fn describe(changes: &TenantChanges) -> String {
    let lifetime = |ttl: Option<Duration>| {
        ttl.map_or_else(
            || "the server's default".to_owned(),
            |ttl| humantime::format_duration(ttl).to_string(),
        )
    };
    let mut set = Vec::new();
    if let Some(name) = &changes.display_name {
        set.push(format!("name {name:?}"));
    }
    if let Some(digits) = changes.number_digits {
        set.push(format!("digits {digits}"));
    }
    if let Some(ttl) = changes.challenge_ttl {
        set.push(format!("challenge TTL {}", lifetime(ttl)));
    }
    if let Some(ttl) = changes.enrollment_ttl {
        set.push(format!("enrollment TTL {}", lifetime(ttl)));
    }
    if let Some(on) = changes.offline_codes_enabled {
        set.push(format!("offline codes {}", if on { "on" } else { "off" }));
    }
    if let Some(allowed) = &changes.allowed_key_algorithms {
        set.push(format!(
            "key algorithms {}",
            names(allowed.as_ref(), KeyAlgorithm::as_str, "all")
        ));
    }
    if let Some(methods) = &changes.user_verification {
        set.push(format!(
            "user verification {}",
            names(methods.as_ref(), UserVerification::as_str, "not required")
        ));
    }
    format!("set {}", set.join(", "))
}

/// A set of names for people: `a, b`, or `none` for no set.
pub fn names<T: Copy>(
    set: Option<&BTreeSet<T>>,
    name: impl Fn(T) -> &'static str,
    none: &str,
) -> String {
    set.map_or_else(
        || none.to_owned(),
        |set| {
            set.iter()
                .map(|&item| name(item))
                .collect::<Vec<_>>()
                .join(" or ")
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_outside_their_range_are_refused_with_the_range() {
        let error = check_lifetime("challenge TTL", Duration::from_secs(5), CHALLENGE_TTLS)
            .unwrap_err()
            .to_string();
        assert_eq!(error, "challenge TTL must be between 30s and 10m (not 5s)");
        assert!(check_lifetime("x", Duration::from_secs(30), CHALLENGE_TTLS).is_ok());
        assert!(check_lifetime("x", Duration::from_secs(600), CHALLENGE_TTLS).is_ok());
        assert!(check_lifetime("x", Duration::from_secs(601), CHALLENGE_TTLS).is_err());
        assert!(check_lifetime("x", Duration::from_secs(59), ENROLLMENT_TTLS).is_err());
        assert!(check_lifetime("x", Duration::from_secs(86_400), ENROLLMENT_TTLS).is_ok());
        assert!(check_lifetime("x", Duration::from_secs(86_401), ENROLLMENT_TTLS).is_err());
    }

    #[test]
    fn an_update_is_described_in_the_cli_s_words() {
        let changes = TenantChanges {
            number_digits: Some(3),
            challenge_ttl: Some(Some(Duration::from_secs(90))),
            enrollment_ttl: Some(None),
            ..Default::default()
        };
        assert_eq!(
            describe(&changes),
            "set digits 3, challenge TTL 1m 30s, enrollment TTL the server's default"
        );
    }
}
