//! `mfa-server stats`: the latency table of a running server
//! ([`mfa_server::stats`]).

use super::CliResult;

pub async fn run(url: &str) -> CliResult {
    print!("{}", mfa_server::stats::report(url).await?);
    Ok(())
}
