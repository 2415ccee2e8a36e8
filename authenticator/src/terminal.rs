//! What the person sees and types: challenges with their verified context,
//! answers, and errors explained in plain words.

use std::{
    io::{self, Write},
    time::SystemTime,
};

use mfa_sdk::{
    Account, Answer, ChallengeKind, ChallengeState, DenyReason, Error, VerifiedChallenge,
};
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

/// The question asked for every challenge.
pub const NUMBER_PROMPT: &str =
    "Enter the number shown on your sign-in screen (d = deny, f = this wasn't me):";

/// Reads the person's answers line by line from standard input.
pub struct Terminal {
    lines: Lines<BufReader<Stdin>>,
}

impl Terminal {
    pub fn new() -> Self {
        Self {
            lines: BufReader::new(tokio::io::stdin()).lines(),
        }
    }

    /// Prints `prompt` and reads one trimmed line; `None` at end of input.
    pub async fn ask(&mut self, prompt: &str) -> io::Result<Option<String>> {
        print!("{prompt} ");
        io::stdout().flush()?;
        Ok(self
            .lines
            .next_line()
            .await?
            .map(|line| line.trim().to_owned()))
    }
}

/// An account as the phone lists it: the organisation, then the user.
pub fn account_line(account: &Account) -> String {
    format!("{}  <{}>", account.tenant_display_name, account.user_email)
}

/// An account with its offline code now, e.g. `… <hanako@example.jp>
/// offline code 123456 (valid 17 s)`.
pub fn offline_code_line(account: &Account) -> String {
    let code = match account.offline_code() {
        Some(code) => format!("offline code {} (valid {} s)", code.code, code.seconds_left),
        None => "no offline codes (enroll again to get them)".to_owned(),
    };
    format!("{}  {code}", account_line(account))
}

/// Prints a challenge's context, all of it verified with the server's key.
pub fn show_challenge(challenge: &VerifiedChallenge) {
    let title = match challenge.kind {
        ChallengeKind::EnrollmentVerification => "Confirm this device",
        _ => "Sign-in request",
    };
    println!();
    println!("{title}: {}", challenge.tenant_display_name);
    println!("  account:     {}", challenge.user_email);
    if !challenge.application_name.is_empty() {
        println!("  application: {}", challenge.application_name);
    }
    let place = match (challenge.client_ip.as_str(), challenge.location.as_str()) {
        ("", "") => String::new(),
        (ip, "") => ip.to_owned(),
        ("", location) => location.to_owned(),
        (ip, location) => format!("{ip} ({location})"),
    };
    if !place.is_empty() {
        println!("  from:        {place}");
    }
    println!(
        "  time:        {} (expires in {})",
        humantime::format_rfc3339_seconds(challenge.create_time),
        time_left(challenge.expire_time)
    );
    if !challenge.message.is_empty() {
        println!("  message:     {}", challenge.message);
    }
}

/// Whole seconds until `deadline`, e.g. `1m 58s`; `0s` once passed.
fn time_left(deadline: SystemTime) -> String {
    let left = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    humantime::format_duration(std::time::Duration::from_secs(left.as_secs())).to_string()
}

/// What a decision ended in, in words.
pub fn describe_answer(challenge: &VerifiedChallenge, answer: &Answer) -> String {
    let verification = challenge.kind == ChallengeKind::EnrollmentVerification;
    match (answer.state, answer.deny_reason) {
        (ChallengeState::Approved, _) if verification => format!(
            "Device confirmed: it can now approve sign-ins for {}.",
            challenge.user_email
        ),
        (ChallengeState::Approved, _) => "Approved: you are signed in on the portal.".to_owned(),
        (ChallengeState::Denied, DenyReason::WrongNumber) if verification => {
            "Denied: the number did not match the one on the portal. Start the enrollment again there."
                .to_owned()
        }
        (ChallengeState::Denied, DenyReason::WrongNumber) => {
            "Denied: the number did not match the one on your sign-in screen. Sign in again for a new number."
                .to_owned()
        }
        (ChallengeState::Denied, DenyReason::UserVerificationRequired) => {
            "Denied: your organisation requires you to unlock before approving. Sign in again for a new number."
                .to_owned()
        }
        (ChallengeState::Denied, DenyReason::FraudReported) => {
            "Reported: the sign-in was denied and your administrator will be told. \
             New sign-ins are blocked until they check."
                .to_owned()
        }
        (ChallengeState::Denied, _) => "Denied: the sign-in was refused.".to_owned(),
        (ChallengeState::Expired, _) => {
            "Expired: the request timed out before your answer. Sign in again for a new number."
                .to_owned()
        }
        (state, _) => format!(
            "The request ended as {}.",
            state.as_str_name().trim_start_matches("CHALLENGE_STATE_")
        ),
    }
}

/// An SDK error explained for the person holding the "phone".
pub fn explain(error: &Error) -> String {
    let advice = if error.is_activation_code_expired() {
        "This QR code has expired. Reload the enrollment page on the portal for a new code, then enroll again."
    } else if error.is_activation_code_used() {
        "This QR code was already used. Reload the enrollment page on the portal for a new code."
    } else if error.is_activation_code_unknown() {
        "The server does not know this activation code: check what you typed, or reload the enrollment page for a new code."
    } else if error.is_device_revoked() {
        "This device was removed by your administrator (for example after a lost phone was reported). \
         Remove the account with `mfa-authenticator remove --account <e-mail>` and enroll again from the portal."
    } else if error.is_device_unknown() {
        "The server no longer knows this device (for example, your administrator deleted your account). \
         Remove the account with `mfa-authenticator remove --account <e-mail>`, and enroll again from the portal if you still need it."
    } else if error.is_user_blocked() {
        "Your account is blocked after a \"this wasn't me\" report. Ask your administrator to check and unblock it."
    } else if error.is_challenge_expired() {
        "This sign-in request expired before it was answered. Sign in again on the portal for a new number."
    } else if error.is_challenge_ended() {
        "This sign-in request is no longer waiting: it was answered, replaced by a newer one, or cancelled."
    } else if error.is_user_verification_required() {
        "Denied: your organisation requires you to unlock before approving, in a way this approval did not. Sign in again for a new number."
    } else if error.is_key_algorithm_not_allowed() {
        "Your organisation does not allow this kind of device key: enroll again with `--key-algorithm` set to one it allows."
    } else if error.is_rate_limited() {
        "Too many attempts. Wait a few minutes, then try again."
    } else {
        return format!("mfa-authenticator: {error}");
    };
    format!("mfa-authenticator: {advice}")
}
