//! `mfa-server tenant …`: the organisations the service serves.

use super::CliResult;
use clap::Subcommand;
use mfa_server::{config::Config, server};

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
}

pub async fn run(config: &Config, command: TenantCommand) -> CliResult {
    let service = server::build_service(config, config.public_url()).await?;
    match command {
        TenantCommand::Create { name, digits } => {
            let tenant = service.create_tenant(&name, digits).await?;
            println!("{}", tenant.id);
        }
    }
    Ok(())
}
