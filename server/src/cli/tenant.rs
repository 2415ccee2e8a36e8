//! `mfa-server tenant …`: the organisations the service serves, and their
//! settings (display name, digits, lifetimes, offline codes, device policy).

use super::{duration, time, CliResult, Table};
use clap::{ArgGroup, Subcommand};
use mfa_server::{
    config::Config,
    domain::{names, TenantSummary},
    model::{KeyAlgorithm, Tenant, TenantChanges, UserVerification},
    server,
};
use std::{collections::BTreeSet, time::Duration};

#[derive(Subcommand)]
pub enum TenantCommand {
    /// Creates a tenant and prints its id.
    Create {
        /// Display name shown in the app, e.g. "IHIGrp (External Collaboration)".
        #[arg(long)]
        name: String,
        /// Digits in challenge numbers (2 to 6).
        #[arg(long, default_value_t = 2)]
        digits: u8,
    },
    /// Lists every tenant: id, digits, lifetimes, when created, name.
    List,
    /// Shows a tenant's settings and how many users, active devices and
    /// pending challenges it has.
    Show {
        /// The tenant's id.
        id: String,
    },
    /// Changes a tenant's settings. Running servers use them for new
    /// challenges and enrollments within `tenant_cache_ttl`.
    #[command(group(
        ArgGroup::new("changes")
            .required(true)
            .multiple(true)
            .args([
                "name",
                "digits",
                "challenge_ttl",
                "enrollment_ttl",
                "default_ttls",
                "key_algorithms",
                "user_verification",
                "offline_codes",
            ])
    ))]
    Update {
        /// The tenant's id.
        id: String,
        /// New display name shown in the app.
        #[arg(long)]
        name: Option<String>,
        /// Digits in challenge numbers (2 to 6).
        #[arg(long)]
        digits: Option<u8>,
        /// How long this tenant's challenges wait for an answer (30s to 10m),
        /// instead of the server's `challenge_ttl`.
        #[arg(long, value_parser = humantime::parse_duration)]
        challenge_ttl: Option<Duration>,
        /// How long this tenant's activation codes stay valid (1m to 24h),
        /// instead of the server's `enrollment_ttl`.
        #[arg(long, value_parser = humantime::parse_duration)]
        enrollment_ttl: Option<Duration>,
        /// Goes back to the server's `challenge_ttl` and `enrollment_ttl`.
        #[arg(long, conflicts_with_all = ["challenge_ttl", "enrollment_ttl"])]
        default_ttls: bool,
        /// Whether the portal may sign users in with offline codes (`on` or
        /// `off`); on by default.
        #[arg(long, value_name = "on|off", value_parser = on_off)]
        offline_codes: Option<bool>,
        /// The device key algorithms new enrollments may use, comma-separated
        /// (`ed25519`, `ecdsa_p256_sha256`), or `all`. Devices already
        /// enrolled keep working.
        #[arg(long, value_name = "ALGORITHMS|all", value_parser = key_algorithms)]
        key_algorithms: Option<Algorithms>,
        /// Whether approvals need user verification: `none` (not required),
        /// `any` (a device PIN or a biometric), or the accepted methods,
        /// comma-separated (`device_pin`, `biometric`).
        #[arg(long, value_name = "none|any|METHODS", value_parser = user_verification)]
        user_verification: Option<Methods>,
    },
}

pub async fn run(config: &Config, command: TenantCommand) -> CliResult {
    let service = server::build_service(config, config.public_url()).await?;
    match command {
        TenantCommand::Create { name, digits } => {
            let tenant = service.create_tenant(&name, digits).await?;
            println!("{}", tenant.id);
        }
        TenantCommand::List => {
            let mut table = Table::new([
                "ID",
                "DIGITS",
                "CHALLENGE_TTL",
                "ENROLLMENT_TTL",
                "CREATED",
                "NAME",
            ]);
            for tenant in service.list_tenants().await? {
                table.row([
                    tenant.id.clone(),
                    tenant.number_digits.to_string(),
                    setting(tenant.challenge_ttl),
                    setting(tenant.enrollment_ttl),
                    time(tenant.created_at),
                    tenant.display_name,
                ]);
            }
            print!("{table}");
        }
        TenantCommand::Show { id } => {
            print!("{}", describe(config, &service.tenant_summary(&id).await?));
        }
        TenantCommand::Update {
            id,
            name,
            digits,
            challenge_ttl,
            enrollment_ttl,
            default_ttls,
            offline_codes,
            key_algorithms,
            user_verification,
        } => {
            let changes = TenantChanges {
                display_name: name,
                number_digits: digits,
                challenge_ttl: challenge_ttl.map(Some).or(default_ttls.then_some(None)),
                enrollment_ttl: enrollment_ttl.map(Some).or(default_ttls.then_some(None)),
                offline_codes_enabled: offline_codes,
                allowed_key_algorithms: key_algorithms.map(|a| a.0),
                user_verification: user_verification.map(|m| m.0),
            };
            let tenant = service.update_tenant(&id, &changes).await?;
            print!("{}", settings(config, &tenant));
            println!(
                "running servers use these settings for new challenges and enrollments \
                 within {} (tenant_cache_ttl)",
                duration(config.tenant_cache_ttl)
            );
        }
    }
    Ok(())
}

/// `on` or `off`.
fn on_off(value: &str) -> Result<bool, String> {
    match value {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{value:?}: give on or off")),
    }
}

/// `--key-algorithms`: a set, or `None` for every algorithm.
#[derive(Debug, Clone)]
pub struct Algorithms(Option<BTreeSet<KeyAlgorithm>>);

fn key_algorithms(text: &str) -> Result<Algorithms, String> {
    if text == "all" {
        return Ok(Algorithms(None));
    }
    text.split(',')
        .map(|name| {
            KeyAlgorithm::parse(name.trim()).ok_or_else(|| {
                format!("unknown key algorithm {name:?}: use ed25519, ecdsa_p256_sha256 or all")
            })
        })
        .collect::<Result<_, _>>()
        .map(|set| Algorithms(Some(set)))
}

/// `--user-verification`: the accepted methods, or `None` for not required.
#[derive(Debug, Clone)]
pub struct Methods(Option<BTreeSet<UserVerification>>);

fn user_verification(text: &str) -> Result<Methods, String> {
    match text {
        "none" => Ok(Methods(None)),
        "any" => Ok(Methods(Some(
            [UserVerification::DevicePin, UserVerification::Biometric].into(),
        ))),
        list => list
            .split(',')
            .map(|name| match UserVerification::parse(name.trim()) {
                Some(UserVerification::None) | None => Err(format!(
                    "unknown method {name:?}: use none, any, or device_pin and/or biometric"
                )),
                Some(method) => Ok(method),
            })
            .collect::<Result<_, _>>()
            .map(|set| Methods(Some(set))),
    }
}

/// A tenant's own lifetime, or `default` for the server's.
fn setting(ttl: Option<Duration>) -> String {
    ttl.map_or_else(|| "default".to_owned(), duration)
}

/// A lifetime in effect and where it comes from.
fn in_effect(ttl: Option<Duration>, default: Duration, key: &str) -> String {
    match ttl {
        Some(ttl) => format!("{} (this tenant's)", duration(ttl)),
        None => format!("{} (the server's {key})", duration(default)),
    }
}

/// A tenant's settings, one `name: value` line each.
fn settings(config: &Config, tenant: &Tenant) -> String {
    let challenge = in_effect(tenant.challenge_ttl, config.challenge_ttl, "challenge_ttl");
    let enrollment = in_effect(
        tenant.enrollment_ttl,
        config.enrollment_ttl,
        "enrollment_ttl",
    );
    [
        ("id", tenant.id.clone()),
        ("name", tenant.display_name.clone()),
        ("digits", tenant.number_digits.to_string()),
        ("challenge ttl", challenge),
        ("enrollment ttl", enrollment),
        (
            "offline codes",
            if tenant.offline_codes_enabled {
                "on"
            } else {
                "off"
            }
            .to_owned(),
        ),
        (
            "key algorithms",
            names(
                tenant.device_policy.allowed_key_algorithms.as_ref(),
                KeyAlgorithm::as_str,
                "all",
            ),
        ),
        (
            "user verification",
            names(
                tenant.device_policy.user_verification.as_ref(),
                UserVerification::as_str,
                "not required",
            ),
        ),
        ("created", time(tenant.created_at)),
    ]
    .iter()
    .map(|(name, value)| format!("{:<20}{value}\n", format!("{name}:")))
    .collect()
}

/// [`settings`] and the tenant's counts.
fn describe(config: &Config, summary: &TenantSummary) -> String {
    let counts = &summary.counts;
    let mut text = settings(config, &summary.tenant);
    for (name, value) in [
        ("users", counts.users),
        ("active devices", counts.active_devices),
        ("pending challenges", counts.pending_challenges),
    ] {
        text.push_str(&format!("{:<20}{value}\n", format!("{name}:")));
    }
    text
}
