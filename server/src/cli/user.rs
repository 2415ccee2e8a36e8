//! `mfa-server user …`: what an operator does about one person.

use super::CliResult;
use clap::Subcommand;
use mfa_server::{config::Config, server};

#[derive(Subcommand)]
pub enum UserCommand {
    /// Deletes a user and their data: devices, challenges, enrollments and
    /// the user's record; their audit events stay without anything that
    /// names them. Deleting an unknown or deleted user does nothing and
    /// succeeds.
    Delete {
        /// The tenant's id.
        #[arg(long)]
        tenant: String,
        /// The portal's identifier of the user.
        #[arg(long)]
        user: String,
    },
}

/// Who the `user.deleted` audit entry says asked.
const BY: &str = "mfa-server user delete";

pub async fn run(config: &Config, command: UserCommand) -> CliResult {
    let service = server::build_service(config, config.public_url()).await?;
    match command {
        UserCommand::Delete { tenant, user } => {
            service.known_tenant(&tenant).await?;
            let counts = service.delete_user(&tenant, &user, BY).await?;
            if counts.user_found {
                println!(
                    "deleted user {user:?} of tenant {tenant}: {} devices, {} challenges \
                     ({} pending, cancelled), {} enrollments ({} open, cancelled); \
                     {} audit events anonymised",
                    counts.deleted_devices,
                    counts.deleted_challenges,
                    counts.cancelled_challenges,
                    counts.deleted_enrollments,
                    counts.cancelled_enrollments,
                    counts.anonymised_audit_events,
                );
            } else {
                println!("no user {user:?} in tenant {tenant}: nothing to delete");
            }
        }
    }
    Ok(())
}
