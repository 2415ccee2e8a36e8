//! `mfa-authenticator` as a person uses it: the real binary in a pseudo
//! terminal, against the real server on loopback, with the portal's side
//! played through the SDK's relying-party helper.

use std::{path::Path, process::Command, time::Duration};

use mfa_sdk::{
    proto::{
        DeleteUserRequest, DevicePolicy, EnrollmentState, ResetUserMethodsRequest,
        UpdateTenantSettingsRequest, UserVerification,
    },
    ChallengeState, DenyReason, SignInContext,
};
use mfa_tests::{verification_number, within, TestServer};
use rexpect::session::{spawn_command, PtySession};

/// How long any expected output may take before the test fails.
const EXPECT_TIMEOUT_MS: u64 = 30_000;

const PROMPT: &str = "Enter the number shown on your sign-in screen";
const TENANT: &str = "IHIGrp (External Collaboration)";

/// Starts the authenticator in a pty with its accounts under `home`.
fn authenticator(home: &Path, args: &[&str]) -> PtySession {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mfa-authenticator"));
    command.arg("--home").arg(home).args(args);
    spawn_command(command, Some(EXPECT_TIMEOUT_MS)).expect("the authenticator starts in a pty")
}

/// Runs pty work (blocking reads) without stalling the server's runtime.
fn on_terminal<T>(work: impl FnOnce() -> Result<T, rexpect::error::Error>) -> T {
    tokio::task::block_in_place(work).expect("the terminal shows what is expected")
}

/// Waits for the program's end and returns its exit code.
fn exit_code(session: &mut PtySession) -> i32 {
    on_terminal(|| session.exp_eof());
    match session.process.wait().expect("the authenticator exits") {
        rexpect::process::wait::WaitStatus::Exited(_, code) => code,
        other => panic!("the authenticator did not exit normally: {other:?}"),
    }
}

fn context() -> SignInContext {
    SignInContext {
        application_name: "Expense reports".to_owned(),
        client_ip: "198.51.100.7".to_owned(),
        location: "Osaka, Japan".to_owned(),
        message: String::new(),
    }
}

/// How the person gives the enrollment to the authenticator.
#[derive(Clone, Copy)]
enum Entry {
    /// Pastes the QR code's link.
    QrLink,
    /// Types the manual code and the server URL shown beneath the QR code.
    ManualCode,
}

/// Enrolls through `enroll`'s prompts and types the number the portal shows.
async fn enroll_in_terminal(
    server: &TestServer,
    home: &Path,
    user_id: &str,
    email: &str,
    entry: Entry,
) {
    let portal = server.portal().await;
    let begun = portal.begin_enrollment(user_id, email).await.unwrap();
    let mut enroll = authenticator(home, &["enroll"]);
    on_terminal(|| {
        enroll.exp_string("Paste the link from the QR code")?;
        match entry {
            Entry::QrLink => {
                enroll.send_line(&begun.qr_uri)?;
            }
            Entry::ManualCode => {
                enroll.send_line("")?;
                enroll.exp_string("Activation code:")?;
                enroll.send_line(&begun.manual_code)?;
                enroll.exp_string("Server URL:")?;
                enroll.send_line(&begun.server_url)?;
            }
        }
        enroll.exp_string(&format!("Added account: {TENANT}  <{email}>"))?;
        enroll.exp_string("Confirm this device")?;
        enroll.exp_string(PROMPT)
    });
    let number = within(verification_number(&portal, &begun.enrollment_id)).await;
    on_terminal(|| {
        enroll.send_line(&number)?;
        enroll.exp_string(&format!(
            "Device confirmed: it can now approve sign-ins for {email}."
        ))
    });
    assert_eq!(exit_code(&mut enroll), 0);
    let done = within(portal.await_enrollment(&begun.enrollment_id))
        .await
        .unwrap();
    assert_eq!(done.state(), EnrollmentState::Verified);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enroll_watch_and_approve_with_the_number_typed() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let dir = tempfile::tempdir().unwrap();
    // A directory the authenticator makes itself, so owner-only.
    let home = dir.path().join("phone");
    enroll_in_terminal(&server, &home, "user-1", "hanako@example.jp", Entry::QrLink).await;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&home.join("account-1.json")), 0o600);
        assert_eq!(mode(&home), 0o700);
    }
    let mut list = authenticator(&home, &["accounts"]);
    on_terminal(|| list.exp_string(&format!("{TENANT}  <hanako@example.jp>")));
    assert_eq!(exit_code(&mut list), 0);

    let mut watch = authenticator(&home, &["watch", "--poll-interval", "100ms"]);
    on_terminal(|| watch.exp_string("Waiting for sign-in requests for 1 account(s)"));

    // Approve: the context the server signed, then the number typed.
    let challenge = portal.start_sign_in("user-1", context()).await.unwrap();
    on_terminal(|| {
        watch.exp_string(&format!("Sign-in request: {TENANT}"))?;
        watch.exp_string("account:     hanako@example.jp")?;
        watch.exp_string("application: Expense reports")?;
        watch.exp_string("from:        198.51.100.7 (Osaka, Japan)")?;
        watch.exp_string("expires in")?;
        watch.exp_string(PROMPT)?;
        watch.send_line("1")?;
        watch.exp_string("Type the 2-digit number, d or f.")?;
        watch.exp_string(PROMPT)?;
        watch.send_line(&challenge.number)?;
        watch.exp_string("Approved: you are signed in on the portal.")
    });
    let outcome = within(portal.await_outcome(&challenge.challenge_id))
        .await
        .unwrap();
    assert_eq!(outcome.state(), ChallengeState::Approved);

    // Deny the next one.
    let challenge = portal.start_sign_in("user-1", context()).await.unwrap();
    on_terminal(|| {
        watch.exp_string(PROMPT)?;
        watch.send_line("d")?;
        watch.exp_string("Denied: the sign-in was refused.")
    });
    let outcome = within(portal.await_outcome(&challenge.challenge_id))
        .await
        .unwrap();
    assert_eq!(outcome.state(), ChallengeState::Denied);
    assert_eq!(outcome.deny_reason(), DenyReason::UserDenied);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_qr_code_is_explained_and_nothing_is_saved() {
    let server =
        TestServer::start_with(|config| config.enrollment_ttl = Duration::from_secs(1)).await;
    let portal = server.portal().await;
    let begun = portal
        .begin_enrollment("user-1", "hanako@example.jp")
        .await
        .unwrap();
    let ended = within(portal.await_enrollment(&begun.enrollment_id))
        .await
        .unwrap();
    assert_eq!(ended.state(), EnrollmentState::Expired);

    let home = tempfile::tempdir().unwrap();
    let mut enroll = authenticator(home.path(), &["enroll"]);
    on_terminal(|| {
        enroll.exp_string("Paste the link from the QR code")?;
        enroll.send_line(&begun.qr_uri)?;
        enroll.exp_string("This QR code has expired. Reload the enrollment page")
    });
    assert_eq!(exit_code(&mut enroll), 1);

    let mut list = authenticator(home.path(), &["accounts"]);
    on_terminal(|| list.exp_string("No accounts yet"));
    assert_eq!(exit_code(&mut list), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fraud_report_then_blocked_user_then_revoked_device() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let home = tempfile::tempdir().unwrap();
    enroll_in_terminal(
        &server,
        home.path(),
        "user-2",
        "taro@example.jp",
        Entry::ManualCode,
    )
    .await;

    let challenge = portal.start_sign_in("user-2", context()).await.unwrap();
    let mut deny = authenticator(home.path(), &["deny", "--fraud"]);
    on_terminal(|| {
        deny.exp_string("application: Expense reports")?;
        deny.exp_string("Reported: the sign-in was denied")
    });
    assert_eq!(exit_code(&mut deny), 0);
    let outcome = within(portal.await_outcome(&challenge.challenge_id))
        .await
        .unwrap();
    assert_eq!(outcome.deny_reason(), DenyReason::FraudReported);
    let refused = portal.start_sign_in("user-2", context()).await.unwrap_err();
    assert!(refused.is_user_blocked(), "{refused:?}");

    let mut nothing = authenticator(home.path(), &["approve", "--number", "42"]);
    on_terminal(|| nothing.exp_string("no sign-in request is waiting"));
    assert_eq!(exit_code(&mut nothing), 1);

    // The phone was lost: the administrator resets the user's methods.
    let mut admin = server.admin().await;
    admin
        .reset_user_methods(ResetUserMethodsRequest {
            user_id: "user-2".to_owned(),
        })
        .await
        .unwrap();
    let mut revoked = authenticator(home.path(), &["approve", "--number", "42"]);
    on_terminal(|| revoked.exp_string("This device was removed by your administrator"));
    assert_eq!(exit_code(&mut revoked), 1);

    // Removing the revoked account deletes it here.
    let mut remove = authenticator(home.path(), &["remove", "--account", "taro@example.jp"]);
    on_terminal(|| remove.exp_string("Removed the account of taro@example.jp."));
    assert_eq!(exit_code(&mut remove), 0);
    assert!(!home.path().join("account-1.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_user_is_told_so_and_can_remove_the_account() {
    let server = TestServer::start().await;
    let home = tempfile::tempdir().unwrap();
    enroll_in_terminal(
        &server,
        home.path(),
        "user-3",
        "jiro@example.jp",
        Entry::QrLink,
    )
    .await;
    let mut admin = server.admin().await;
    let deleted = admin
        .delete_user(DeleteUserRequest {
            user_id: "user-3".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.user_found);

    let mut unknown = authenticator(home.path(), &["approve", "--number", "42"]);
    on_terminal(|| unknown.exp_string("your administrator deleted your account"));
    assert_eq!(exit_code(&mut unknown), 1);
    let mut remove = authenticator(home.path(), &["remove", "--account", "jiro@example.jp"]);
    on_terminal(|| remove.exp_string("Removed the account of jiro@example.jp."));
    assert_eq!(exit_code(&mut remove), 0);
    assert!(!home.path().join("account-1.json").exists());
}

/// `code` shows the offline code, which the portal accepts once, without
/// the authenticator touching the network.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_code_shown_signs_in_once() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("phone");
    enroll_in_terminal(&server, &home, "user-1", "hanako@example.jp", Entry::QrLink).await;

    let mut shown = authenticator(&home, &["code", "--account", "hanako@example.jp"]);
    let (_, line) = on_terminal(|| {
        shown.exp_regex(&format!(
            r"{}  <hanako@example\.jp>  offline code \d{{6}} \(valid \d+ s\)",
            regex_escape(TENANT)
        ))
    });
    assert_eq!(exit_code(&mut shown), 0);
    let code: String = line
        .split("offline code ")
        .nth(1)
        .unwrap()
        .chars()
        .take(6)
        .collect();
    let accepted = portal
        .verify_offline_code("user-1", &code, "")
        .await
        .expect("the code shown is accepted");
    assert!(!accepted.device_id.is_empty());
    let again = portal
        .verify_offline_code("user-1", &code, "")
        .await
        .unwrap_err();
    assert_eq!(again.reason(), Some(mfa_sdk::reason::OFFLINE_CODE_USED));

    let mut unknown = authenticator(&home, &["code", "--account", "nobody@example.jp"]);
    on_terminal(|| unknown.exp_string("no account for nobody@example.jp"));
    assert_ne!(exit_code(&mut unknown), 0);
}

/// A P-256 key, and a tenant that requires a biometric: the PIN stands in
/// for it, chosen at the first approval and asked for after; a wrong PIN
/// approves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_that_requires_unlocking_gets_a_pin_prompt() {
    let server = TestServer::start().await;
    let portal = server.portal().await;
    let home = tempfile::tempdir().unwrap();
    let begun = portal
        .begin_enrollment("user-3", "mei@example.jp")
        .await
        .unwrap();
    let mut enroll = authenticator(
        home.path(),
        &[
            "enroll",
            "--uri",
            &begun.qr_uri,
            "--key-algorithm",
            "ecdsa_p256_sha256",
            "--verify-later",
        ],
    );
    on_terminal(|| enroll.exp_string("Added account"));
    assert_eq!(exit_code(&mut enroll), 0);
    let number = within(verification_number(&portal, &begun.enrollment_id)).await;
    let mut confirm = authenticator(home.path(), &["approve", "--number", &number]);
    on_terminal(|| confirm.exp_string("Device confirmed"));
    assert_eq!(exit_code(&mut confirm), 0);
    let devices = server
        .service()
        .list_devices(&server.tenant.id, "user-3")
        .await
        .unwrap();
    assert_eq!(
        devices[0].key_algorithm,
        mfa_sdk::KeyAlgorithm::EcdsaP256Sha256
    );

    server
        .admin()
        .await
        .update_tenant_settings(UpdateTenantSettingsRequest {
            device_policy: Some(DevicePolicy {
                require_user_verification: true,
                accepted_user_verifications: vec![UserVerification::Biometric.into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut watch = authenticator(home.path(), &["watch", "--poll-interval", "100ms"]);
    on_terminal(|| watch.exp_string("Waiting for sign-in requests"));
    let challenge = portal.start_sign_in("user-3", context()).await.unwrap();
    on_terminal(|| {
        watch.exp_string(PROMPT)?;
        watch.send_line(&challenge.number)?;
        watch.exp_string("requires you to unlock before approving")?;
        watch.exp_string("Choose a PIN")?;
        watch.send_line("2468")?;
        watch.exp_string("Type it again:")?;
        watch.send_line("2468")?;
        watch.exp_string("Approved: you are signed in on the portal.")
    });
    let outcome = within(portal.await_outcome(&challenge.challenge_id))
        .await
        .unwrap();
    assert_eq!(outcome.state(), ChallengeState::Approved);

    // The next time, the PIN is asked for; a wrong one approves nothing.
    let challenge = portal.start_sign_in("user-3", context()).await.unwrap();
    on_terminal(|| {
        watch.exp_string(PROMPT)?;
        watch.send_line(&challenge.number)?;
        watch.exp_string("PIN:")?;
        watch.send_line("1357")?;
        watch.exp_string("wrong PIN; nothing was approved")
    });
    let seen = portal.get_challenge(&challenge.challenge_id).await.unwrap();
    assert_eq!(seen.state(), ChallengeState::Pending);
    let mut approve = authenticator(
        home.path(),
        &["approve", "--number", &challenge.number, "--pin", "2468"],
    );
    on_terminal(|| approve.exp_string("Approved: you are signed in on the portal."));
    assert_eq!(exit_code(&mut approve), 0);
    let events = server.audit_events("user-3").await;
    let approved: Vec<&str> = events
        .iter()
        .filter(|e| e.event_type == "challenge.approved")
        .map(|e| e.detail.as_str())
        .collect();
    assert_eq!(
        approved,
        [
            "user verification biometric",
            "user verification biometric",
            "user verification none"
        ]
    );
}

/// `text` with the regular expression's special characters escaped.
fn regex_escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special.then_some('\\').into_iter().chain([c])
        })
        .collect()
}
