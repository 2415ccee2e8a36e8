//! Turning stored rows into model values, written once for every backend:
//! the decoders read columns by name through [`Columns`], which any sqlx row
//! whose database stores text, 64-bit integers and bytes provides (PostgreSQL),
//! and the SQLite store's wrapper of a rusqlite row.

use super::{StoreError, StoreResult};
use crate::model::*;
use sqlx::{ColumnIndex, Decode, Row, Type};
use std::time::Duration;

/// Typed column access by name, whatever the backend.
pub(super) trait Columns {
    fn text(&self, column: &str) -> StoreResult<String>;
    fn optional_text(&self, column: &str) -> StoreResult<Option<String>>;
    fn integer(&self, column: &str) -> StoreResult<i64>;
    fn optional_integer(&self, column: &str) -> StoreResult<Option<i64>>;
    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>>;
    fn boolean(&self, column: &str) -> StoreResult<bool>;
    fn optional_bytes(&self, column: &str) -> StoreResult<Option<Vec<u8>>>;
}

impl<R> Columns for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, column: &str) -> StoreResult<String> {
        Ok(self.try_get(column)?)
    }

    fn optional_text(&self, column: &str) -> StoreResult<Option<String>> {
        Ok(self.try_get(column)?)
    }

    fn integer(&self, column: &str) -> StoreResult<i64> {
        Ok(self.try_get(column)?)
    }

    fn optional_integer(&self, column: &str) -> StoreResult<Option<i64>> {
        Ok(self.try_get(column)?)
    }

    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>> {
        Ok(self.try_get(column)?)
    }

    fn boolean(&self, column: &str) -> StoreResult<bool> {
        Ok(self.try_get(column)?)
    }

    fn optional_bytes(&self, column: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.try_get(column)?)
    }
}

/// The columns of a row whose names start with a prefix, read without it:
/// one table's columns in a join, renamed apart from another's.
pub(super) struct Prefixed<'a, C>(pub &'a str, pub &'a C);

impl<C: Columns> Columns for Prefixed<'_, C> {
    fn text(&self, column: &str) -> StoreResult<String> {
        self.1.text(&format!("{}{column}", self.0))
    }

    fn optional_text(&self, column: &str) -> StoreResult<Option<String>> {
        self.1.optional_text(&format!("{}{column}", self.0))
    }

    fn integer(&self, column: &str) -> StoreResult<i64> {
        self.1.integer(&format!("{}{column}", self.0))
    }

    fn optional_integer(&self, column: &str) -> StoreResult<Option<i64>> {
        self.1.optional_integer(&format!("{}{column}", self.0))
    }

    fn bytes(&self, column: &str) -> StoreResult<Vec<u8>> {
        self.1.bytes(&format!("{}{column}", self.0))
    }

    fn boolean(&self, column: &str) -> StoreResult<bool> {
        self.1.boolean(&format!("{}{column}", self.0))
    }

    fn optional_bytes(&self, column: &str) -> StoreResult<Option<Vec<u8>>> {
        self.1.optional_bytes(&format!("{}{column}", self.0))
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

fn parse<T>(parsed: Option<T>, what: &str) -> StoreResult<T> {
    parsed.ok_or_else(|| corrupt(what))
}

fn key32(bytes: Vec<u8>, what: &str) -> StoreResult<[u8; 32]> {
    bytes.try_into().map_err(|_| corrupt(what))
}

/// Maps a unique-constraint violation to [`StoreError::Duplicate`].
pub(super) fn unique_violation(error: sqlx::Error, what: &'static str) -> StoreError {
    match &error {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Duplicate(what),
        _ => StoreError::Unavailable(error),
    }
}

pub(super) fn api_key(row: &impl Columns) -> StoreResult<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: row.text("id")?,
        tenant_id: row.text("tenant_id")?,
        role: parse(Role::parse(&row.text("role")?), "role")?,
        created_at: row.integer("created_at")?,
        revoked_at: row.optional_integer("revoked_at")?,
        last_used_at: row.optional_integer("last_used_at")?,
    })
}

pub(super) fn tenant(row: &impl Columns) -> StoreResult<Tenant> {
    Ok(Tenant {
        id: row.text("id")?,
        display_name: row.text("display_name")?,
        number_digits: u8::try_from(row.integer("number_digits")?)
            .map_err(|_| corrupt("number digits"))?,
        created_at: row.integer("created_at")?,
        challenge_ttl: lifetime(row.optional_integer("challenge_ttl_ms")?, "challenge TTL")?,
        enrollment_ttl: lifetime(row.optional_integer("enrollment_ttl_ms")?, "enrollment TTL")?,
        offline_codes_enabled: row.boolean("offline_codes_enabled")?,
        device_policy: DevicePolicy {
            allowed_key_algorithms: name_set(
                row.optional_text("allowed_key_algorithms")?,
                KeyAlgorithm::parse,
                "allowed key algorithms",
            )?,
            user_verification: name_set(
                row.optional_text("user_verification")?,
                UserVerification::parse,
                "user verification",
            )?,
        },
    })
}

/// A stored set of names, comma-separated (NULL: no set).
fn name_set<T: Ord>(
    text: Option<String>,
    parse_name: impl Fn(&str) -> Option<T>,
    what: &str,
) -> StoreResult<Option<std::collections::BTreeSet<T>>> {
    text.map(|text| {
        text.split(',')
            .map(|name| parse_name(name).ok_or_else(|| corrupt(what)))
            .collect()
    })
    .transpose()
}

/// A stored lifetime in milliseconds (NULL: the server's default).
fn lifetime(ms: Option<i64>, what: &str) -> StoreResult<Option<Duration>> {
    ms.map(|ms| u64::try_from(ms).map(Duration::from_millis))
        .transpose()
        .map_err(|_| corrupt(what))
}

pub(super) fn offline_secret(row: &impl Columns) -> StoreResult<OfflineSecret> {
    Ok(OfflineSecret {
        device_id: row.text("device_id")?,
        sealed: row.bytes("sealed")?,
        last_step: row.optional_integer("last_step")?,
    })
}

pub(super) fn user(row: &impl Columns) -> StoreResult<User> {
    Ok(User {
        tenant_id: row.text("tenant_id")?,
        user_id: row.text("user_id")?,
        email: row.text("email")?,
        blocked_until: row.optional_integer("blocked_until")?,
        terms_version: row.optional_text("terms_version")?,
        terms_accepted_at: row.optional_integer("terms_accepted_at")?,
    })
}

pub(super) fn device(row: &impl Columns) -> StoreResult<Device> {
    Ok(Device {
        id: row.text("id")?,
        tenant_id: row.text("tenant_id")?,
        user_id: row.text("user_id")?,
        display_name: row.text("display_name")?,
        key_algorithm: parse(
            KeyAlgorithm::parse(&row.text("key_algorithm")?),
            "device key algorithm",
        )?,
        public_key: row.bytes("public_key")?,
        push_platform: parse(
            PushPlatform::parse(&row.text("push_platform")?),
            "push platform",
        )?,
        push_token: row.text("push_token")?,
        state: parse(DeviceState::parse(&row.text("state")?), "device state")?,
        created_at: row.integer("created_at")?,
        revoked_at: row.optional_integer("revoked_at")?,
        push_token_invalid: match row.optional_integer("push_token_invalid_at")? {
            Some(since) => Some(PushTokenInvalid {
                since,
                reason: row.text("push_token_invalid_reason")?,
            }),
            None => None,
        },
    })
}

/// A row of [`super::COUNT_UNREACHABLE_DEVICES`].
pub(super) fn unreachable_devices(row: &impl Columns) -> StoreResult<UnreachableDevices> {
    Ok(UnreachableDevices {
        tenant_id: row.text("tenant_id")?,
        platform: parse(
            PushPlatform::parse(&row.text("push_platform")?),
            "push platform",
        )?,
        status: match row.text("status")?.as_str() {
            "token_invalid" => "token_invalid",
            _ => "no_token",
        },
        count: row.integer("count")?,
    })
}

/// A row of [`super::PROVIDER_TOKEN`].
pub(super) fn provider_token(row: &impl Columns) -> StoreResult<ProviderToken> {
    Ok(ProviderToken {
        token: row.text("token")?,
        issued_at: row.integer("issued_at")?,
    })
}

/// A row of [`super::USER_WITH_DEVICES`]: the user, and a device of theirs
/// unless they have none.
pub(super) fn user_and_device(row: &impl Columns) -> StoreResult<(User, Option<Device>)> {
    let device = match row.optional_text("id")? {
        Some(_) => Some(device(row)?),
        None => None,
    };
    Ok((user(row)?, device))
}

/// The rows of [`super::USER_WITH_DEVICES`] as the user and their devices;
/// `None` when there is no row (no such user).
pub(super) fn user_with_devices(rows: Vec<(User, Option<Device>)>) -> Option<(User, Vec<Device>)> {
    let mut rows = rows.into_iter();
    let (user, first) = rows.next()?;
    let devices = first
        .into_iter()
        .chain(rows.filter_map(|(_, device)| device))
        .collect();
    Some((user, devices))
}

/// A pending challenge with its user's e-mail (the `user_email` column).
pub(super) fn challenge_with_email(row: &impl Columns) -> StoreResult<(Challenge, String)> {
    Ok((challenge(row)?, row.text("user_email")?))
}

pub(super) fn enrollment(row: &impl Columns) -> StoreResult<Enrollment> {
    Ok(Enrollment {
        id: row.text("id")?,
        tenant_id: row.text("tenant_id")?,
        user_id: row.text("user_id")?,
        state: parse(
            EnrollmentState::parse(&row.text("state")?),
            "enrollment state",
        )?,
        created_at: row.integer("created_at")?,
        expires_at: row.integer("expires_at")?,
        device_id: row.optional_text("device_id")?,
        challenge_id: row.optional_text("challenge_id")?,
    })
}

pub(super) fn delivery(row: &impl Columns) -> StoreResult<PushDelivery> {
    Ok(PushDelivery {
        challenge_id: row.text("challenge_id")?,
        device_id: row.text("device_id")?,
        push_platform: parse(
            PushPlatform::parse(&row.text("push_platform")?),
            "push platform",
        )?,
        state: parse(DeliveryState::parse(&row.text("state")?), "delivery state")?,
        attempts: u32::try_from(row.integer("attempts")?)
            .map_err(|_| corrupt("delivery attempts"))?,
        provider_message_id: row.text("provider_message_id")?,
        reason: row.text("reason")?,
        updated_at: row.integer("updated_at")?,
    })
}

pub(super) fn challenge(row: &impl Columns) -> StoreResult<Challenge> {
    Ok(Challenge {
        id: row.text("id")?,
        tenant_id: row.text("tenant_id")?,
        user_id: row.text("user_id")?,
        kind: parse(ChallengeKind::parse(&row.text("kind")?), "challenge kind")?,
        target_device_id: row.optional_text("target_device_id")?,
        number: row.text("number")?,
        nonce: key32(row.bytes("nonce")?, "challenge nonce")?,
        state: parse(
            ChallengeState::parse(&row.text("state")?),
            "challenge state",
        )?,
        deny_reason: match row.optional_text("deny_reason")? {
            Some(reason) => Some(parse(DenyReason::parse(&reason), "deny reason")?),
            None => None,
        },
        answered_by: row.optional_text("answered_by")?,
        context: SignInContext {
            application_name: row.text("application_name")?,
            client_ip: row.text("client_ip")?,
            location: row.text("location")?,
            message: row.text("message")?,
        },
        created_at: row.integer("created_at")?,
        expires_at: row.integer("expires_at")?,
        ended_at: row.optional_integer("ended_at")?,
    })
}

/// A challenge that just ended, without an enrollment.
pub(super) fn ended(row: &impl Columns) -> StoreResult<super::Ended> {
    Ok(super::Ended {
        challenge: challenge(row)?,
        enrollment_id: None,
    })
}

pub(super) fn audit_event(row: &impl Columns) -> StoreResult<AuditEvent> {
    Ok(AuditEvent {
        id: row.integer("id")?,
        tenant_id: row.optional_text("tenant_id")?,
        at: row.integer("at")?,
        event_type: row.text("event_type")?,
        user_id: row.optional_text("user_id")?,
        device_id: row.optional_text("device_id")?,
        challenge_id: row.optional_text("challenge_id")?,
        enrollment_id: row.optional_text("enrollment_id")?,
        detail: row.text("detail")?,
        client_address: row.optional_text("client_address")?,
        count: row.integer("count")?,
    })
}

/// How many of the cancelled challenges, given as `(id, kind)`, were
/// sign-ins, and their ids.
pub(super) fn cancelled(cancelled: Vec<(String, String)>) -> (Vec<String>, u32) {
    let sign_ins = cancelled
        .iter()
        .filter(|(_, kind)| kind == ChallengeKind::SignIn.as_str())
        .count() as u32;
    (cancelled.into_iter().map(|(id, _)| id).collect(), sign_ins)
}

/// The reset summary of cancelled challenges given as `(id, kind)`.
pub(super) fn reset(
    revoked_devices: Vec<String>,
    cancelled: Vec<(String, String)>,
    cancelled_enrollments: Vec<String>,
) -> super::Reset {
    let (cancelled_challenges, cancelled_sign_ins) = self::cancelled(cancelled);
    super::Reset {
        revoked_devices,
        cancelled_challenges,
        cancelled_sign_ins,
        cancelled_enrollments,
    }
}

pub(super) fn signing_key(row: &impl Columns) -> StoreResult<SigningKey> {
    Ok(SigningKey {
        kid: row.text("kid")?,
        private_key: row.bytes("private_key")?,
        certificate: row.bytes("certificate")?,
        created_at: row.integer("created_at")?,
        signs_from: row.integer("signs_from")?,
    })
}

pub(super) fn oidc_client(row: &impl Columns) -> StoreResult<OidcClient> {
    let secret_hash = match row.optional_bytes("secret_hash")? {
        Some(hash) => Some(key32(hash, "client secret hash")?),
        None => None,
    };
    Ok(OidcClient {
        client_id: row.text("client_id")?,
        tenant_id: row.text("tenant_id")?,
        display_name: row.text("display_name")?,
        secret_hash,
        redirect_uris: serde_json::from_str(&row.text("redirect_uris")?)
            .map_err(|_| corrupt("redirect URIs"))?,
        entra: json_column(row.optional_text("entra")?, "Entra tenant")?,
        created_at: row.integer("created_at")?,
    })
}

pub(super) fn authorization(row: &impl Columns) -> StoreResult<Authorization> {
    Ok(Authorization {
        id: row.text("id")?,
        tenant_id: row.text("tenant_id")?,
        client_id: row.text("client_id")?,
        user_id: row.text("user_id")?,
        email: row.text("email")?,
        pushed: row.integer("pushed")? != 0,
        response_type: parse(
            ResponseType::parse(&row.text("response_type")?),
            "response type",
        )?,
        subject: json_column(row.optional_text("subject")?, "hint subject")?,
        acr: row.optional_text("acr")?,
        hint_hash: match row.optional_bytes("hint_hash")? {
            Some(hash) => Some(key32(hash, "hint hash")?),
            None => None,
        },
        redirect_uri: row.text("redirect_uri")?,
        state: row.optional_text("state")?,
        nonce: row.optional_text("nonce")?,
        code_challenge: row.optional_text("code_challenge")?,
        challenge_id: row.optional_text("challenge_id")?,
        enrollment_id: row.optional_text("enrollment_id")?,
        created_at: row.integer("created_at")?,
        expires_at: row.integer("expires_at")?,
        finished_at: row.optional_integer("finished_at")?,
        auth_time: row.optional_integer("auth_time")?,
        code_expires_at: row.optional_integer("code_expires_at")?,
        code_used_at: row.optional_integer("code_used_at")?,
    })
}

/// A nullable column holding JSON.
fn json_column<T: serde::de::DeserializeOwned>(
    text: Option<String>,
    what: &str,
) -> StoreResult<Option<T>> {
    text.map(|t| serde_json::from_str(&t).map_err(|_| corrupt(what)))
        .transpose()
}
