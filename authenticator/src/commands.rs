//! The commands: each takes what the command line gave and talks to the
//! server through the SDK only.

use std::{collections::HashSet, fmt, time::Duration};

use mfa_sdk::{
    Answer, Authenticator, ChallengeState, DeviceInfo, EnrollmentUri, KeyAlgorithm, PushPlatform,
    UserVerification, VerifiedChallenge,
};

use crate::{
    accounts::{Accounts, Opened},
    pin::{self, Pin},
    terminal::{self, Terminal, NUMBER_PROMPT},
    Command,
};

/// Why a command did not do what was asked, in words for the person.
#[derive(Debug)]
pub struct Failure(String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<mfa_sdk::Error> for Failure {
    fn from(error: mfa_sdk::Error) -> Self {
        Self(terminal::explain(&error))
    }
}

impl From<std::io::Error> for Failure {
    fn from(error: std::io::Error) -> Self {
        Self(format!("mfa-authenticator: {error}"))
    }
}

impl From<mfa_sdk::EnrollmentUriError> for Failure {
    fn from(error: mfa_sdk::EnrollmentUriError) -> Self {
        mfa_sdk::Error::from(error).into()
    }
}

fn failure(message: impl Into<String>) -> Failure {
    Failure(format!("mfa-authenticator: {}", message.into()))
}

/// Runs one command.
pub async fn run(command: Command, accounts: &Accounts) -> Result<(), Failure> {
    match command {
        Command::Enroll {
            uri,
            code,
            url,
            name,
            verify_later,
            key_algorithm,
        } => {
            let mut terminal = Terminal::new();
            let uri = match (uri, code, url) {
                (Some(uri), _, _) => EnrollmentUri::parse(uri.trim())?,
                (None, Some(code), Some(url)) => EnrollmentUri::manual(&code, &url)?,
                _ => ask_enrollment(&mut terminal).await?,
            };
            let new = NewAccount {
                name,
                key_algorithm,
                verify_later,
            };
            enroll(accounts, &uri, new, &mut terminal).await
        }
        Command::Accounts => list(accounts).await,
        Command::Watch { poll_interval } => watch(accounts, poll_interval).await,
        Command::Approve {
            number,
            pin,
            account,
        } => {
            let (mut app, challenge) = newest_pending(accounts, account.as_deref()).await?;
            terminal::show_challenge(&challenge);
            let verification =
                verify_person(accounts, &challenge, pin, &mut Terminal::new()).await?;
            let answer = app
                .approve_verified(&challenge, &number, verification)
                .await?;
            report(&challenge, &answer, ChallengeState::Approved)
        }
        Command::Deny { fraud, account } => {
            let (mut app, challenge) = newest_pending(accounts, account.as_deref()).await?;
            terminal::show_challenge(&challenge);
            let answer = if fraud {
                app.report_fraud(&challenge).await?
            } else {
                app.deny(&challenge).await?
            };
            report(&challenge, &answer, ChallengeState::Denied)
        }
        Command::Code { account } => offline_codes(accounts, account.as_deref()).await,
        Command::Remove { account } => {
            let Opened { store, app } = accounts
                .open_all()
                .await?
                .into_iter()
                .find(|opened| opened.app.account().user_email == account)
                .ok_or_else(|| failure(format!("no account for {account}")))?;
            app.remove(&store).await?;
            println!("Removed the account of {account}.");
            Ok(())
        }
    }
}

/// Asks for the QR code's link, or for the code and the server URL.
async fn ask_enrollment(terminal: &mut Terminal) -> Result<EnrollmentUri, Failure> {
    let link = terminal
        .ask("Paste the link from the QR code (mfa://enroll?...), or press Enter to type the code:")
        .await?
        .ok_or_else(|| failure("no link given"))?;
    if !link.is_empty() {
        return Ok(EnrollmentUri::parse(&link)?);
    }
    let code = terminal
        .ask("Activation code:")
        .await?
        .ok_or_else(|| failure("no code given"))?;
    let url = terminal
        .ask("Server URL:")
        .await?
        .ok_or_else(|| failure("no server URL given"))?;
    Ok(EnrollmentUri::manual(&code, &url)?)
}

/// What `enroll` was told about the new account.
struct NewAccount {
    name: String,
    key_algorithm: KeyAlgorithm,
    verify_later: bool,
}

async fn enroll(
    accounts: &Accounts,
    uri: &EnrollmentUri,
    new: NewAccount,
    terminal: &mut Terminal,
) -> Result<(), Failure> {
    let store = accounts.new_store()?.with_key_algorithm(new.key_algorithm);
    let info = DeviceInfo {
        name: new.name,
        push_platform: PushPlatform::None,
        push_token: String::new(),
    };
    let (mut app, verification) = Authenticator::enroll(uri, info, &store).await?;
    println!("Added account: {}", terminal::account_line(app.account()));
    if new.verify_later {
        println!(
            "Confirm it with `mfa-authenticator approve --number <N>`, N being the number the portal shows."
        );
        return Ok(());
    }
    match answer(accounts, &mut app, &verification, terminal).await? {
        Some(answer) => report(&verification, &answer, ChallengeState::Approved),
        None => Err(failure(
            "no number given; confirm later with `mfa-authenticator approve --number <N>`",
        )),
    }
}

async fn list(accounts: &Accounts) -> Result<(), Failure> {
    let opened = accounts.open_all().await?;
    if opened.is_empty() {
        println!("No accounts yet: add one with `mfa-authenticator enroll`.");
    }
    for Opened { app, .. } in &opened {
        println!("{}", terminal::account_line(app.account()));
    }
    Ok(())
}

/// Prints the offline code of each account (or of the one with `email`).
async fn offline_codes(accounts: &Accounts, email: Option<&str>) -> Result<(), Failure> {
    let opened = accounts.open_all().await?;
    let mut shown = 0;
    for Opened { app, .. } in &opened {
        let account = app.account();
        if email.is_some_and(|email| email != account.user_email) {
            continue;
        }
        shown += 1;
        println!("{}", terminal::offline_code_line(account));
    }
    match (shown, email) {
        (0, Some(email)) => Err(failure(format!("no account for {email}"))),
        (0, None) => Err(failure(
            "no accounts yet: add one with `mfa-authenticator enroll`",
        )),
        _ => Ok(()),
    }
}

/// Polls every account for new challenges and asks about each once.
async fn watch(accounts: &Accounts, poll_interval: Duration) -> Result<(), Failure> {
    let mut opened = accounts.open_all().await?;
    if opened.is_empty() {
        return Err(failure(
            "no accounts yet: add one with `mfa-authenticator enroll`",
        ));
    }
    println!(
        "Waiting for sign-in requests for {} account(s); Ctrl-C to stop.",
        opened.len()
    );
    let mut terminal = Terminal::new();
    let mut seen = HashSet::new();
    // Devices the server revoked or no longer knows: asking again is useless.
    let mut removed = HashSet::new();
    loop {
        for Opened { app, .. } in &mut opened {
            let device_id = app.account().device_id.clone();
            if removed.contains(&device_id) {
                continue;
            }
            let pending = match app.pending_challenges().await {
                Ok(pending) => pending,
                Err(error) => {
                    eprintln!("{}", terminal::explain(&error));
                    if error.is_device_revoked() || error.is_device_unknown() {
                        removed.insert(device_id);
                    }
                    continue;
                }
            };
            // Oldest first, as they were asked for.
            for challenge in pending.iter().rev() {
                if challenge.is_expired() || !seen.insert(challenge.challenge_id.clone()) {
                    continue;
                }
                match answer(accounts, app, challenge, &mut terminal).await {
                    Ok(Some(answer)) => {
                        println!("{}", terminal::describe_answer(challenge, &answer))
                    }
                    Ok(None) => return Ok(()),
                    Err(failure) => eprintln!("{failure}"),
                }
            }
        }
        if removed.len() == opened.len() {
            return Err(failure("no account can receive sign-in requests any more"));
        }
        tokio::time::sleep(poll_interval).await;
    }
}

/// Shows a challenge and asks for the number, deny or fraud; `None` when the
/// input ended without an answer.
async fn answer(
    accounts: &Accounts,
    app: &mut Authenticator,
    challenge: &VerifiedChallenge,
    terminal: &mut Terminal,
) -> Result<Option<Answer>, Failure> {
    terminal::show_challenge(challenge);
    loop {
        let Some(input) = terminal.ask(NUMBER_PROMPT).await? else {
            return Ok(None);
        };
        let answer = match input.as_str() {
            "d" | "D" => app.deny(challenge).await?,
            "f" | "F" => app.report_fraud(challenge).await?,
            number if is_number(number, challenge.number_length) => {
                let verification = verify_person(accounts, challenge, None, terminal).await?;
                app.approve_verified(challenge, number, verification)
                    .await?
            }
            _ => {
                println!("Type the {}-digit number, d or f.", challenge.number_length);
                continue;
            }
        };
        return Ok(Some(answer));
    }
}

/// Unlocks before an approval when the organisation requires it: the PIN
/// (`given`, or asked for; chosen on first use) stands in for the phone's
/// check. It counts as the device PIN where that is accepted, and else as the
/// biometric check it stands in for.
async fn verify_person(
    accounts: &Accounts,
    challenge: &VerifiedChallenge,
    given: Option<String>,
    terminal: &mut Terminal,
) -> Result<UserVerification, Failure> {
    if !challenge.requires_user_verification() {
        return Ok(UserVerification::None);
    }
    let method = if challenge
        .required_user_verification
        .contains(&UserVerification::DevicePin)
    {
        UserVerification::DevicePin
    } else {
        UserVerification::Biometric
    };
    println!(
        "{} requires you to unlock before approving; this authenticator's PIN stands in for the phone's fingerprint, face or passcode.",
        challenge.tenant_display_name
    );
    let pin = Pin::in_dir(accounts.dir());
    if !pin.is_set() {
        let chosen = match given {
            Some(given) => given,
            None => {
                let chosen = ask_pin(terminal, "Choose a PIN (4 or more digits):").await?;
                if ask_pin(terminal, "Type it again:").await? != chosen {
                    return Err(failure("the two PINs differ; nothing was approved"));
                }
                chosen
            }
        };
        if !pin::is_acceptable(&chosen) {
            return Err(failure(format!(
                "a PIN has at least {} digits and nothing else; nothing was approved",
                pin::MIN_LENGTH
            )));
        }
        pin.set(&chosen)?;
        return Ok(method);
    }
    let typed = match given {
        Some(given) => given,
        None => ask_pin(terminal, "PIN:").await?,
    };
    if pin.matches(&typed)? {
        Ok(method)
    } else {
        Err(failure("wrong PIN; nothing was approved"))
    }
}

async fn ask_pin(terminal: &mut Terminal, prompt: &str) -> Result<String, Failure> {
    terminal
        .ask(prompt)
        .await?
        .ok_or_else(|| failure("no PIN given; nothing was approved"))
}

fn is_number(input: &str, length: u32) -> bool {
    input.len() == length as usize && input.bytes().all(|b| b.is_ascii_digit())
}

/// The newest challenge waiting on any account (or the one with this e-mail).
async fn newest_pending(
    accounts: &Accounts,
    email: Option<&str>,
) -> Result<(Authenticator, VerifiedChallenge), Failure> {
    let mut newest: Option<(Authenticator, VerifiedChallenge)> = None;
    let opened = accounts.open_all().await?;
    if opened.is_empty() {
        return Err(failure(
            "no accounts yet: add one with `mfa-authenticator enroll`",
        ));
    }
    for Opened { mut app, .. } in opened {
        if email.is_some_and(|email| app.account().user_email != email) {
            continue;
        }
        let challenge = app.pending_challenges().await?.into_iter().next();
        if let Some(challenge) = challenge {
            if newest
                .as_ref()
                .is_none_or(|(_, other)| challenge.create_time > other.create_time)
            {
                newest = Some((app, challenge));
            }
        }
    }
    newest.ok_or_else(|| failure("no sign-in request is waiting"))
}

/// Prints the challenge and the answer; fails unless it ended as `wanted`.
fn report(
    challenge: &VerifiedChallenge,
    answer: &Answer,
    wanted: ChallengeState,
) -> Result<(), Failure> {
    let text = terminal::describe_answer(challenge, answer);
    if answer.state == wanted {
        println!("{text}");
        Ok(())
    } else {
        Err(Failure(text))
    }
}

#[cfg(test)]
mod tests {
    use super::is_number;

    #[test]
    fn a_number_has_the_challenge_length_and_only_digits() {
        assert!(is_number("42", 2));
        assert!(is_number("004217", 6));
        assert!(!is_number("4", 2));
        assert!(!is_number("4a", 2));
        assert!(!is_number("d", 1));
        assert!(!is_number("４２", 2));
    }
}
