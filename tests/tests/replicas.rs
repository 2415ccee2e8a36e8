//! Several replicas on one PostgreSQL database, as behind a load balancer:
//! a watch on one replica sees answers given on another, answers race across
//! replicas with one winner, limits and blocks hold across replicas, a lost
//! change listener costs no outcome, a database outage is UNAVAILABLE until
//! the database is back, a call whose database stops answering midway is
//! UNAVAILABLE after `database_query_timeout`, and a listening connection
//! cut off silently is replaced.
//!
//! Each test gets a fresh database; without a reachable PostgreSQL the tests
//! say that they are skipped (and fail under `CI=true`).

use mfa_proto::v1::{ChallengeState, SignInContext};
use mfa_sdk::portal::RelyingParty;
use mfa_tests::{
    postgres::{self, TestDatabase},
    tcp_proxy::TcpProxy,
    *,
};
use sqlx::{Connection, Executor, Row};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};
use tonic::{Code, Streaming};

/// The longest an answer may take to reach another replica's watch here; the
/// target is milliseconds (the measured figures are printed), this bound only
/// keeps a loaded machine from failing the test.
const CROSS_REPLICA_BOUND: Duration = Duration::from_secs(2);

fn context() -> SignInContext {
    SignInContext {
        application_name: "Customer portal".into(),
        client_ip: "203.0.113.7".into(),
        location: "Tokyo, JP".into(),
        message: "Sign-in from a new browser".into(),
    }
}

/// Two replicas on a fresh database, or `None` when PostgreSQL is absent.
async fn two_replicas(
    test: &str,
    adjust: impl FnOnce(&mut mfa_server::Config),
) -> Option<(TestServer, TestServer)> {
    if !postgres::available_or_skip(test).await {
        return None;
    }
    let database = Arc::new(TestDatabase::create().await);
    let a = TestServer::start_on(Some(database), adjust).await;
    let b = a.replica(|_| {}).await;
    Some((a, b))
}

/// A server that reaches a fresh database through a proxy the test controls,
/// with the database's direct URL (for a second replica, or the test's own
/// connections); `None` when PostgreSQL is absent.
async fn behind_proxy(
    test: &str,
    adjust: impl FnOnce(&mut mfa_server::Config),
) -> Option<(TestServer, TcpProxy, String)> {
    if !postgres::available_or_skip(test).await {
        return None;
    }
    let database = Arc::new(TestDatabase::create().await);
    let proxy = TcpProxy::start(postgres::server_addr()).await;
    let through_proxy = database.url_through(proxy.addr);
    let direct = database.url.clone();
    let server = TestServer::start_on(Some(database), |c| {
        c.database_url = Some(through_proxy);
        adjust(c);
    })
    .await;
    Some((server, proxy, direct))
}

/// A replica that gives up on the database quickly, with two connections
/// for calls (and the change listener's): a few stalled connections fill
/// its pool.
fn small_pool_giving_up_quickly(c: &mut mfa_server::Config) {
    c.database_acquire_timeout = Duration::from_millis(300);
    c.database_query_timeout = Duration::from_millis(500);
    c.database_max_connections = 3;
}

/// Replica A behind a proxy and replica B direct, with a phone enrolled
/// through B and a sign-in started and watched on A.
struct WatchedBehindProxy {
    a: TestServer,
    proxy: TcpProxy,
    portal_a: RelyingParty,
    phone_on_b: mfa_sdk::Authenticator,
    challenge: mfa_proto::v1::Challenge,
    watch: Streaming<mfa_proto::v1::WatchChallengeResponse>,
    /// Kept running; bind it (as `a` too), or it stops at once.
    _b: TestServer,
}

async fn watched_behind_proxy(
    test: &str,
    adjust: impl FnOnce(&mut mfa_server::Config),
) -> Option<WatchedBehindProxy> {
    let (a, proxy, direct) = behind_proxy(test, adjust).await?;
    let b = a.replica(|c| c.database_url = Some(direct)).await;
    let (portal_a, portal_b) = (a.portal().await, b.portal().await);
    let phone = b.enroll(&portal_b, "u", "u@example.jp").await;
    let phone_on_b = phone_via(&phone, &b.url).await;
    let (challenge, watch) = watched_sign_in(&portal_a, "u").await;
    Some(WatchedBehindProxy {
        a,
        proxy,
        portal_a,
        phone_on_b,
        challenge,
        watch,
        _b: b,
    })
}

/// The server processes listening for changes on database `name`.
async fn listeners(admin: &mut sqlx::PgConnection, name: &str) -> Vec<i32> {
    let rows = admin
        .fetch_all(
            sqlx::query(
                "SELECT pid FROM pg_stat_activity
                 WHERE datname = $1 AND query LIKE 'LISTEN%' ORDER BY pid",
            )
            .bind(name),
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get::<i32, _>("pid")).collect()
}

/// Reads a challenge watch until it leaves `PENDING`.
async fn outcome(
    watch: &mut Streaming<mfa_proto::v1::WatchChallengeResponse>,
) -> mfa_proto::v1::Challenge {
    loop {
        let update = watch
            .message()
            .await
            .expect("watch message")
            .expect("watch continues until an outcome");
        let challenge = update.challenge.expect("challenge");
        if challenge.state() != ChallengeState::Pending {
            return challenge;
        }
    }
}

/// Starts a sign-in on `portal` and a watch of it, returning once the watch
/// has shown the pending state (so that it is following changes).
async fn watched_sign_in(
    portal: &RelyingParty,
    user: &str,
) -> (
    mfa_proto::v1::Challenge,
    Streaming<mfa_proto::v1::WatchChallengeResponse>,
) {
    let challenge = portal.start_sign_in(user, context()).await.unwrap();
    let mut watch = portal
        .watch_challenge(&challenge.challenge_id)
        .await
        .unwrap();
    let first = within(watch.message()).await.unwrap().unwrap();
    assert_eq!(first.challenge.unwrap().state(), ChallengeState::Pending);
    (challenge, watch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_on_one_replica_reaches_the_watch_on_the_other() {
    let test = "an_answer_on_one_replica_reaches_the_watch_on_the_other";
    let Some((a, b)) = two_replicas(test, |_| {}).await else {
        return;
    };
    let portal = a.portal().await;
    let phone = a.enroll(&portal, "u", "u@example.jp").await;
    let mut phone_on_b = phone_via(&phone, &b.url).await;

    let mut latencies = Vec::new();
    for _ in 0..5 {
        let (challenge, mut watch) = watched_sign_in(&portal, "u").await;
        let pending = only_pending(&mut phone_on_b).await;
        // The watch is read in its own task, so that the arrival time is
        // taken when the update arrives, not when the answer call returns.
        let seen = tokio::spawn(async move {
            let outcome = outcome(&mut watch).await;
            (outcome, Instant::now())
        });
        let answered = Instant::now();
        let answer = phone_on_b
            .approve(&pending, &challenge.number)
            .await
            .unwrap();
        let returned = Instant::now();
        assert_eq!(answer.state, ChallengeState::Approved);
        let (outcome, arrived) = tokio::time::timeout(CROSS_REPLICA_BOUND, seen)
            .await
            .expect("the approval reached the other replica's watch")
            .unwrap();
        assert_eq!(outcome.state(), ChallengeState::Approved);
        assert_eq!(outcome.challenge_id, challenge.challenge_id);
        latencies.push((
            arrived.duration_since(answered),
            arrived.saturating_duration_since(returned),
        ));
    }
    let summary = |mut figures: Vec<Duration>| {
        figures.sort();
        format!(
            "min {:?}, median {:?}, max {:?}",
            figures[0],
            figures[figures.len() / 2],
            figures[figures.len() - 1]
        )
    };
    println!(
        "approval on replica B -> watch on replica A: from sending the answer {}; \
         after the answer call returned {}",
        summary(latencies.iter().map(|l| l.0).collect()),
        summary(latencies.iter().map(|l| l.1).collect()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_racing_on_two_replicas_have_exactly_one_winner() {
    let test = "answers_racing_on_two_replicas_have_exactly_one_winner";
    let Some((a, b)) = two_replicas(test, |_| {}).await else {
        return;
    };
    let portal = a.portal().await;
    let mut first = a.enroll(&portal, "u", "u@example.jp").await;
    let mut second = phone_via(&a.enroll(&portal, "u", "u@example.jp").await, &b.url).await;
    for _ in 0..5 {
        let challenge = portal.start_sign_in("u", context()).await.unwrap();
        let on_a = only_pending(&mut first).await;
        let on_b = only_pending(&mut second).await;
        let (mut p1, mut p2) = (first.clone(), second.clone());
        let number = challenge.number.clone();
        let (r1, r2) = tokio::join!(
            tokio::spawn(async move { p1.approve(&on_a, &number).await }),
            tokio::spawn(async move { p2.deny(&on_b).await })
        );
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        let winners = usize::from(r1.is_ok()) + usize::from(r2.is_ok());
        assert_eq!(winners, 1, "exactly one answer wins: {r1:?} {r2:?}");
        let loser = r1.as_ref().err().or(r2.as_ref().err()).unwrap();
        assert!(loser.is_challenge_ended(), "{loser:?}");
        let expected = if r1.is_ok() {
            ChallengeState::Approved
        } else {
            ChallengeState::Denied
        };
        for replica in [&a, &b] {
            let seen = replica
                .portal()
                .await
                .get_challenge(&challenge.challenge_id)
                .await
                .unwrap();
            assert_eq!(seen.state(), expected);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_fraud_blocks_hold_across_replicas() {
    let test = "rate_limits_and_fraud_blocks_hold_across_replicas";
    let Some((a, b)) = two_replicas(test, |c| c.challenge_limit = 3).await else {
        return;
    };
    let (portal_a, portal_b) = (a.portal().await, b.portal().await);
    a.enroll(&portal_a, "limited", "l@example.jp").await;
    portal_a.start_sign_in("limited", context()).await.unwrap();
    portal_b.start_sign_in("limited", context()).await.unwrap();
    portal_a.start_sign_in("limited", context()).await.unwrap();
    let error = portal_b
        .start_sign_in("limited", context())
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(Code::ResourceExhausted));
    assert!(error.is_rate_limited());

    let mut phone = a.enroll(&portal_a, "victim", "v@example.jp").await;
    portal_a.start_sign_in("victim", context()).await.unwrap();
    let pending = only_pending(&mut phone).await;
    phone.report_fraud(&pending).await.unwrap();
    let error = portal_b
        .start_sign_in("victim", context())
        .await
        .unwrap_err();
    assert!(error.is_user_blocked(), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sweeping_the_same_deadlines_expire_each_challenge_once() {
    let test = "replicas_sweeping_the_same_deadlines_expire_each_challenge_once";
    let Some((a, b)) = two_replicas(test, |c| c.challenge_ttl = Duration::from_millis(800)).await
    else {
        return;
    };
    let (portal_a, portal_b) = (a.portal().await, b.portal().await);
    a.enroll(&portal_a, "u1", "u1@example.jp").await;
    b.enroll(&portal_b, "u2", "u2@example.jp").await;
    // Created on different replicas, so that both sweepers wake for these
    // deadlines and each may find both challenges due.
    let (first, mut first_watch) = watched_sign_in(&portal_a, "u1").await;
    let (second, mut second_watch) = watched_sign_in(&portal_b, "u2").await;
    for watch in [&mut first_watch, &mut second_watch] {
        assert_eq!(
            within(outcome(watch)).await.state(),
            ChallengeState::Expired
        );
    }
    let events = a
        .admin()
        .await
        .list_audit_events(mfa_proto::v1::ListAuditEventsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    for challenge in [&first, &second] {
        let expiries = events
            .iter()
            .filter(|e| {
                e.challenge_id == challenge.challenge_id && e.event_type == "challenge.expired"
            })
            .count();
        assert_eq!(expiries, 1, "{events:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_change_listener_reconnects_and_no_outcome_is_missed() {
    let test = "a_killed_change_listener_reconnects_and_no_outcome_is_missed";
    let Some((a, b)) = two_replicas(test, |_| {}).await else {
        return;
    };
    let database = a.database().expect("on PostgreSQL");
    let mut admin = database.connect_admin().await;
    let before = listeners(&mut admin, database.name()).await;
    assert_eq!(before.len(), 2, "one listener per replica: {before:?}");

    let portal = a.portal().await;
    let phone = a.enroll(&portal, "u", "u@example.jp").await;
    let mut phone_on_b = phone_via(&phone, &b.url).await;
    let (challenge, mut watch) = watched_sign_in(&portal, "u").await;
    let pending = only_pending(&mut phone_on_b).await;

    // Kill both replicas' listening connections, then answer at once: the
    // notification may be sent while nobody listens, and the watch must
    // still end with the outcome (re-read after reconnecting).
    for pid in &before {
        let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .fetch_one(&mut admin)
            .await
            .unwrap();
        assert!(killed);
    }
    let answer = phone_on_b
        .approve(&pending, &challenge.number)
        .await
        .unwrap();
    assert_eq!(answer.state, ChallengeState::Approved);
    let seen = within(outcome(&mut watch)).await;
    assert_eq!(seen.state(), ChallengeState::Approved);

    // Both replicas listen again, on new connections: watches on both see
    // the next answer (through the new listener, or the re-read after it
    // connected; either way only once it is connected).
    let (challenge, mut watch) = watched_sign_in(&portal, "u").await;
    let mut watch_on_b = b
        .portal()
        .await
        .watch_challenge(&challenge.challenge_id)
        .await
        .unwrap();
    let pending = only_pending(&mut phone_on_b).await;
    phone_on_b
        .approve(&pending, &challenge.number)
        .await
        .unwrap();
    for watch in [&mut watch, &mut watch_on_b] {
        assert_eq!(
            within(outcome(watch)).await.state(),
            ChallengeState::Approved
        );
    }
    let after = listeners(&mut admin, database.name()).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after.iter().all(|pid| !before.contains(pid)),
        "{before:?} {after:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_unavailable_and_service_recovers_by_itself() {
    let test = "a_database_outage_is_unavailable_and_service_recovers_by_itself";
    // Replica A reaches the database through a proxy the test can cut;
    // replica B reaches it directly and keeps working meanwhile.
    let Some(WatchedBehindProxy {
        a,
        proxy,
        portal_a,
        mut phone_on_b,
        challenge,
        mut watch,
        _b,
    }) = watched_behind_proxy(test, |c| {
        c.database_acquire_timeout = Duration::from_millis(500);
    })
    .await
    else {
        return;
    };

    proxy.cut();
    let started = Instant::now();
    let error = within(portal_a.get_challenge(&challenge.challenge_id))
        .await
        .unwrap_err();
    println!("UNAVAILABLE after {:?} of outage", started.elapsed());
    assert_eq!(error.code(), Some(Code::Unavailable), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("unavailable"), "{message}");
    assert!(!message.contains(&a.database().unwrap().url), "{message}");
    let error = within(portal_a.start_sign_in("u", context()))
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(Code::Unavailable), "{error:?}");

    // Answered through B during the outage: A's watch learns of it once A
    // reaches the database again, without anyone calling A.
    let pending = only_pending(&mut phone_on_b).await;
    phone_on_b
        .approve(&pending, &challenge.number)
        .await
        .unwrap();
    proxy.restore();
    assert_eq!(
        within(outcome(&mut watch)).await.state(),
        ChallengeState::Approved
    );
    let next = within(portal_a.start_sign_in("u", context()))
        .await
        .unwrap();
    assert_eq!(next.state(), ChallengeState::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_database_stops_answering_midway_is_unavailable_within_the_query_timeout() {
    let test =
        "a_call_whose_database_stops_answering_midway_is_unavailable_within_the_query_timeout";
    let query_timeout = Duration::from_millis(500);
    let Some((server, proxy, direct)) = behind_proxy(test, |c| {
        c.database_acquire_timeout = Duration::from_millis(300);
        c.database_query_timeout = query_timeout;
    })
    .await
    else {
        return;
    };
    let holder_url = direct.clone();
    let portal = server.portal().await;
    server.enroll(&portal, "u", "u@example.jp").await;

    // Hold the user's row, so that the next sign-in waits inside the
    // database; then let the network drop everything while it waits.
    let mut holder = sqlx::PgConnection::connect(&holder_url).await.unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute("SELECT 1 FROM users WHERE user_id = 'u' FOR UPDATE")
        .await
        .unwrap();
    let started = Instant::now();
    let sign_in = tokio::spawn({
        let portal = portal.clone();
        async move { portal.start_sign_in("u", context()).await }
    });
    within(async {
        while !waits_for_a_lock(&mut holder).await {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    proxy.stall();
    holder.execute("ROLLBACK").await.unwrap();

    let error = within(sign_in).await.unwrap().unwrap_err();
    let waited = started.elapsed();
    println!("UNAVAILABLE after {waited:?} (query timeout {query_timeout:?})");
    assert_eq!(error.code(), Some(Code::Unavailable), "{error:?}");
    assert!(waited >= query_timeout, "{waited:?}");

    // The database ends the session that was left inside its transaction,
    // so the row it locked is free for another replica meanwhile.
    let direct_replica = server
        .replica(|c| {
            c.database_url = Some(direct);
            c.database_query_timeout = Duration::from_secs(4);
        })
        .await;
    let portal_b = direct_replica.portal().await;
    let started = within(portal_b.start_sign_in("u", context()))
        .await
        .unwrap();
    assert_eq!(started.state(), ChallengeState::Pending);

    // Once the network is back, so is the service, without a restart.
    proxy.restore();
    let next = within(portal.start_sign_in("u", context())).await.unwrap();
    assert_eq!(next.state(), ChallengeState::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_cut_off_by_a_silent_network_give_their_connections_back() {
    let test = "calls_cut_off_by_a_silent_network_give_their_connections_back";
    // More calls are cut off below than the pool holds.
    let Some((server, proxy, direct)) = behind_proxy(test, small_pool_giving_up_quickly).await
    else {
        return;
    };
    let portal = server.portal().await;
    server.enroll(&portal, "u", "u@example.jp").await;

    // Each time, a sign-in waits inside the database for the user's row
    // when the network goes silent, then heals for new connections only:
    // the cut-off connection never answers again.
    let mut holder = sqlx::PgConnection::connect(&direct).await.unwrap();
    for _ in 0..3 {
        holder.execute("BEGIN").await.unwrap();
        holder
            .execute("SELECT 1 FROM users WHERE user_id = 'u' FOR UPDATE")
            .await
            .unwrap();
        let sign_in = within(sign_in_waiting_for_the_row(&portal, &mut holder)).await;
        proxy.stall();
        proxy.forward_new_only();
        let error = within(sign_in).await.unwrap().unwrap_err();
        assert_eq!(error.code(), Some(Code::Unavailable), "{error:?}");
        holder.execute("ROLLBACK").await.unwrap();
    }

    // Their places in the pool were given back, not held until TCP gives
    // up: once the idle connections the cuts left are discarded (each
    // failing one attempt), sign-ins work again.
    let next = within(async {
        loop {
            match portal.start_sign_in("u", context()).await {
                Ok(started) => return started,
                Err(e) if e.code() == Some(Code::Unavailable) => continue,
                Err(e) => panic!("{e:?}"),
            }
        }
    })
    .await;
    assert_eq!(next.state(), ChallengeState::Pending);
}

/// Starts a sign-in for user "u" that waits for the row `holder` locked, and
/// returns it waiting. An attempt that first meets an idle connection a
/// silent network left behind fails UNAVAILABLE while it discards it; the
/// next one is made, as a portal would.
async fn sign_in_waiting_for_the_row(
    portal: &RelyingParty,
    holder: &mut sqlx::PgConnection,
) -> tokio::task::JoinHandle<Result<mfa_proto::v1::Challenge, mfa_sdk::Error>> {
    loop {
        let sign_in = tokio::spawn({
            let portal = portal.clone();
            async move { portal.start_sign_in("u", context()).await }
        });
        loop {
            if waits_for_a_lock(holder).await {
                return sign_in;
            }
            if sign_in.is_finished() {
                let error = sign_in.await.unwrap().unwrap_err();
                assert_eq!(error.code(), Some(Code::Unavailable), "{error:?}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_listener_cut_off_silently_is_replaced_and_its_watches_see_the_answer() {
    let test = "a_change_listener_cut_off_silently_is_replaced_and_its_watches_see_the_answer";
    // Replica A reaches the database through a proxy; B directly. A small
    // pool on A bounds how many stalled idle connections it must discard
    // before it can listen again.
    let Some(WatchedBehindProxy {
        a: _a,
        proxy,
        portal_a,
        mut phone_on_b,
        challenge,
        mut watch,
        _b,
    }) = watched_behind_proxy(test, small_pool_giving_up_quickly).await
    else {
        return;
    };

    // The network drops everything, then heals for new connections only:
    // A's listening connection never hears of it.
    proxy.stall();
    proxy.forward_new_only();
    let pending = only_pending(&mut phone_on_b).await;
    phone_on_b
        .approve(&pending, &challenge.number)
        .await
        .unwrap();
    let started = Instant::now();
    // The first re-read may meet one of A's stalled idle connections and end
    // the watch UNAVAILABLE; the portal then watches again, as portals do,
    // until a watch opens (opening one reads too, and may meet the next
    // stalled connection).
    // What the portal saw, for the failure message.
    let mut seen = Vec::new();
    let approved = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let message = watch.message().await;
            seen.push(format!("{:?} watch: {message:?}", started.elapsed()));
            match message {
                Ok(Some(update)) => {
                    let challenge = update.challenge.expect("challenge");
                    if challenge.state() != ChallengeState::Pending {
                        return challenge;
                    }
                }
                Err(status) if status.code() == Code::Unavailable => {
                    watch = loop {
                        let again = portal_a.watch_challenge(&challenge.challenge_id).await;
                        seen.push(format!(
                            "{:?} watching again: {:?}",
                            started.elapsed(),
                            again.as_ref().err()
                        ));
                        match again {
                            Ok(again) => break again,
                            Err(e) if e.code() == Some(Code::Unavailable) => continue,
                            Err(e) => panic!("watching again failed: {e:?}"),
                        }
                    };
                }
                ended => panic!("the watch ended without an outcome: {ended:?}"),
            }
        }
    })
    .await;
    let Ok(approved) = approved else {
        panic!("A's watch did not see the answer once its listener was replaced: {seen:#?}");
    };
    println!(
        "A's watch saw the answer {:?} after it was given",
        started.elapsed()
    );
    assert_eq!(approved.state(), ChallengeState::Approved);
}

/// Whether another session waits for a lock that this one holds. Read from
/// `pg_locks`, which is live: `pg_stat_activity` is read once per
/// transaction, so a holder inside its transaction would not see sessions
/// that started after its first look.
async fn waits_for_a_lock(holder: &mut sqlx::PgConnection) -> bool {
    let waiting: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))",
    )
    .fetch_one(holder)
    .await
    .unwrap();
    waiting > 0
}

#[tokio::test]
async fn an_unreachable_database_stops_the_start_with_a_message_that_hides_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    // Nothing listens on port 1.
    config.database_url = Some("postgres://mfa:s3cret-pw@127.0.0.1:1/mfa".into());
    config.database_acquire_timeout = Duration::from_millis(200);
    let error = match mfa_server::start(&config).await {
        Ok(_) => panic!("started without a database"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("postgres://mfa:***@127.0.0.1:1/mfa"),
        "{error}"
    );
    assert!(!error.contains("s3cret-pw"), "{error}");
}

/// Apple refuses a key whose provider tokens change more often than every 20
/// minutes (`TooManyProviderTokenUpdates`): two replicas and a restart send
/// one token between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_and_restarts_send_one_apns_provider_token_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let push = mfa_tests::push::PushStandIns::start(dir.path()).await;
    let config = push.config.clone();
    let Some((a, mut b)) = two_replicas(
        "replicas_and_restarts_send_one_apns_provider_token_between_them",
        |c| c.push = config,
    )
    .await
    else {
        return;
    };
    let iphone = mfa_sdk::DeviceInfo {
        name: "iPhone".into(),
        push_platform: mfa_proto::v1::PushPlatform::Apns,
        push_token: "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90".into(),
    };
    a.enroll_device(&a.portal().await, "u", "u@example.jp", iphone)
        .await;
    b.portal()
        .await
        .start_sign_in("u", context())
        .await
        .unwrap();
    a.portal()
        .await
        .start_sign_in("u", context())
        .await
        .unwrap();
    b.restart().await;
    b.portal()
        .await
        .start_sign_in("u", context())
        .await
        .unwrap();
    let requests = within(mfa_tests::push::StandIn::wait_for(&push.apns, 3)).await;
    let tokens: std::collections::BTreeSet<&str> =
        requests.iter().map(|r| r.bearer.as_str()).collect();
    assert_eq!(tokens.len(), 1, "one provider token: {tokens:?}");
}
