//! `mfa-server config show`: the configuration in effect.

use super::CliResult;
use clap::Subcommand;
use mfa_server::config::Loaded;

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Prints the effective configuration as TOML, each value with its
    /// source (default, file, environment), secrets redacted.
    Show,
}

pub fn run(loaded: &Loaded, command: ConfigCommand) -> CliResult {
    match command {
        ConfigCommand::Show => print!("{}", loaded.show()),
    }
    Ok(())
}
