//! Two replicas (the real `mfa-server` binary, each its own process) on one
//! PostgreSQL database behind a real HAProxy, run with the configuration the
//! README gives operators (`deploy/haproxy/haproxy.cfg`): calls and watches
//! are balanced over both, a watch survives a replica's restart by opening
//! again, audit names the true client address, and an attacker behind the
//! balancer forging signatures cannot stop a genuine phone behind it.
//!
//! Without PostgreSQL or haproxy the tests say that they are skipped (and
//! fail under `CI=true`, where `.ci/run` provides both).

use hyper_util::rt::TokioIo;
use mfa_proto::v1::{
    admin_service_client::AdminServiceClient, device_service_client::DeviceServiceClient,
    AuditEvent, ChallengeState, Decision, ListAuditEventsRequest, SignInContext,
};
use mfa_sdk::{
    portal::{BearerAuth, RelyingParty},
    Authenticator, ConnectOptions, UserVerification,
};
use mfa_tests::{
    enroll_phone,
    haproxy::{self, Backend, Haproxy},
    occurrences, phone_info,
    postgres::{self, TestDatabase},
    process::ServerProcess,
    within,
};
use prometheus_parse::Scrape;
use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    time::Duration,
};
use tokio::net::TcpSocket;
use tonic::{
    transport::{Channel, Endpoint},
    Code,
};

/// Two replicas behind HAProxy, on a fresh database.
struct Cluster {
    replicas: Vec<ServerProcess>,
    balancer: Haproxy,
    portal_key: String,
    admin_key: String,
    settings: Vec<(&'static str, String)>,
    database: TestDatabase,
    data: tempfile::TempDir,
}

impl Cluster {
    /// `None` (after saying so) without PostgreSQL or haproxy.
    async fn start(test: &str, extra: &[(&'static str, &str)]) -> Option<Self> {
        if !postgres::available_or_skip(test).await || !haproxy::available_or_skip(test) {
            return None;
        }
        let database = TestDatabase::create().await;
        let data = tempfile::tempdir().unwrap();
        let balancer_addr = haproxy::free_port();
        let mut settings = vec![
            ("MFA_PUBLIC_URL", format!("http://{balancer_addr}")),
            // The balancer connects from loopback: believe only its headers.
            ("MFA_TRUSTED_PROXIES", "[\"127.0.0.1/32\"]".to_owned()),
            ("MFA_API_KEY_CACHE_TTL", "0s".to_owned()),
        ];
        settings.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let first = start_replica(data.path(), &database, &settings, None);
        let keys = first
            .keys
            .clone()
            .expect("the first replica made the dev tenant");
        let second = start_replica(data.path(), &database, &settings, None);
        let balancer = Haproxy::start(balancer_addr, [backend(&first), backend(&second)]);
        Some(Self {
            replicas: vec![first, second],
            balancer,
            portal_key: keys.portal_key,
            admin_key: keys.admin_key,
            settings,
            database,
            data,
        })
    }

    async fn portal(&self) -> RelyingParty {
        RelyingParty::connect(&self.balancer.url(), &self.portal_key)
            .await
            .expect("portal connects through the balancer")
    }

    async fn enroll(&self, portal: &RelyingParty, user: &str) -> Authenticator {
        let email = format!("{user}@example.jp");
        enroll_phone(
            portal,
            user,
            &email,
            phone_info("Phone"),
            &ConnectOptions::default(),
        )
        .await
    }

    async fn audit(&self, user: &str) -> Vec<AuditEvent> {
        let channel = Endpoint::from_shared(self.balancer.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut admin = AdminServiceClient::with_interceptor(
            channel,
            BearerAuth::new(&self.admin_key).unwrap(),
        );
        admin
            .list_audit_events(ListAuditEventsRequest {
                user_id: user.into(),
                page_size: 1000,
                page_token: String::new(),
            })
            .await
            .expect("audit events")
            .into_inner()
            .events
    }

    /// Stops replica `i` (SIGTERM) and starts it again on the same ports.
    fn restart(&mut self, i: usize) {
        let old = self.replicas.remove(i);
        let at = (old.addr, old.metrics_addr);
        old.stop();
        let restarted = start_replica(self.data.path(), &self.database, &self.settings, Some(at));
        self.replicas.insert(i, restarted);
    }
}

fn start_replica(
    data: &Path,
    database: &TestDatabase,
    settings: &[(&'static str, String)],
    at: Option<(SocketAddr, SocketAddr)>,
) -> ServerProcess {
    let mut settings: Vec<(&str, String)> = settings.to_vec();
    if let Some((addr, metrics)) = at {
        settings.push(("MFA_LISTEN", addr.to_string()));
        settings.push(("MFA_METRICS_LISTEN", metrics.to_string()));
    }
    let settings: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ServerProcess::start(data, Some(&database.url), &settings)
}

fn backend(replica: &ServerProcess) -> Backend {
    Backend {
        grpc: replica.addr,
        health: replica.metrics_addr,
    }
}

/// How many calls of `method` a replica answered (its own process's metrics).
async fn calls(replica: &ServerProcess, method: &str) -> f64 {
    let url = format!("http://{}/metrics", replica.metrics_addr);
    let text = mfa_server::stats::fetch(&url)
        .await
        .expect("metrics answer");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == "mfa_grpc_requests_total")
        .filter(|s| s.labels.get("method") == Some(method))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

/// The challenge `id` as `phone` lists it (never refused: a genuine phone
/// is never locked out).
async fn pending(phone: &mut Authenticator, id: &str) -> mfa_sdk::VerifiedChallenge {
    phone
        .pending_challenges()
        .await
        .expect("the phone lists its pending challenges")
        .into_iter()
        .find(|c| c.challenge_id == id)
        .unwrap_or_else(|| panic!("the phone sees challenge {id}"))
}

/// A sign-in through the balancer, approved by `phone`; the portal's watch
/// (opened before the phone answers) must see it.
async fn sign_in(portal: &RelyingParty, phone: &mut Authenticator, user: &str) {
    let challenge = portal
        .start_sign_in(user, SignInContext::default())
        .await
        .expect("challenge created");
    let watching = {
        let portal = portal.clone();
        let id = challenge.challenge_id.clone();
        tokio::spawn(async move { portal.await_outcome(&id).await })
    };
    let pending = pending(phone, &challenge.challenge_id).await;
    let answer = phone.approve(&pending, &challenge.number).await.unwrap();
    assert_eq!(answer.state, ChallengeState::Approved);
    let seen = within(watching).await.unwrap().expect("watch outcome");
    assert_eq!(seen.state(), ChallengeState::Approved);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_and_watches_are_balanced_and_watches_survive_a_replica_restart() {
    let test = "calls_and_watches_are_balanced_and_watches_survive_a_replica_restart";
    let Some(mut cluster) = Cluster::start(test, &[]).await else {
        return;
    };
    let portal = cluster.portal().await;
    let users = ["aiko", "ben", "chie", "dai"];
    let mut phones = Vec::new();
    for user in users {
        phones.push(cluster.enroll(&portal, user).await);
    }
    // Balanced per call, not per connection: the portal's one HTTP/2
    // connection reaches both replicas, for unary calls and for streams.
    // The balancer picks at random, so sign in until each replica has
    // answered each kind of call (in 40 rounds, failing by chance alone has
    // a probability below 1e-11).
    let methods = ["CreateChallenge", "WatchChallenge", "RespondToChallenge"];
    let mut rounds = 0;
    loop {
        let mut all_served = true;
        for replica in &cluster.replicas {
            for method in methods {
                all_served &= calls(replica, method).await >= 1.0;
            }
        }
        if all_served {
            break;
        }
        assert!(rounds < 40, "a replica never answered one of {methods:?}");
        let user = users[rounds % users.len()];
        sign_in(&portal, &mut phones[rounds % users.len()], user).await;
        rounds += 1;
    }
    println!("both replicas answered every kind of call after {rounds} sign-ins");

    // Watches open on both replicas; one replica restarts. Its watches end
    // with UNAVAILABLE, the portal helper opens them again through the
    // balancer, and every one sees its answer.
    let challenges = {
        let mut created = Vec::new();
        for user in users {
            created.push(
                portal
                    .start_sign_in(user, SignInContext::default())
                    .await
                    .unwrap(),
            );
        }
        created
    };
    let before = calls(&cluster.replicas[0], "WatchChallenge").await;
    let watches: Vec<_> = challenges
        .iter()
        .map(|challenge| {
            let portal = portal.clone();
            let id = challenge.challenge_id.clone();
            tokio::spawn(async move { portal.await_outcome(&id).await })
        })
        .collect();
    // Wait until the first replica holds at least one of them (counted when
    // the stream opens), so that its restart really cuts a watch.
    within(async {
        while calls(&cluster.replicas[0], "WatchChallenge").await < before + 1.0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    cluster.restart(0);
    for ((user, phone), challenge) in users.iter().zip(&mut phones).zip(&challenges) {
        let pending = pending(phone, &challenge.challenge_id).await;
        assert_eq!(pending.user_email, format!("{user}@example.jp"));
        phone.approve(&pending, &challenge.number).await.unwrap();
    }
    for watch in watches {
        let outcome = within(watch)
            .await
            .unwrap()
            .expect("the watch follows the challenge");
        assert_eq!(outcome.state(), ChallengeState::Approved);
    }
    // The restarted replica (a new process, counting from zero) is back in
    // the rotation.
    let mut rounds = 0;
    while calls(&cluster.replicas[0], "CreateChallenge").await < 1.0 {
        assert!(rounds < 40, "the restarted replica answers again");
        let i = rounds % users.len();
        sign_in(&portal, &mut phones[i], users[i]).await;
        rounds += 1;
    }
}

/// A device client connecting from `source` (a loopback address of its own)
/// to `target`, as a different machine behind the balancer would.
async fn device_client_from(source: IpAddr, target: SocketAddr) -> DeviceServiceClient<Channel> {
    let channel = Endpoint::from_shared(format!("http://{target}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_| async move {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            let stream = socket.connect(target).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }))
        .await
        .expect("connects");
    DeviceServiceClient::new(channel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forging_attacker_behind_the_balancer_cannot_stop_a_genuine_phone() {
    let test = "a_forging_attacker_behind_the_balancer_cannot_stop_a_genuine_phone";
    let limit = "5";
    let settings = [
        ("MFA_SIGNATURE_FAILURE_LIMIT", limit),
        ("MFA_CHALLENGE_LIMIT", "20"),
    ];
    let Some(cluster) = Cluster::start(test, &settings).await else {
        return;
    };
    let portal = cluster.portal().await;
    let mut phone = cluster.enroll(&portal, "hanako").await;
    let attacker_address: IpAddr = "127.0.0.3".parse().unwrap();
    let mut attacker = device_client_from(attacker_address, cluster.balancer.addr).await;

    // 100 forged answers (the attacker even knows the device and challenge
    // ids), ten between each of the genuine phone's sign-ins.
    let mut refusals = Vec::new();
    for _ in 0..10 {
        let challenge = portal
            .start_sign_in("hanako", SignInContext::default())
            .await
            .unwrap();
        let pending = pending(&mut phone, &challenge.challenge_id).await;
        for _ in 0..10 {
            let mut forged = phone
                .approval_request(
                    &pending,
                    Decision::Approve,
                    &challenge.number,
                    UserVerification::None,
                )
                .unwrap();
            forged.signature[0] ^= 1;
            let refused = attacker.respond_to_challenge(forged).await.unwrap_err();
            refusals.push(refused.code());
        }
        let answer = phone
            .approve(&pending, &challenge.number)
            .await
            .expect("the genuine phone's approval is accepted");
        assert_eq!(answer.state, ChallengeState::Approved);
        assert_eq!(
            within(portal.await_outcome(&challenge.challenge_id))
                .await
                .unwrap()
                .state(),
            ChallengeState::Approved
        );
    }
    let limit: usize = limit.parse().unwrap();
    assert!(
        refusals[..limit]
            .iter()
            .all(|c| *c == Code::Unauthenticated)
            && refusals[limit..]
                .iter()
                .all(|c| *c == Code::ResourceExhausted),
        "{refusals:?}"
    );

    // Audit names the attacker's own address (forwarded by the balancer),
    // with the forgeries counted in a few aggregated entries.
    let events = cluster.audit("hanako").await;
    let forgeries: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "device.bad_signature" || e.event_type == "device.throttled")
        .collect();
    assert!(
        forgeries.iter().all(|e| e.client_address == "127.0.0.3"),
        "{forgeries:?}"
    );
    assert_eq!(occurrences(&events, "device.bad_signature") as usize, limit);
    assert_eq!(
        occurrences(&events, "device.throttled") as usize,
        100 - limit
    );
    assert!(forgeries.len() <= 4, "aggregated per minute: {forgeries:?}");
    assert!(forgeries.iter().all(|e| e.challenge_id.is_empty()));

    // A client that reaches a replica directly cannot pass as someone else:
    // its x-forwarded-for is not believed, as its peer is not a trusted
    // proxy.
    let mut direct = device_client_from(attacker_address, cluster.replicas[1].addr).await;
    let challenge = portal
        .start_sign_in("hanako", SignInContext::default())
        .await
        .unwrap();
    let pending = pending(&mut phone, &challenge.challenge_id).await;
    let mut forged = tonic::Request::new({
        let mut request = phone
            .approval_request(&pending, Decision::Deny, "", UserVerification::None)
            .unwrap();
        request.signature[0] ^= 1;
        request
    });
    forged
        .metadata_mut()
        .insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
    direct.respond_to_challenge(forged).await.unwrap_err();
    let events = cluster.audit("hanako").await;
    assert!(
        !events.iter().any(|e| e.client_address == "198.51.100.1"),
        "{events:?}"
    );
}
