//! Which `MFA_*` environment variables are configuration.
//!
//! A deployment's environment holds `MFA_*` variables that are not ours: the
//! ones Kubernetes adds for a Service named `mfa` (`MFA_PORT=tcp://…`,
//! `MFA_SERVICE_HOST`), or `MFA_PORTAL_KEY` exported for the SDK's example.
//! Only a variable whose first key (before any `__`) is a top-level key of
//! [`Config`] is read; the others are ignored, and their names (never their
//! values) are reported once at start. Below a known key the parsing stays
//! strict, so that a typo such as `MFA_TLS__CERTFILE` stops the server
//! instead of leaving TLS off.

use super::Config;
use figment::providers::Env;
use std::collections::BTreeSet;

/// The prefix of every configuration variable.
pub const PREFIX: &str = "MFA_";
/// `MFA_*` variables that are not configuration keys but are ours: the
/// configuration file (`--config`).
const NOT_KEYS: &[&str] = &["config"];

/// The top-level keys of [`Config`], read off its serialized default so that
/// a new field needs no second list.
pub fn top_level_keys() -> BTreeSet<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(fields)) => fields.into_iter().map(|(key, _)| key).collect(),
        _ => unreachable!("Config serializes as a map"),
    }
}

/// Whether a variable, with the prefix removed and `__` read as `.`, sets one
/// of our keys.
fn is_key(keys: &BTreeSet<String>, key: &str) -> bool {
    let first = key.split('.').next().unwrap_or_default();
    keys.contains(&first.to_ascii_lowercase())
}

/// The provider of the configuration variables.
pub fn provider() -> Env {
    let keys = top_level_keys();
    Env::prefixed(PREFIX)
        .split("__")
        .filter(move |key| is_key(&keys, key.as_str()))
}

/// Names of the `MFA_*` variables in this process's environment that are
/// neither configuration keys nor `MFA_CONFIG`, sorted.
pub fn ignored_variables() -> Vec<String> {
    let keys = top_level_keys();
    let mut ignored: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| {
            let Some(rest) = name
                .get(..PREFIX.len())
                .filter(|head| head.eq_ignore_ascii_case(PREFIX))
                .map(|_| &name[PREFIX.len()..])
            else {
                return false;
            };
            let key = rest.replace("__", ".");
            !NOT_KEYS.iter().any(|k| rest.eq_ignore_ascii_case(k)) && !is_key(&keys, &key)
        })
        .collect();
    ignored.sort();
    ignored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_top_level_fields() {
        let keys = top_level_keys();
        for key in ["listen", "push", "tls", "public_url", "trusted_proxies"] {
            assert!(keys.contains(key), "{key}");
        }
        assert!(is_key(&keys, "push.apns.topic"));
        assert!(is_key(&keys, "CHALLENGE_TTL"));
        for foreign in ["port", "service_host", "portal_key", "port_50051_tcp"] {
            assert!(!is_key(&keys, foreign), "{foreign}");
        }
    }
}
