//! `mfa-server config show`: the effective configuration, one key a line in
//! TOML (so that it can be copied into a file), each with where its value
//! came from, and with secrets redacted.

use super::{environment::PREFIX, Loaded};
use serde_json::Value;
use std::fmt::Write;

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(String),
    /// An environment variable, by name.
    Environment(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(path) => write!(f, "file {path}"),
            Self::Environment(name) => write!(f, "environment {name}"),
        }
    }
}

impl Loaded {
    /// Where the value of a dotted key (`push.apns.topic`) came from.
    pub fn source(&self, key: &str) -> Source {
        match self.figment.find_metadata(key) {
            Some(metadata) if metadata.name.contains("environment") => Source::Environment(
                format!("{PREFIX}{}", key.replace('.', "__").to_ascii_uppercase()),
            ),
            Some(metadata) if metadata.name.contains("file") => Source::File(
                metadata
                    .source
                    .as_ref()
                    .map_or_else(|| "?".to_owned(), ToString::to_string),
            ),
            _ => Source::Default,
        }
    }

    /// The effective configuration as TOML lines, each followed by its
    /// source; unset optional keys are shown commented out.
    pub fn show(&self) -> String {
        let Ok(Value::Object(fields)) = serde_json::to_value(&self.config) else {
            unreachable!("Config serializes as a map");
        };
        let mut leaves = Vec::new();
        flatten("", &Value::Object(fields), &mut leaves);
        let mut out = String::new();
        for (key, value) in leaves {
            let source = self.source(&key);
            let line = match value {
                Value::Null => format!("# {key} = (not set)"),
                value => format!("{key} = {}", toml_value(&redact(&key, value))),
            };
            let _ = writeln!(out, "{line:<60} # {source}");
        }
        out
    }
}

/// Every leaf of `value` with its dotted key, in the order serde gives them.
fn flatten(prefix: &str, value: &Value, leaves: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(fields) if !fields.is_empty() || prefix.is_empty() => {
            for (key, value) in fields {
                let key = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten(&key, value, leaves);
            }
        }
        other => leaves.push((prefix.to_owned(), other.clone())),
    }
}

/// A value with any secret hidden: the password of a database or proxy
/// URL, and any key that names a password or secret outright.
fn redact(key: &str, value: Value) -> Value {
    match value {
        Value::String(url) if key == "database_url" => {
            Value::String(crate::store::redacted_url(&url))
        }
        Value::String(url) if key == "push.proxy" => {
            Value::String(crate::push::proxy::redacted(&url))
        }
        Value::String(_) if key.contains("password") || key.contains("secret") => {
            Value::String("***".into())
        }
        other => other,
    }
}

/// A JSON scalar or array written as TOML.
fn toml_value(value: &Value) -> String {
    match value {
        // JSON's string escapes are TOML's basic-string escapes.
        Value::String(_) | Value::Number(_) | Value::Bool(_) => value.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(toml_value).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(_) => "{}".to_owned(),
        Value::Null => String::new(),
    }
}
