//! Crash safety: the real `mfa-server` binary runs sign-ins from several
//! portals and phones at once, is killed with SIGKILL at random moments and
//! restarted on the same data; afterwards every answer a phone saw
//! acknowledged is still recorded with its outcome and audited, and no
//! challenge is in an impossible state.
//!
//! The kill moments come from a seeded RNG; the seed is printed, and
//! `CRASH_SEED=<seed>` replays a run's schedule (the interleaving of calls
//! still depends on the machine). Runs on SQLite, and on PostgreSQL when it
//! answers (required under `CI=true`).

use mfa_proto::v1::{
    admin_service_client::AdminServiceClient, ChallengeState, ListAuditEventsRequest, SignInContext,
};
use mfa_sdk::{portal::BearerAuth, portal::RelyingParty, Authenticator, ConnectOptions};
use mfa_tests::{
    enroll_phone, phone_info, phone_via,
    postgres::{self, TestDatabase},
    process::{DevKeys, ServerProcess},
    wrong_number,
};
use rand::{rngs::StdRng, Rng, SeedableRng};
use std::{
    collections::HashMap,
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

/// Users signing in at once, each with a portal session and a phone.
const USERS: usize = 4;
/// Kill-and-restart rounds.
const ROUNDS: u64 = 4;
/// A round's load runs this long at most before the kill (drawn at random).
const MAX_RUN_BEFORE_KILL: Duration = Duration::from_millis(1500);

/// Short enough that challenges left pending by a crash expire during the
/// test; the per-user limit is lifted for the load.
const SETTINGS: &[(&str, &str)] = &[
    ("MFA_CHALLENGE_TTL", "3s"),
    ("MFA_CHALLENGE_LIMIT", "1000000"),
];

/// An answer the server acknowledged to a phone.
#[derive(Debug, Clone)]
struct Acknowledged {
    challenge_id: String,
    device_id: String,
    state: ChallengeState,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_answers_survive_sigkill_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    crash_rounds(data.path(), None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_answers_survive_sigkill_on_postgres() {
    if !postgres::available_or_skip("acknowledged_answers_survive_sigkill_on_postgres").await {
        return;
    }
    let database = TestDatabase::create().await;
    let data = tempfile::tempdir().unwrap();
    crash_rounds(data.path(), Some(&database.url)).await;
}

/// Enrolls the users, runs the kill rounds, restarts once more and checks.
async fn crash_rounds(data_dir: &Path, database_url: Option<&str>) {
    let seed = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("crash test seed: {seed} (replay with CRASH_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut server = start(data_dir, database_url);
    let keys = server
        .keys
        .clone()
        .expect("an empty database gets dev keys");
    let portal = RelyingParty::connect(&server.url, &keys.portal_key)
        .await
        .unwrap();
    let mut phones = Vec::new();
    for n in 0..USERS {
        let user = format!("user-{n}");
        let phone = enroll_phone(
            &portal,
            &user,
            &format!("{user}@example.jp"),
            phone_info("Crash test phone"),
            &ConnectOptions::default(),
        )
        .await;
        phones.push((user, phone));
    }

    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let created = Arc::new(Mutex::new(Vec::new()));
    for round in 0..ROUNDS {
        let mut workers = Vec::new();
        let killed = Arc::new(AtomicBool::new(false));
        for (n, (user, phone)) in phones.iter().enumerate() {
            let portal = RelyingParty::connect(&server.url, &keys.portal_key)
                .await
                .unwrap();
            let phone = phone_via(phone, &server.url).await;
            let rng = StdRng::seed_from_u64(seed ^ (round << 8 | n as u64));
            let (user, acknowledged, created, killed) = (
                user.clone(),
                acknowledged.clone(),
                created.clone(),
                killed.clone(),
            );
            workers.push(tokio::spawn(sign_in_until_failure(
                Client {
                    portal,
                    phone,
                    user,
                    rng,
                },
                Records {
                    acknowledged,
                    created,
                    killed,
                },
            )));
        }
        // The crash moment is the point of the test, not a wait for
        // something: the load runs until a random instant, then dies.
        let run = rng.gen_range(Duration::from_millis(200)..MAX_RUN_BEFORE_KILL);
        tokio::time::sleep(run).await;
        let pid = server.pid();
        killed.store(true, Ordering::SeqCst);
        server.kill();
        for worker in workers {
            tokio::time::timeout(Duration::from_secs(10), worker)
                .await
                .expect("a client notices the dead server")
                .unwrap();
        }
        eprintln!(
            "round {round}: killed pid {pid} after {run:?}; {} answers acknowledged so far",
            acknowledged.lock().unwrap().len()
        );
        server = start(data_dir, database_url);
    }

    let acknowledged = acknowledged.lock().unwrap().clone();
    let created = created.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= USERS,
        "the load produced too few answers to test: {acknowledged:?}"
    );
    check_acknowledged(&server, &keys, &acknowledged).await;
    check_audit(&server, &keys, &acknowledged, &created).await;
    check_states(data_dir, database_url).await;
    eprintln!(
        "{} challenges created, {} answers acknowledged, all recorded",
        created.len(),
        acknowledged.len()
    );
}

fn start(data_dir: &Path, database_url: Option<&str>) -> ServerProcess {
    tokio::task::block_in_place(|| ServerProcess::start(data_dir, database_url, SETTINGS))
}

/// One user's portal session and phone.
struct Client {
    portal: RelyingParty,
    phone: Authenticator,
    user: String,
    rng: StdRng,
}

/// What the clients record, and whether the server has been killed.
struct Records {
    acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
    created: Arc<Mutex<Vec<String>>>,
    killed: Arc<AtomicBool>,
}

impl Records {
    /// Whether a failed call is the kill's doing; a failure before the
    /// kill is a fault of the server and fails the test.
    fn after_kill(&self, what: &str, error: mfa_sdk::Error) {
        assert!(
            self.killed.load(Ordering::SeqCst),
            "{what} failed before the kill: {error}"
        );
    }
}

/// One user's sign-ins in a loop: the portal creates a challenge, the phone
/// fetches it and approves (mostly), denies, types a wrong number or leaves
/// it. Ends at the first call that fails because the server was killed.
async fn sign_in_until_failure(mut client: Client, records: Records) {
    let device_id = client.phone.account().device_id.clone();
    loop {
        let challenge = match client.portal.start_sign_in(&client.user, context()).await {
            Ok(challenge) => challenge,
            Err(error) => return records.after_kill("CreateChallenge", error),
        };
        records
            .created
            .lock()
            .unwrap()
            .push(challenge.challenge_id.clone());
        let pending = match client.phone.pending_challenges().await {
            Ok(pending) => pending,
            Err(error) => return records.after_kill("ListPendingChallenges", error),
        };
        let Some(shown) = pending
            .iter()
            .find(|p| p.challenge_id == challenge.challenge_id)
        else {
            continue;
        };
        let number = &challenge.number;
        let answer = match client.rng.gen_range(0..10) {
            0..=5 => client.phone.approve(shown, number).await,
            6..=7 => client.phone.deny(shown).await,
            8 => client.phone.approve(shown, &wrong_number(number)).await,
            _ => continue,
        };
        match answer {
            Ok(answer) => records.acknowledged.lock().unwrap().push(Acknowledged {
                challenge_id: challenge.challenge_id,
                device_id: device_id.clone(),
                state: answer.state,
            }),
            // Expired while the machine was slow: not acknowledged.
            Err(error) if error.is_challenge_expired() => {}
            Err(error) => return records.after_kill("RespondToChallenge", error),
        }
    }
}

fn context() -> SignInContext {
    SignInContext {
        application_name: "Crash test".into(),
        client_ip: "203.0.113.7".into(),
        location: "Tokyo, JP".into(),
        message: String::new(),
    }
}

/// Every acknowledged answer reads back, through the portal API, with the
/// acknowledged outcome, the answering device and an end time.
async fn check_acknowledged(server: &ServerProcess, keys: &DevKeys, acknowledged: &[Acknowledged]) {
    let portal = RelyingParty::connect(&server.url, &keys.portal_key)
        .await
        .unwrap();
    for ack in acknowledged {
        assert!(
            matches!(ack.state, ChallengeState::Approved | ChallengeState::Denied),
            "an answer acknowledged with a non-final state: {ack:?}"
        );
        let stored = portal.get_challenge(&ack.challenge_id).await.unwrap();
        assert_eq!(
            stored.state(),
            ack.state,
            "outcome lost or changed: {ack:?}"
        );
        assert_eq!(stored.answered_by_device_id, ack.device_id, "{ack:?}");
        assert!(stored.end_time.is_some(), "no end time: {stored:?}");
    }
}

/// Through the admin API: each acknowledged answer has its
/// `challenge.approved` / `challenge.denied` event; every challenge that
/// ended has exactly one end event, matching its stored state (the store
/// writes it in the transaction that ends the challenge, so no kill can fall
/// between the two); each created challenge has its `challenge.created` event.
async fn check_audit(
    server: &ServerProcess,
    keys: &DevKeys,
    acknowledged: &[Acknowledged],
    created: &[String],
) {
    let channel = ConnectOptions::default()
        .connect(&server.url)
        .await
        .unwrap();
    let mut admin =
        AdminServiceClient::with_interceptor(channel, BearerAuth::new(&keys.admin_key).unwrap());
    let mut events: HashMap<String, Vec<String>> = HashMap::new();
    let mut page_token = String::new();
    loop {
        let page = admin
            .list_audit_events(ListAuditEventsRequest {
                user_id: String::new(),
                page_size: 1000,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        for event in page.events {
            if !event.challenge_id.is_empty() {
                events
                    .entry(event.challenge_id)
                    .or_default()
                    .push(event.event_type);
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    for ack in acknowledged {
        let expected = format!("challenge.{}", state_name(ack.state));
        let found = events.get(&ack.challenge_id).cloned().unwrap_or_default();
        assert_eq!(
            found.iter().filter(|t| **t == expected).count(),
            1,
            "{ack:?}: audit events {found:?}"
        );
    }
    let portal = RelyingParty::connect(&server.url, &keys.portal_key)
        .await
        .unwrap();
    for id in created {
        let found = events.get(id).cloned().unwrap_or_default();
        assert!(
            found.iter().any(|t| t == "challenge.created"),
            "{id}: no challenge.created event in {found:?}"
        );
        let ends: Vec<&String> = found.iter().filter(|t| *t != "challenge.created").collect();
        assert!(ends.len() <= 1, "{id}: several end events {ends:?}");
        let stored = portal.get_challenge(id).await.unwrap();
        match (ends.first(), stored.state()) {
            (Some(end), state) => assert_eq!(
                **end,
                format!("challenge.{}", state_name(state)),
                "{id}: audit contradicts the stored state"
            ),
            (None, state) => assert_eq!(
                state,
                ChallengeState::Pending,
                "{id}: ended without an end event"
            ),
        }
    }
}

fn state_name(state: ChallengeState) -> String {
    state
        .as_str_name()
        .trim_start_matches("CHALLENGE_STATE_")
        .to_lowercase()
}

/// Challenges in a state no sequence of operations may produce: pending
/// with an end or an answer; answered without the answering device being
/// the user's, without an end time or after expiry; ended without an answer
/// but carrying one; ended before expiry by the sweeper.
const IMPOSSIBLE_STATES: &str = "
    SELECT id, state FROM challenges c WHERE NOT (
        (state = 'pending' AND ended_at IS NULL AND answered_by IS NULL AND deny_reason IS NULL)
     OR (state IN ('approved', 'denied')
         AND ended_at IS NOT NULL AND ended_at <= expires_at
         AND (deny_reason IS NULL) = (state = 'approved')
         AND EXISTS (SELECT 1 FROM devices d WHERE d.id = c.answered_by
                     AND d.tenant_id = c.tenant_id AND d.user_id = c.user_id))
     OR (state = 'expired' AND answered_by IS NULL AND deny_reason IS NULL
         AND ended_at IS NOT NULL AND ended_at >= expires_at)
     OR (state IN ('superseded', 'cancelled') AND answered_by IS NULL
         AND deny_reason IS NULL AND ended_at IS NOT NULL))";

/// Reads the database directly for the invariants the API does not show
/// (a pending challenge's hidden columns, the answering device's owner).
async fn check_states(data_dir: &Path, database_url: Option<&str>) {
    let impossible: Vec<(String, String)> = match database_url {
        Some(url) => {
            let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(url)
                .await
                .unwrap();
            sqlx::query_as(IMPOSSIBLE_STATES)
                .fetch_all(&mut db)
                .await
                .unwrap()
        }
        None => {
            let options = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(data_dir.join("mfa.db"))
                .read_only(true);
            let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(&options)
                .await
                .unwrap();
            sqlx::query_as(IMPOSSIBLE_STATES)
                .fetch_all(&mut db)
                .await
                .unwrap()
        }
    };
    assert!(
        impossible.is_empty(),
        "challenges in impossible states: {impossible:?}"
    );
}
