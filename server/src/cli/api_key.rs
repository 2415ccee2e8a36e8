//! `mfa-server api-key …`: the portal's and administrators' keys.

use super::{optional_time, time, CliResult, Table};
use clap::{Subcommand, ValueEnum};
use mfa_server::{config::Config, model::Role, server};

#[derive(Subcommand)]
pub enum ApiKeyCommand {
    /// Creates an API key and prints it once (only its hash is stored).
    Create {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
        /// What the key may call.
        #[arg(long, value_enum)]
        role: KeyRole,
    },
    /// Lists API keys: id, role, when created, revoked and last used, and
    /// tenant (never the keys themselves).
    List {
        /// Only this tenant's keys; every tenant's without it.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Revokes an API key. Running servers accept it for at most
    /// `api_key_cache_ttl` more.
    Revoke {
        /// The key's id (as `api-key list` shows it).
        id: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum KeyRole {
    Portal,
    Admin,
}

pub async fn run(config: &Config, command: ApiKeyCommand) -> CliResult {
    let service = server::build_service(config, config.public_url()).await?;
    match command {
        ApiKeyCommand::Create { tenant, role } => {
            let role = match role {
                KeyRole::Portal => Role::Portal,
                KeyRole::Admin => Role::Admin,
            };
            let key = service.create_api_key(&tenant, role).await?;
            println!("{}", key.secret);
            eprintln!(
                "(key id {}; this is the only time the key is shown)",
                key.id
            );
        }
        ApiKeyCommand::List { tenant } => {
            let keys = service.list_api_keys(tenant.as_deref()).await?;
            let mut table = Table::new(["ID", "ROLE", "CREATED", "REVOKED", "LAST_USED", "TENANT"]);
            for key in keys {
                table.row([
                    key.id,
                    key.role.as_str().to_owned(),
                    time(key.created_at),
                    optional_time(key.revoked_at),
                    optional_time(key.last_used_at),
                    key.tenant_id,
                ]);
            }
            print!("{table}");
        }
        ApiKeyCommand::Revoke { id } => match service.revoke_api_key(&id).await? {
            (key, true) => println!(
                "revoked API key {} ({} key of tenant {}); servers that checked it \
                 recently accept it for at most {} more (api_key_cache_ttl)",
                key.id,
                key.role.as_str(),
                key.tenant_id,
                humantime::format_duration(config.api_key_cache_ttl),
            ),
            (key, false) => println!(
                "API key {} was already revoked at {}",
                key.id,
                optional_time(key.revoked_at),
            ),
        },
    }
    Ok(())
}
