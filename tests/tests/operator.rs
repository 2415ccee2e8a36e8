//! The operator's commands, run as the real `mfa-server` binary against the
//! database of a running server, on SQLite (a second process on the WAL
//! file) and on PostgreSQL (when it is reachable; otherwise the test says it
//! skipped it, or fails under CI): what they change, the running server
//! serves at once (its tenant cache is off here; `server/tests/cli.rs` shows
//! the bound with it on).
//!
//! The binary is `target/<profile>/mfa-server` ([`process::binary`]):
//! `cargo test --workspace --all-targets` builds it; alone, run
//! `cargo build -p mfa-server` first.

use mfa_proto::v1::{ChallengeState, SignInContext};
use mfa_tests::{
    only_pending,
    postgres::{self, TestDatabase},
    process, within, TestServer,
};
use std::{process::Command, sync::Arc, time::Duration};
use tonic::Code;

/// A running server on each backend available.
async fn servers(test: &str) -> Vec<(&'static str, TestServer)> {
    let adjust = |c: &mut mfa_server::Config| c.tenant_cache_ttl = Duration::ZERO;
    let mut servers = vec![("sqlite", TestServer::start_on(None, adjust).await)];
    if postgres::available_or_skip(&format!("{test} on PostgreSQL")).await {
        let database = Arc::new(TestDatabase::create().await);
        servers.push((
            "postgres",
            TestServer::start_on(Some(database), adjust).await,
        ));
    }
    servers
}

/// Runs `mfa-server <args>` on `server`'s database and data directory; its
/// standard output, or a panic with its error.
fn operator(server: &TestServer, args: &[&str]) -> String {
    let output = Command::new(process::binary())
        .args(args)
        .env("MFA_DATA_DIR", server.dir())
        .env("MFA_DATABASE_URL", server.config.database_url())
        .env("RUST_LOG", "warn")
        .output()
        .expect("mfa-server runs");
    assert!(
        output.status.success(),
        "mfa-server {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The value of `name:` in `tenant show`'s output.
fn shown<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .trim()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_commands_change_what_a_running_server_serves() {
    for (name, server) in servers("operator_commands_change_what_a_running_server_serves").await {
        let tenant = server.tenant.id.clone();
        let portal = server.portal().await;
        let mut hanako = server.enroll(&portal, "hanako", "hanako@example.jp").await;
        let mut kenji = server.enroll(&portal, "kenji", "kenji@example.jp").await;
        let pending = portal
            .start_sign_in("hanako", SignInContext::default())
            .await
            .unwrap();
        let mut watch = portal.watch_challenge(&pending.challenge_id).await.unwrap();
        watch.message().await.unwrap();
        server.audit_types("").await; // the admin key is used once

        let listing = operator(&server, &["tenant", "list"]);
        assert!(
            listing.lines().any(|l| l.starts_with(&tenant)),
            "{name}: {listing}"
        );
        let updated = operator(
            &server,
            &[
                "tenant",
                "update",
                &tenant,
                "--digits",
                "4",
                "--challenge-ttl",
                "45s",
            ],
        );
        assert_eq!(shown(&updated, "digits"), "4", "{name}");
        let challenge = portal
            .start_sign_in("kenji", SignInContext::default())
            .await
            .unwrap();
        assert_eq!(
            challenge.number.len(),
            4,
            "{name}: the running server uses the new digits"
        );
        let lifetime =
            challenge.expire_time.unwrap().seconds - challenge.create_time.unwrap().seconds;
        assert!((44..=45).contains(&lifetime), "{name}: {lifetime}s");

        let summary = operator(&server, &["tenant", "show", &tenant]);
        assert_eq!(
            (
                shown(&summary, "users"),
                shown(&summary, "active devices"),
                shown(&summary, "pending challenges")
            ),
            ("2", "2", "2"),
            "{name}: {summary}"
        );
        let keys = operator(&server, &["api-key", "list", "--tenant", &tenant]);
        for row in keys.lines().skip(1) {
            let cells: Vec<&str> = row.split_whitespace().collect();
            assert!(cells[4].ends_with('Z'), "{name}: a last use in {keys}");
        }

        let deleted = operator(
            &server,
            &["user", "delete", "--tenant", &tenant, "--user", "hanako"],
        );
        assert!(
            deleted.starts_with("deleted user \"hanako\""),
            "{name}: {deleted}"
        );
        let refused = hanako.pending_challenges().await.unwrap_err();
        assert!(refused.is_device_unknown(), "{name}: {refused:?}");
        let gone = portal
            .get_challenge(&pending.challenge_id)
            .await
            .unwrap_err();
        assert_eq!(gone.code(), Some(Code::NotFound), "{name}");
        if name == "postgres" {
            // The database announces the cancellation to every replica, and
            // so to this server's watch. (On SQLite the command's process
            // cannot tell the server: the watch learns of it when it next
            // re-reads. AdminService.DeleteUser ends it at once.)
            let ended = within(watch.message()).await.unwrap_err();
            assert_eq!(ended.code(), Code::NotFound, "{name}: {ended:?}");
        }

        let kenjis = only_pending(&mut kenji).await;
        let answer = kenji.approve(&kenjis, &challenge.number).await.unwrap();
        assert_eq!(answer.state, ChallengeState::Approved, "{name}");
        let summary = operator(&server, &["tenant", "show", &tenant]);
        assert_eq!(
            (shown(&summary, "users"), shown(&summary, "active devices")),
            ("1", "1"),
            "{name}: {summary}"
        );
    }
}

/// `tenant update --key-algorithms --user-verification`: the running server
/// refuses what the new policy does not allow, and `tenant show` says it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_policy_is_set_from_the_command_line() {
    for (name, server) in servers("the_device_policy_is_set_from_the_command_line").await {
        let tenant = server.tenant.id.clone();
        let portal = server.portal().await;
        let mut phone = server.enroll(&portal, "hanako", "hanako@example.jp").await;

        let updated = operator(
            &server,
            &[
                "tenant",
                "update",
                &tenant,
                "--key-algorithms",
                "ecdsa_p256_sha256",
                "--user-verification",
                "biometric",
            ],
        );
        assert_eq!(
            shown(&updated, "key algorithms"),
            "ecdsa_p256_sha256",
            "{name}"
        );
        assert_eq!(shown(&updated, "user verification"), "biometric", "{name}");

        // An Ed25519 enrollment is refused now; the enrolled phone must unlock.
        let begun = portal
            .begin_enrollment("kenji", "k@example.jp")
            .await
            .unwrap();
        let uri = mfa_sdk::EnrollmentUri::parse(&begun.qr_uri).unwrap();
        let refused = mfa_sdk::Authenticator::enroll(
            &uri,
            mfa_tests::phone_info("Phone"),
            &mfa_sdk::MemoryKeyStore::new(),
        )
        .await
        .unwrap_err();
        assert!(
            refused.is_key_algorithm_not_allowed(),
            "{name}: {refused:?}"
        );
        portal
            .start_sign_in("hanako", SignInContext::default())
            .await
            .unwrap();
        let pending = only_pending(&mut phone).await;
        assert_eq!(
            pending.required_user_verification,
            [mfa_sdk::UserVerification::Biometric],
            "{name}"
        );

        let relaxed = operator(
            &server,
            &[
                "tenant",
                "update",
                &tenant,
                "--key-algorithms",
                "all",
                "--user-verification",
                "none",
            ],
        );
        assert_eq!(shown(&relaxed, "key algorithms"), "all", "{name}");
        assert_eq!(
            shown(&relaxed, "user verification"),
            "not required",
            "{name}"
        );
        let shown_now = operator(&server, &["tenant", "show", &tenant]);
        assert_eq!(shown(&shown_now, "key algorithms"), "all", "{name}");
        let audit = server.audit_types("").await;
        assert!(audit.contains(&"tenant.updated".to_owned()), "{name}");
    }
}
