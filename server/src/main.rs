//! The `mfa-server` command: parses the command line and hands it to
//! [`cli`], whose files hold one operator command each; everything they do
//! is the library's.

mod cli;

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match cli::run(cli::Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mfa-server: {error}");
            ExitCode::FAILURE
        }
    }
}
