//! Property tests of the challenge state machine, on the real domain
//! `Service` over a real SQLite file: any interleaving of create (which
//! supersedes), answer, concurrent answers, cancel, expiry and device
//! revocation leaves every challenge in exactly one terminal state, answered
//! at most once, and only by an active device of its user that typed the
//! right number (or denied). A model predicts each call's outcome.

use ed25519_dalek::SigningKey;
use mfa_proto::{enrollment::normalize_activation_code, signing};
use mfa_server::{
    domain::{Answer, Decision, Error, NewDevice, Reason, Service},
    model::{Challenge, ChallengeState, DenyReason, PushPlatform, SignInContext},
};
use mfa_tests::test_config;
use proptest::{prelude::*, test_runner::TestRunner};
use std::{cell::RefCell, collections::HashMap};
use tonic::Code;

/// The challenges' lifetime in the configuration; `Expire` sweeps past it.
const TTL_MS: i64 = 120_000;
/// The phone's address, as the API layer would have resolved it.
fn caller() -> mfa_server::domain::Client {
    mfa_server::domain::Client::new(Some(mfa_server::client_address::ClientAddress(
        "192.0.2.1".parse().unwrap(),
    )))
}

#[derive(Debug, Clone)]
enum Op {
    /// The portal asks for a sign-in (superseding the pending one).
    Create,
    /// A device answers the `target`-th challenge created so far.
    Answer {
        target: usize,
        device: usize,
        decision: u8,
        right_number: bool,
    },
    /// Both of the user's devices answer the same challenge at once.
    Race { target: usize, right_number: bool },
    /// The portal cancels.
    Cancel { target: usize },
    /// The clock passes every pending challenge's expiry.
    Expire,
    /// An administrator revokes one of the user's devices.
    Revoke { device: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => Just(Op::Create),
        4 => (0..8usize, 0..3usize, 0..3u8, any::<bool>()).prop_map(
            |(target, device, decision, right_number)| Op::Answer { target, device, decision, right_number }
        ),
        1 => (0..8usize, any::<bool>()).prop_map(|(target, right_number)| Op::Race { target, right_number }),
        1 => (0..8usize).prop_map(|target| Op::Cancel { target }),
        1 => Just(Op::Expire),
        1 => (0..2usize).prop_map(|device| Op::Revoke { device }),
    ]
}

/// A device key and id.
struct Phone {
    id: String,
    key: SigningKey,
}

/// What the model expects of each challenge and device.
#[derive(Default)]
struct Model {
    /// Challenge id → expected state (`Pending` until it ends).
    states: HashMap<String, ChallengeState>,
    /// Challenge ids in creation order.
    created: Vec<String>,
    /// Devices 0 and 1 belong to the user; whether each is still active.
    active: [bool; 2],
    blocked: bool,
    /// Successful answers per challenge.
    answers: HashMap<String, u32>,
}

struct World {
    service: Service,
    tenant: String,
    /// Device of another user of the tenant.
    stranger: Phone,
    next_user: u32,
    now_offset: i64,
}

impl World {
    async fn new(dir: &std::path::Path) -> Self {
        let mut config = test_config(dir);
        config.challenge_limit = 100_000;
        config.challenge_ttl = std::time::Duration::from_millis(TTL_MS as u64);
        let service = mfa_server::server::build_service(&config, "http://127.0.0.1:1".into())
            .await
            .expect("service");
        let tenant = service.create_tenant("Property tests", 2).await.unwrap().id;
        let mut world = Self {
            stranger: Phone {
                id: String::new(),
                key: SigningKey::from_bytes(&[0; 32]),
            },
            service,
            tenant,
            next_user: 0,
            now_offset: 0,
        };
        world.stranger = world.enroll("stranger").await;
        world
    }

    /// Enrolls and verifies a device for `user` through the domain calls the
    /// API makes.
    async fn enroll(&self, user: &str) -> Phone {
        let started = self
            .service
            .begin_enrollment(&self.tenant, user, &format!("{user}@example.jp"))
            .await
            .unwrap();
        let code = normalize_activation_code(&started.manual_code).unwrap();
        let key = SigningKey::generate(&mut rand::rngs::OsRng);
        let public_key = key.verifying_key().to_bytes();
        let proof = signing::EnrollmentProof {
            activation_code: &code,
            public_key: &public_key,
            push_platform: "PUSH_PLATFORM_NONE",
            push_token: "",
            device_name: "phone",
            key_algorithm: None,
        };
        let registered = self
            .service
            .complete_enrollment(NewDevice {
                activation_code: &code,
                key_algorithm: None,
                public_key: &public_key,
                push_platform: PushPlatform::None,
                push_platform_name: "PUSH_PLATFORM_NONE",
                push_token: "",
                device_name: "phone",
                signature: &signing::sign(&key, &proof.signed_bytes()),
                client: &caller(),
            })
            .await
            .unwrap();
        let phone = Phone {
            id: registered.device.id,
            key,
        };
        let verification = registered.verification.challenge;
        let number = verification.number.clone();
        let ended = self
            .answer(&phone, &verification, Decision::Approve, &number)
            .await
            .unwrap();
        assert_eq!(ended.state, ChallengeState::Approved);
        phone
    }

    async fn answer(
        &self,
        phone: &Phone,
        challenge: &Challenge,
        decision: Decision,
        typed_number: &str,
    ) -> Result<Challenge, Error> {
        let name = match decision {
            Decision::Approve => "DECISION_APPROVE",
            Decision::Deny => "DECISION_DENY",
            Decision::ReportFraud => "DECISION_REPORT_FRAUD",
        };
        let message = signing::Approval {
            tenant_id: &challenge.tenant_id,
            challenge_id: &challenge.id,
            device_id: &phone.id,
            decision: name,
            typed_number,
            challenge_nonce: &challenge.nonce,
            user_verification: None,
        }
        .signed_bytes();
        self.service
            .respond(Answer {
                device_id: &phone.id,
                challenge_id: &challenge.id,
                decision,
                decision_name: name,
                typed_number,
                user_verification: None,
                signature: &signing::sign(&phone.key, &message),
                client: &caller(),
            })
            .await
    }

    async fn stored(&self, id: &str) -> Challenge {
        self.service
            .store()
            .get_challenge(id)
            .await
            .unwrap()
            .expect("challenge exists")
    }
}

fn decision(code: u8) -> Decision {
    match code {
        0 => Decision::Approve,
        1 => Decision::Deny,
        _ => Decision::ReportFraud,
    }
}

fn wrong(number: &str) -> String {
    mfa_tests::wrong_number(number)
}

/// The state a successful answer leaves.
fn answered_state(decision: Decision, right: bool) -> (ChallengeState, Option<DenyReason>) {
    match (decision, right) {
        (Decision::Approve, true) => (ChallengeState::Approved, None),
        (Decision::Approve, false) => (ChallengeState::Denied, Some(DenyReason::WrongNumber)),
        (Decision::Deny, _) => (ChallengeState::Denied, Some(DenyReason::UserDenied)),
        (Decision::ReportFraud, _) => (ChallengeState::Denied, Some(DenyReason::FraudReported)),
    }
}

/// Runs one interleaving for a fresh user and checks every step.
async fn run(world: &mut World, ops: Vec<Op>) {
    world.next_user += 1;
    let user = format!("user-{}", world.next_user);
    let phones = [world.enroll(&user).await, world.enroll(&user).await];
    let mut model = Model {
        active: [true, true],
        ..Model::default()
    };
    // Terminal snapshots: once ended, a challenge never changes again.
    let mut ended: HashMap<String, Challenge> = HashMap::new();

    for op in ops {
        match op {
            Op::Create => {
                let result = world
                    .service
                    .create_challenge(&world.tenant, &user, SignInContext::default())
                    .await;
                let expect_ok = !model.blocked && model.active.iter().any(|a| *a);
                match result {
                    Ok(challenge) => {
                        assert!(expect_ok, "created while blocked or without devices");
                        for state in model.states.values_mut() {
                            if *state == ChallengeState::Pending {
                                *state = ChallengeState::Superseded;
                            }
                        }
                        model
                            .states
                            .insert(challenge.id.clone(), ChallengeState::Pending);
                        model.created.push(challenge.id);
                    }
                    Err(error) => {
                        assert!(!expect_ok, "create refused: {error}");
                        assert!(error.code() == Code::FailedPrecondition, "{error}");
                    }
                }
            }
            Op::Answer {
                target,
                device,
                decision: code,
                right_number,
            } => {
                let Some(id) = pick(&model.created, target) else {
                    continue;
                };
                let challenge = world.stored(&id).await;
                let number = if right_number {
                    challenge.number.clone()
                } else {
                    wrong(&challenge.number)
                };
                let decision = decision(code);
                let typed = if decision == Decision::Approve {
                    number.as_str()
                } else {
                    ""
                };
                let phone = phones.get(device).unwrap_or(&world.stranger);
                let result = world.answer(phone, &challenge, decision, typed).await;
                let pending = model.states[&id] == ChallengeState::Pending;
                match (device, result) {
                    (2, result) => assert!(
                        result
                            .as_ref()
                            .is_err_and(|e| e.reason() == Reason::NotFound),
                        "another user's device: {result:?}"
                    ),
                    (d, Err(error)) if error.reason() == Reason::DeviceRevoked => {
                        assert!(!model.active[d], "an active device was refused");
                    }
                    (d, Ok(answered)) => {
                        assert!(model.active[d] && pending, "answer accepted: {answered:?}");
                        let (state, reason) = answered_state(decision, right_number);
                        assert_eq!((answered.state, answered.deny_reason), (state, reason));
                        assert_eq!(answered.answered_by.as_deref(), Some(phone.id.as_str()));
                        model.states.insert(id.clone(), state);
                        *model.answers.entry(id.clone()).or_default() += 1;
                        model.blocked |= decision == Decision::ReportFraud;
                    }
                    (d, Err(error)) => {
                        assert!(model.active[d], "a revoked device: {error}");
                        assert!(!pending, "a pending challenge refused an answer: {error}");
                        assert!(error.code() == Code::FailedPrecondition, "{error}");
                    }
                }
            }
            Op::Race {
                target,
                right_number,
            } => {
                let Some(id) = pick(&model.created, target) else {
                    continue;
                };
                let challenge = world.stored(&id).await;
                let number = if right_number {
                    challenge.number.clone()
                } else {
                    wrong(&challenge.number)
                };
                let (first, second) = tokio::join!(
                    world.answer(&phones[0], &challenge, Decision::Approve, &number),
                    world.answer(&phones[1], &challenge, Decision::Approve, &number),
                );
                let wins = [&first, &second].iter().filter(|r| r.is_ok()).count();
                let pending = model.states[&id] == ChallengeState::Pending;
                let could_win = pending && model.active.iter().any(|a| *a);
                assert_eq!(wins, usize::from(could_win), "{first:?} {second:?}");
                for (d, result) in [&first, &second].into_iter().enumerate() {
                    if result
                        .as_ref()
                        .is_err_and(|e| e.reason() == Reason::DeviceRevoked)
                    {
                        assert!(!model.active[d]);
                    }
                }
                if let Some(answered) = first.as_ref().ok().or(second.as_ref().ok()) {
                    let (state, _) = answered_state(Decision::Approve, right_number);
                    assert_eq!(answered.state, state);
                    model.states.insert(id.clone(), state);
                    *model.answers.entry(id.clone()).or_default() += 1;
                }
            }
            Op::Cancel { target } => {
                let Some(id) = pick(&model.created, target) else {
                    continue;
                };
                let pending = model.states[&id] == ChallengeState::Pending;
                match world.service.cancel_challenge(&world.tenant, &id).await {
                    Ok(cancelled) => {
                        assert!(pending);
                        assert_eq!(cancelled.state, ChallengeState::Cancelled);
                        model.states.insert(id, ChallengeState::Cancelled);
                    }
                    Err(error) => {
                        assert!(!pending, "cancel refused: {error}");
                        assert!(error.code() == Code::FailedPrecondition, "{error}");
                    }
                }
            }
            Op::Expire => {
                world.now_offset += TTL_MS + 1;
                world
                    .service
                    .sweep_at(mfa_server::domain::now_ms() + world.now_offset)
                    .await
                    .unwrap();
                for state in model.states.values_mut() {
                    if *state == ChallengeState::Pending {
                        *state = ChallengeState::Expired;
                    }
                }
            }
            Op::Revoke { device } => {
                let revoked = world
                    .service
                    .revoke_device(&world.tenant, &phones[device].id)
                    .await
                    .unwrap();
                assert_eq!(revoked.state, mfa_server::model::DeviceState::Revoked);
                model.active[device] = false;
            }
        }
        check(world, &model, &phones, &mut ended).await;
    }

    // In the end, everything still pending expires; each challenge has
    // exactly one ending in the audit log.
    world.now_offset += TTL_MS + 1;
    world
        .service
        .sweep_at(mfa_server::domain::now_ms() + world.now_offset)
        .await
        .unwrap();
    for state in model.states.values_mut() {
        if *state == ChallengeState::Pending {
            *state = ChallengeState::Expired;
        }
    }
    check(world, &model, &phones, &mut ended).await;
    let (events, _) = world
        .service
        .audit_events(&world.tenant, &user, 1000, "")
        .await
        .unwrap();
    for id in &model.created {
        let endings: Vec<&str> = events
            .iter()
            .filter(|e| e.challenge_id.as_deref() == Some(id.as_str()))
            .map(|e| e.event_type.as_str())
            .filter(|t| t.starts_with("challenge.") && *t != "challenge.created")
            .collect();
        assert_eq!(
            endings,
            vec![format!("challenge.{}", model.states[id].as_str())],
            "audit endings of {id}"
        );
    }
}

fn pick(created: &[String], target: usize) -> Option<String> {
    (!created.is_empty()).then(|| created[target % created.len()].clone())
}

/// Compares the store with the model after a step.
async fn check(
    world: &World,
    model: &Model,
    phones: &[Phone; 2],
    ended: &mut HashMap<String, Challenge>,
) {
    let mut pending = 0;
    for id in &model.created {
        let stored = world.stored(id).await;
        assert_eq!(stored.state, model.states[id], "state of {id}");
        assert!(model.answers.get(id).copied().unwrap_or(0) <= 1);
        match stored.state {
            ChallengeState::Pending => {
                pending += 1;
                assert!(stored.answered_by.is_none() && stored.ended_at.is_none());
            }
            ChallengeState::Approved | ChallengeState::Denied => {
                let by = stored.answered_by.as_deref().expect("answered by a device");
                assert!(phones.iter().any(|p| p.id == by), "answered by a stranger");
                assert_eq!(model.answers.get(id), Some(&1));
                assert!(stored.ended_at.is_some());
            }
            ChallengeState::Expired | ChallengeState::Superseded | ChallengeState::Cancelled => {
                assert!(stored.answered_by.is_none(), "{stored:?}");
                assert_eq!(model.answers.get(id), None);
            }
        }
        if stored.state != ChallengeState::Pending {
            let first = ended.entry(id.clone()).or_insert_with(|| stored.clone());
            assert_eq!(
                (
                    first.state,
                    first.deny_reason,
                    &first.answered_by,
                    first.ended_at
                ),
                (
                    stored.state,
                    stored.deny_reason,
                    &stored.answered_by,
                    stored.ended_at
                ),
                "an ended challenge changed"
            );
        }
    }
    assert!(pending <= 1, "more than one pending sign-in for the user");
}

#[test]
fn any_interleaving_ends_each_challenge_once_by_an_active_device_with_the_right_number() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let world = RefCell::new(runtime.block_on(World::new(dir.path())));
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let mut runner = TestRunner::new(ProptestConfig {
        cases,
        // Each shrink step replays against the same database with a new
        // user, which is what keeps cases independent.
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..24), |ops| {
            runtime.block_on(run(&mut world.borrow_mut(), ops));
            Ok(())
        })
        .unwrap();
}
