//! `mfa-authenticator`: a command-line stand-in for the phone app, built on
//! the SDK (`mfa-sdk`).
//!
//! - `accounts.rs` keeps the enrolled accounts, one owner-only file each, in
//!   a private directory.
//! - `commands.rs` runs the commands: enroll, list, watch, approve, deny,
//!   code (the offline code, for when the portal cannot reach the phone).
//! - `terminal.rs` shows challenges and error explanations and reads answers.
//!
//! Challenges arrive by the pull path: `watch` asks the server for pending
//! challenges every few seconds, as the phone app does when it is opened.

mod accounts;
mod commands;
mod pin;
mod terminal;

use std::{path::PathBuf, process::ExitCode, time::Duration};

use clap::{Parser, Subcommand};
use mfa_sdk::KeyAlgorithm;

#[derive(Parser)]
#[command(
    name = "mfa-authenticator",
    version,
    about = "A stand-in for the phone app: enroll, then approve sign-ins by typing the number shown on the portal"
)]
struct Cli {
    /// Directory of the enrolled accounts (created owner-only; each account
    /// file, holding the device's secret key, is mode 0600).
    #[arg(long, global = true, env = "MFA_AUTHENTICATOR_HOME")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Adds an account from the portal's QR code link or manual code, then
    /// asks for the number the portal shows to confirm this device.
    Enroll {
        /// The link in the QR code (`mfa://enroll?...`); asked for when missing.
        #[arg(long, conflicts_with_all = ["code", "url"])]
        uri: Option<String>,
        /// The activation code for manual entry, e.g. `K7Q2M-9XW4T`.
        #[arg(long, requires = "url")]
        code: Option<String>,
        /// The server URL shown beneath the manual code.
        #[arg(long, requires = "code")]
        url: Option<String>,
        /// A name for this device, as the administrator sees it.
        #[arg(long, default_value = "mfa-authenticator")]
        name: String,
        /// Do not ask for the number now; confirm later with `approve --number N`.
        #[arg(long)]
        verify_later: bool,
        /// The device key's algorithm: `ed25519`, or `ecdsa_p256_sha256` (the
        /// algorithm of phones' secure hardware).
        #[arg(long, default_value = "ed25519", value_parser = key_algorithm)]
        key_algorithm: KeyAlgorithm,
    },
    /// Lists the accounts: the organisation's name and the user's e-mail.
    Accounts,
    /// Waits for sign-in requests and asks for the number of each.
    Watch {
        /// How often to ask the server for new requests, e.g. `2s` or `500ms`.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        poll_interval: Duration,
    },
    /// Approves the newest waiting request with the number shown on the sign-in screen.
    Approve {
        /// The number shown on the sign-in screen.
        #[arg(long)]
        number: String,
        /// This authenticator's PIN, for organisations that require you to
        /// unlock before approving (chosen by its first use); asked for when
        /// needed and not given.
        #[arg(long, env = "MFA_AUTHENTICATOR_PIN", hide_env_values = true)]
        pin: Option<String>,
        /// Only requests for the account with this e-mail.
        #[arg(long)]
        account: Option<String>,
    },
    /// Denies the newest waiting request.
    Deny {
        /// Reports that the sign-in was not yours ("this wasn't me"); your
        /// administrator is alerted and new sign-ins are blocked for a while.
        #[arg(long)]
        fraud: bool,
        /// Only requests for the account with this e-mail.
        #[arg(long)]
        account: Option<String>,
    },
    /// Shows each account's offline code: six digits to type into the
    /// portal when a push cannot reach this device. Needs no network.
    Code {
        /// Only the account with this e-mail.
        #[arg(long)]
        account: Option<String>,
    },
    /// Removes an account from the server and from this device.
    Remove {
        /// The account's e-mail.
        #[arg(long)]
        account: String,
    },
}

fn key_algorithm(name: &str) -> Result<KeyAlgorithm, String> {
    KeyAlgorithm::parse(name).ok_or_else(|| "use ed25519 or ecdsa_p256_sha256".to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match accounts::Accounts::open(cli.home) {
        Ok(accounts) => commands::run(cli.command, &accounts).await,
        Err(error) => Err(error.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::FAILURE
        }
    }
}
