//! The statements of the OpenID provider's operations, the same on every
//! backend. Parameters are numbered in the order they first appear, which
//! SQLite needs for positional binding.

use super::{StoreError, StoreResult};
use crate::model::{Authorization, OidcClient};

/// A client's redirect URIs and Entra tenant, as stored (JSON).
pub fn client_json(client: &OidcClient) -> StoreResult<(String, Option<String>)> {
    let json = |e: serde_json::Error| StoreError::Corrupt(e.to_string());
    let uris = serde_json::to_string(&client.redirect_uris).map_err(json)?;
    let entra = client
        .entra
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(json)?;
    Ok((uris, entra))
}

/// An authorization's hint subject, as stored (JSON).
pub fn subject_json(authorization: &Authorization) -> StoreResult<Option<String>> {
    authorization
        .subject
        .as_ref()
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// [`super::Store::add_signing_key`]: `$1`…`$5` the key's columns, `$6` the
/// time since which another key's creation makes this one unneeded.
pub const INSERT_SIGNING_KEY: &str =
    "INSERT INTO oidc_signing_keys (kid, private_key, certificate, created_at, signs_from)
     SELECT $1, $2, $3, $4, $5
     WHERE NOT EXISTS (SELECT 1 FROM oidc_signing_keys WHERE created_at >= $6)";
/// [`super::Store::signing_keys`].
pub const SIGNING_KEYS: &str = "SELECT * FROM oidc_signing_keys ORDER BY signs_from, kid";
/// [`super::Store::forget_signing_keys`]: `$1` the cutoff.
pub const FORGET_SIGNING_KEYS: &str = "DELETE FROM oidc_signing_keys WHERE kid IN (
         SELECT older.kid FROM oidc_signing_keys older
         WHERE EXISTS (SELECT 1 FROM oidc_signing_keys newer
                       WHERE newer.signs_from > older.signs_from AND newer.signs_from < $1))";

/// [`super::Store::create_oidc_client`]: `$1`…`$7` the client's columns.
pub const INSERT_CLIENT: &str = "INSERT INTO oidc_clients
     (client_id, tenant_id, display_name, secret_hash, redirect_uris, entra, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// [`super::Store::get_oidc_client`]: `$1` the client id.
pub const GET_CLIENT: &str = "SELECT * FROM oidc_clients WHERE client_id = $1";
/// [`super::Store::list_oidc_clients`]: `$1` the tenant.
pub const LIST_CLIENTS: &str =
    "SELECT * FROM oidc_clients WHERE tenant_id = $1 ORDER BY created_at, client_id";

/// [`super::Store::create_authorization`]: `$1`…`$16` the columns named.
pub const INSERT_AUTHORIZATION: &str = "INSERT INTO oidc_authorizations
     (id, tenant_id, client_id, user_id, email, pushed, redirect_uri, state, nonce,
      code_challenge, created_at, expires_at, response_type, subject, hint_hash, acr)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
/// [`super::Store::get_authorization`]: `$1` the id.
pub const GET_AUTHORIZATION: &str = "SELECT * FROM oidc_authorizations WHERE id = $1";
/// [`super::Store::set_authorization_step`]: `$1` challenge, `$2`
/// enrollment, `$3` the authorization.
pub const SET_STEP: &str = "UPDATE oidc_authorizations SET challenge_id = $1, enrollment_id = $2
     WHERE id = $3 AND finished_at IS NULL";
/// [`super::Store::finish_authorization`]: `$1` now, `$2` auth time, `$3`
/// code hash, `$4` code expiry, `$5` the authorization.
pub const FINISH: &str = "UPDATE oidc_authorizations
     SET finished_at = $1, auth_time = $2, code_hash = $3, code_expires_at = $4
     WHERE id = $5 AND finished_at IS NULL";
/// [`super::Store::redeem_code`]: `$1` now, `$2` the code's hash.
pub const REDEEM_CODE: &str = "UPDATE oidc_authorizations SET code_used_at = $1
     WHERE code_hash = $2 AND code_used_at IS NULL
     RETURNING *";
