//! The store contract, checked on every backend by one set of tests: values
//! come back exactly as stored, and each operation keeps its guarantee
//! (answered once, superseded, swept once, used once) when calls race.
//!
//! SQLite always runs; PostgreSQL runs on a fresh database when it is
//! reachable (otherwise the test says it skipped it, or fails under CI).

use mfa_server::{
    model::*,
    server::open_store,
    store::{Creation, Deletion, Ended, Quota, Store, StoreError, TenantCounts},
};
use mfa_tests::{
    postgres::{self, TestDatabase},
    test_config,
};
use std::{sync::Arc, time::Duration};

/// A store under test and what keeps its database alive.
struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
    _database: Option<TestDatabase>,
}

/// A migrated store on each backend available.
async fn backends(test: &str) -> Vec<Backend> {
    let mut backends = Vec::new();
    for name in ["sqlite", "postgres"] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        let database = if name == "postgres" {
            if !postgres::available_or_skip(&format!("{test} on PostgreSQL")).await {
                continue;
            }
            let database = TestDatabase::create().await;
            config.database_url = Some(database.url.clone());
            Some(database)
        } else {
            None
        };
        let store = open_store(&config).await.expect("store opens").store;
        store.migrate().await.expect("migrations apply");
        backends.push(Backend {
            name,
            store,
            _dir: dir,
            _database: database,
        });
    }
    backends
}

const NOW: i64 = 1_780_000_000_000;

fn id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}

async fn tenant(store: &dyn Store) -> Tenant {
    let tenant = Tenant {
        id: id("tenant"),
        display_name: "Example Ltd".into(),
        number_digits: 3,
        created_at: NOW,
        challenge_ttl: None,
        enrollment_ttl: None,
        offline_codes_enabled: true,
        device_policy: DevicePolicy::default(),
    };
    store.create_tenant(&tenant).await.unwrap();
    tenant
}

fn enrollment(tenant: &Tenant, user: &str) -> Enrollment {
    Enrollment {
        id: id("enrollment"),
        tenant_id: tenant.id.clone(),
        user_id: user.into(),
        state: EnrollmentState::WaitingForScan,
        created_at: NOW,
        expires_at: NOW + 600_000,
        device_id: None,
        challenge_id: None,
    }
}

fn device(tenant: &Tenant, user: &str, state: DeviceState) -> Device {
    Device {
        id: id("device"),
        tenant_id: tenant.id.clone(),
        user_id: user.into(),
        display_name: "Hanako's phone".into(),
        key_algorithm: KeyAlgorithm::Ed25519,
        public_key: vec![7; 32],
        push_platform: PushPlatform::Fcm,
        push_token: "token-1".into(),
        state,
        created_at: NOW,
        revoked_at: None,
        push_token_invalid: None,
    }
}

/// A quota that no test reaches.
const NO_QUOTA: Quota = Quota {
    since: NOW,
    limit: u32::MAX,
};

/// Creates a sign-in challenge that the quota cannot refuse; returns what it
/// superseded.
async fn create(store: &dyn Store, challenge: &Challenge) -> Vec<Ended> {
    match store.create_challenge(challenge, NO_QUOTA).await.unwrap() {
        Creation::Created(superseded) => superseded,
        Creation::QuotaSpent => panic!("NO_QUOTA was spent"),
    }
}

fn challenge(tenant: &Tenant, user: &str, kind: ChallengeKind, expires_at: i64) -> Challenge {
    Challenge {
        id: id("challenge"),
        tenant_id: tenant.id.clone(),
        user_id: user.into(),
        kind,
        target_device_id: None,
        number: "042".into(),
        nonce: [9; 32],
        state: ChallengeState::Pending,
        deny_reason: None,
        answered_by: None,
        context: SignInContext {
            application_name: "Portal".into(),
            client_ip: "2001:db8::1".into(),
            location: "Tōkyō, JP".into(),
            message: "It's me".into(),
        },
        created_at: NOW,
        expires_at,
        ended_at: None,
    }
}

fn unique_code_hash() -> [u8; 32] {
    let mut hash = [0; 32];
    hash[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    hash
}

/// A user with one active device, ready for sign-in challenges.
async fn enrolled_user(store: &dyn Store, tenant: &Tenant, user: &str) -> Device {
    let enrollment = enrollment(tenant, user);
    store
        .create_enrollment(&enrollment, "u@example.jp", &unique_code_hash())
        .await
        .unwrap();
    let mut device = device(tenant, user, DeviceState::PendingVerification);
    let mut verification = challenge(
        tenant,
        user,
        ChallengeKind::EnrollmentVerification,
        NOW + 60_000,
    );
    verification.target_device_id = Some(device.id.clone());
    assert!(store
        .register_device(&enrollment.id, &device, &verification, NOW)
        .await
        .unwrap());
    let approved = Ending {
        answered_by: Some(device.id.clone()),
        ..Ending::unanswered(ChallengeState::Approved)
    };
    store
        .end_challenge(&verification, &approved, NOW + 1)
        .await
        .unwrap()
        .expect("verification approved");
    device.state = DeviceState::Active;
    device
}

#[tokio::test]
async fn values_come_back_exactly_as_stored() {
    for backend in backends("values_come_back_exactly_as_stored").await {
        let store = &*backend.store;
        let name = backend.name;
        let tenant = tenant(store).await;
        assert_eq!(
            store.get_tenant(&tenant.id).await.unwrap(),
            Some(tenant.clone()),
            "{name}"
        );
        assert_eq!(store.get_tenant("nope").await.unwrap(), None, "{name}");
        assert!(matches!(
            store.create_tenant(&tenant).await,
            Err(StoreError::Duplicate(_))
        ));

        let key = ApiKeyRecord {
            id: id("key"),
            tenant_id: tenant.id.clone(),
            role: Role::Admin,
            created_at: NOW,
            revoked_at: None,
            last_used_at: None,
        };
        store
            .create_api_key(&key.id, &tenant.id, Role::Admin, &[1; 32], NOW)
            .await
            .unwrap();
        assert_eq!(
            store.find_api_key(&[1; 32]).await.unwrap(),
            Some(key),
            "{name}"
        );

        let enrollment = enrollment(&tenant, "hanako");
        store
            .create_enrollment(&enrollment, "hanako@example.jp", &[2; 32])
            .await
            .unwrap();
        assert_eq!(
            store.get_enrollment(&enrollment.id).await.unwrap(),
            Some(enrollment.clone())
        );
        assert_eq!(
            store.find_enrollment_by_code(&[2; 32]).await.unwrap(),
            Some(enrollment.clone())
        );
        let device = device(&tenant, "hanako", DeviceState::PendingVerification);
        let mut verification = challenge(
            &tenant,
            "hanako",
            ChallengeKind::EnrollmentVerification,
            NOW + 60_000,
        );
        verification.target_device_id = Some(device.id.clone());
        assert!(store
            .register_device(&enrollment.id, &device, &verification, NOW)
            .await
            .unwrap());
        assert!(!store
            .register_device(&enrollment.id, &device, &verification, NOW)
            .await
            .unwrap());
        assert_eq!(
            store.get_device(&device.id).await.unwrap(),
            Some(device.clone()),
            "{name}"
        );
        assert_eq!(
            store.get_challenge(&verification.id).await.unwrap(),
            Some(verification.clone()),
            "{name}"
        );
        assert_eq!(
            store.pending_for_device(&device, NOW).await.unwrap(),
            vec![(verification.clone(), "hanako@example.jp".to_owned())],
            "{name}"
        );

        let user = store.get_user(&tenant.id, "hanako").await.unwrap().unwrap();
        assert_eq!(
            (user.email.as_str(), user.blocked_until, user.terms_version),
            ("hanako@example.jp", None, None)
        );
        store
            .record_terms(&tenant.id, "hanako", "2026-04", NOW)
            .await
            .unwrap();
        assert!(store
            .set_blocked_until(&tenant.id, "hanako", Some(NOW + 5))
            .await
            .unwrap());
        let user = store.get_user(&tenant.id, "hanako").await.unwrap().unwrap();
        assert_eq!(user.terms_version.as_deref(), Some("2026-04"));
        assert_eq!(
            (user.terms_accepted_at, user.blocked_until),
            (Some(NOW), Some(NOW + 5))
        );

        let delivery = PushDelivery {
            challenge_id: verification.id.clone(),
            device_id: device.id.clone(),
            push_platform: PushPlatform::Fcm,
            state: DeliveryState::Retrying,
            attempts: 1,
            provider_message_id: String::new(),
            reason: "timeout".into(),
            updated_at: NOW,
        };
        store.save_delivery(&delivery).await.unwrap();
        let sent = PushDelivery {
            state: DeliveryState::Sent,
            attempts: 2,
            provider_message_id: "projects/p/messages/1".into(),
            reason: String::new(),
            ..delivery
        };
        store.save_delivery(&sent).await.unwrap();
        assert_eq!(
            store.list_deliveries(&verification.id).await.unwrap(),
            vec![sent.clone()],
            "{name}"
        );
        // The challenge and its deliveries in one read: every delivery, in
        // device order, and a challenge without any, or none at all.
        let other_phone = PushDelivery {
            device_id: format!("{}~second", device.id),
            push_platform: PushPlatform::Apns,
            ..sent.clone()
        };
        store.save_delivery(&other_phone).await.unwrap();
        assert_eq!(
            store
                .challenge_with_deliveries(&verification.id)
                .await
                .unwrap(),
            Some((
                store
                    .get_challenge(&verification.id)
                    .await
                    .unwrap()
                    .unwrap(),
                vec![sent, other_phone]
            )),
            "{name}"
        );
        let quiet = challenge(
            &tenant,
            &verification.user_id,
            ChallengeKind::SignIn,
            NOW + 60_000,
        );
        create(store, &quiet).await;
        assert_eq!(
            store.challenge_with_deliveries(&quiet.id).await.unwrap(),
            Some((quiet.clone(), vec![])),
            "{name}"
        );
        assert_eq!(
            store
                .challenge_with_deliveries("no-such-challenge")
                .await
                .unwrap(),
            None,
            "{name}"
        );
        assert!(!store
            .invalidate_push_token(&device.id, "old-token", "Unregistered", NOW)
            .await
            .unwrap());
        assert!(store
            .invalidate_push_token(&device.id, "token-1", "Unregistered", NOW + 1)
            .await
            .unwrap());
        let forgotten = store.get_device(&device.id).await.unwrap().unwrap();
        assert_eq!(forgotten.push_token, "", "{name}");
        assert_eq!(
            forgotten.push_token_invalid,
            Some(PushTokenInvalid {
                since: NOW + 1,
                reason: "Unregistered".into()
            }),
            "{name}"
        );
        let (_, devices) = store
            .user_with_devices(&tenant.id, "hanako")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            devices,
            vec![forgotten],
            "{name}: the same through the join"
        );
        store
            .set_push_token(&device.id, PushPlatform::Apns, "token-2")
            .await
            .unwrap();
        let renewed = store.get_device(&device.id).await.unwrap().unwrap();
        assert_eq!(
            (renewed.push_token.as_str(), renewed.push_token_invalid),
            ("token-2", None),
            "{name}: a new token ends the invalid status"
        );
    }
}

#[tokio::test]
async fn devices_without_working_push_are_counted_per_tenant_platform_and_status() {
    for backend in backends("devices_without_working_push_are_counted").await {
        let store = &*backend.store;
        let name = backend.name;
        let tenant = tenant(store).await;
        let count = |status: &'static str, platform: PushPlatform, count: i64| UnreachableDevices {
            tenant_id: tenant.id.clone(),
            platform,
            status,
            count,
        };
        let reachable = enrolled_user(store, &tenant, "akira").await;
        let dead = enrolled_user(store, &tenant, "yuki").await;
        let pull_only = enrolled_user(store, &tenant, "sora").await;
        let revoked = enrolled_user(store, &tenant, "ren").await;
        assert!(store
            .invalidate_push_token(&dead.id, &dead.push_token, "UNREGISTERED", NOW)
            .await
            .unwrap());
        store
            .set_push_token(&pull_only.id, PushPlatform::None, "")
            .await
            .unwrap();
        assert!(store
            .invalidate_push_token(&revoked.id, &revoked.push_token, "UNREGISTERED", NOW)
            .await
            .unwrap());
        assert!(store.revoke_device(&revoked.id, NOW).await.unwrap());
        let mut counted: Vec<_> = store
            .count_unreachable_devices()
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.tenant_id == tenant.id)
            .collect();
        counted.sort_by_key(|c| c.status);
        assert_eq!(
            counted,
            vec![
                count("no_token", PushPlatform::None, 1),
                count("token_invalid", reachable.push_platform, 1),
            ],
            "{name}: revoked and reachable devices are not counted"
        );
    }
}

#[tokio::test]
async fn a_shared_provider_token_is_replaced_only_by_whoever_saw_the_current_one() {
    for backend in backends("a_shared_provider_token_is_replaced").await {
        let store = &*backend.store;
        let name = backend.name;
        let key = format!("apns:{}", id("key"));
        let token = |text: &str, issued_at: i64| ProviderToken {
            token: text.into(),
            issued_at,
        };
        assert_eq!(store.provider_token(&key).await.unwrap(), None, "{name}");
        assert!(store
            .replace_provider_token(&key, None, &token("first", 100))
            .await
            .unwrap());
        assert!(
            !store
                .replace_provider_token(&key, None, &token("rival", 101))
                .await
                .unwrap(),
            "{name}: a second first token loses"
        );
        assert!(
            !store
                .replace_provider_token(&key, Some("stale"), &token("rival", 102))
                .await
                .unwrap(),
            "{name}: replacing what is no longer shared loses"
        );
        assert!(store
            .replace_provider_token(&key, Some("first"), &token("second", 3100))
            .await
            .unwrap());
        assert_eq!(
            store.provider_token(&key).await.unwrap(),
            Some(token("second", 3100)),
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_device_keeps_its_key_algorithm_and_key() {
    for backend in backends("a_device_keeps_its_key_algorithm_and_key").await {
        let store = &*backend.store;
        let name = backend.name;
        let tenant = tenant(store).await;
        let enrollment = enrollment(&tenant, "kenji");
        store
            .create_enrollment(&enrollment, "k@example.jp", &unique_code_hash())
            .await
            .unwrap();
        let mut device = device(&tenant, "kenji", DeviceState::PendingVerification);
        device.key_algorithm = KeyAlgorithm::EcdsaP256Sha256;
        device.public_key = [&[4u8][..], &[9; 64]].concat();
        let mut verification = challenge(
            &tenant,
            "kenji",
            ChallengeKind::EnrollmentVerification,
            NOW + 60_000,
        );
        verification.target_device_id = Some(device.id.clone());
        assert!(store
            .register_device(&enrollment.id, &device, &verification, NOW)
            .await
            .unwrap());
        assert_eq!(
            store.get_device(&device.id).await.unwrap(),
            Some(device.clone()),
            "{name}"
        );
        let (_, devices) = store
            .user_with_devices(&tenant.id, "kenji")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(devices, vec![device], "{name}");
    }
}

#[tokio::test]
async fn a_user_comes_with_all_their_devices_oldest_first() {
    for backend in backends("a_user_comes_with_all_their_devices_oldest_first").await {
        let store = &*backend.store;
        let name = backend.name;
        let tenant = tenant(store).await;
        assert_eq!(
            store.user_with_devices(&tenant.id, "kenji").await.unwrap(),
            None,
            "{name}"
        );

        let first = enrolled_user(store, &tenant, "kenji").await;
        let second = enrolled_user(store, &tenant, "kenji").await;
        enrolled_user(store, &tenant, "someone-else").await;
        store
            .create_enrollment(&enrollment(&tenant, "mei"), "mei@example.jp", &[9; 32])
            .await
            .unwrap();
        assert!(store.revoke_device(&second.id, NOW + 2).await.unwrap());

        let (user, devices) = store
            .user_with_devices(&tenant.id, "kenji")
            .await
            .unwrap()
            .expect("kenji is enrolled");
        assert_eq!(
            Some(user),
            store.get_user(&tenant.id, "kenji").await.unwrap(),
            "{name}"
        );
        assert_eq!(
            devices,
            store.list_devices(&tenant.id, "kenji").await.unwrap(),
            "{name}: the same devices in the same order as list_devices"
        );
        let mut ids = vec![first.id.as_str(), second.id.as_str()];
        ids.sort();
        assert_eq!(
            devices.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
            ids,
            "{name}: both of kenji's devices (one revoked), oldest first, none of another user's"
        );
        let revoked = devices.iter().find(|d| d.id == second.id).unwrap();
        assert_eq!(revoked.revoked_at, Some(NOW + 2), "{name}");

        let (user, devices) = store
            .user_with_devices(&tenant.id, "mei")
            .await
            .unwrap()
            .expect("mei has an enrollment");
        assert_eq!(
            (user.email.as_str(), devices),
            ("mei@example.jp", vec![]),
            "{name}: a user without devices"
        );
    }
}

#[tokio::test]
async fn aggregated_audit_entries_count_their_occurrences_and_keep_the_first() {
    for backend in
        backends("aggregated_audit_entries_count_their_occurrences_and_keep_the_first").await
    {
        let store = &*backend.store;
        let name = backend.name;
        let tenant = tenant(store).await;
        let failure = |at: i64, address: &str| AuditEvent {
            tenant_id: Some(tenant.id.clone()),
            at,
            event_type: "device.bad_signature".into(),
            user_id: Some("kenji".into()),
            device_id: Some("d-1".into()),
            detail: "signature does not verify".into(),
            client_address: Some(address.into()),
            ..Default::default()
        };
        for n in 0..3 {
            store
                .count_audit(&failure(NOW + n, "198.51.100.1"), "minute-1|198.51.100.1")
                .await
                .unwrap();
        }
        store
            .count_audit(&failure(NOW + 5, "198.51.100.2"), "minute-1|198.51.100.2")
            .await
            .unwrap();
        // An entry of its own between them, and one with a count of one.
        store
            .append_audit(&AuditEvent {
                tenant_id: Some(tenant.id.clone()),
                at: NOW + 6,
                event_type: "challenge.created".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        store
            .count_audit(&failure(NOW + 7, "198.51.100.1"), "minute-1|198.51.100.1")
            .await
            .unwrap();

        let events = store.list_audit(&tenant.id, None, None, 10).await.unwrap();
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.event_type.as_str(),
                    e.client_address.as_deref(),
                    e.count,
                    e.at,
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("challenge.created", None, 1, NOW + 6),
                ("device.bad_signature", Some("198.51.100.2"), 1, NOW + 5),
                ("device.bad_signature", Some("198.51.100.1"), 4, NOW),
            ],
            "{name}: one entry per key, counted, with its first occurrence's fields"
        );
        let mut expected = failure(NOW, "198.51.100.1");
        expected.id = events[2].id;
        expected.count = 4;
        assert_eq!(events[2], expected, "{name}: an exact round trip");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_answers_end_a_challenge_once_and_never_after_its_deadline() {
    for backend in
        backends("racing_answers_end_a_challenge_once_and_never_after_its_deadline").await
    {
        let store = backend.store.clone();
        let tenant = tenant(&*store).await;
        let device = enrolled_user(&*store, &tenant, "u").await;
        for _ in 0..10 {
            let c = challenge(&tenant, "u", ChallengeKind::SignIn, NOW + 60_000);
            create(&*store, &c).await;
            let answer = |state, reason| Ending {
                deny_reason: reason,
                answered_by: Some(device.id.clone()),
                ..Ending::unanswered(state)
            };
            let approve = answer(ChallengeState::Approved, None);
            let deny = answer(ChallengeState::Denied, Some(DenyReason::UserDenied));
            let answers: Vec<_> = [approve, deny]
                .into_iter()
                .map(|ending| {
                    let (store, c) = (store.clone(), c.clone());
                    tokio::spawn(async move { store.end_challenge(&c, &ending, NOW + 2).await })
                })
                .collect();
            let mut winners = Vec::new();
            for answer in answers {
                if let Some(ended) = answer.await.unwrap().unwrap() {
                    winners.push(ended.challenge.state);
                }
            }
            assert_eq!(winners.len(), 1, "{}: {winners:?}", backend.name);
            let stored = store.get_challenge(&c.id).await.unwrap().unwrap();
            assert_eq!(stored.state, winners[0]);
            assert_eq!(stored.ended_at, Some(NOW + 2));
        }

        let late = challenge(&tenant, "u", ChallengeKind::SignIn, NOW + 10);
        create(&*store, &late).await;
        let approve = Ending::unanswered(ChallengeState::Approved);
        assert!(store
            .end_challenge(&late, &approve, NOW + 10)
            .await
            .unwrap()
            .is_none());
        let expire = Ending::unanswered(ChallengeState::Expired);
        assert!(store
            .end_challenge(&late, &expire, NOW + 9)
            .await
            .unwrap()
            .is_none());
        let expired = store.end_challenge(&late, &expire, NOW + 10).await.unwrap();
        assert_eq!(expired.unwrap().challenge.state, ChallengeState::Expired);
    }
}

#[tokio::test]
async fn a_new_challenge_supersedes_the_pending_sign_in() {
    for backend in backends("a_new_challenge_supersedes_the_pending_sign_in").await {
        let store = &*backend.store;
        let tenant = tenant(store).await;
        enrolled_user(store, &tenant, "u").await;
        let first = challenge(&tenant, "u", ChallengeKind::SignIn, NOW + 60_000);
        assert!(create(store, &first).await.is_empty());
        let second = challenge(&tenant, "u", ChallengeKind::SignIn, NOW + 60_000);
        let superseded = create(store, &second).await;
        assert_eq!(superseded.len(), 1, "{}", backend.name);
        assert_eq!(superseded[0].challenge.id, first.id);
        assert_eq!(superseded[0].challenge.state, ChallengeState::Superseded);
        assert_eq!(store.count_pending_challenges().await.unwrap(), 1);
    }
}

#[tokio::test]
async fn a_spent_quota_refuses_the_challenge_and_writes_nothing() {
    for backend in backends("a_spent_quota_refuses_the_challenge_and_writes_nothing").await {
        let store = &*backend.store;
        let tenant = tenant(store).await;
        enrolled_user(store, &tenant, "u").await;
        let quota = Quota {
            since: NOW,
            limit: 2,
        };
        // A challenge created before the window does not count.
        let mut old = challenge(&tenant, "u", ChallengeKind::SignIn, NOW + 60_000);
        old.created_at = NOW - 1;
        create(store, &old).await;
        let mut created = Vec::new();
        for _ in 0..2 {
            let c = challenge(&tenant, "u", ChallengeKind::SignIn, NOW + 60_000);
            let creation = store.create_challenge(&c, quota).await.unwrap();
            assert!(matches!(creation, Creation::Created(_)), "{}", backend.name);
            created.push(c.id);
        }
        let audit_before = store.list_audit(&tenant.id, None, None, 100).await.unwrap();
        let refused = challenge(&tenant, "u", ChallengeKind::SignIn, NOW + 60_000);
        let creation = store.create_challenge(&refused, quota).await.unwrap();
        assert!(matches!(creation, Creation::QuotaSpent), "{}", backend.name);
        assert!(store.get_challenge(&refused.id).await.unwrap().is_none());
        let last = store.get_challenge(&created[1]).await.unwrap().unwrap();
        assert_eq!(last.state, ChallengeState::Pending, "{}", backend.name);
        let audit_after = store.list_audit(&tenant.id, None, None, 100).await.unwrap();
        assert_eq!(audit_after.len(), audit_before.len(), "{}", backend.name);
        // Another user's quota is their own.
        enrolled_user(store, &tenant, "v").await;
        let other = challenge(&tenant, "v", ChallengeKind::SignIn, NOW + 60_000);
        let creation = store.create_challenge(&other, quota).await.unwrap();
        assert!(matches!(creation, Creation::Created(_)), "{}", backend.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_creations_never_overshoot_the_quota() {
    for backend in backends("racing_creations_never_overshoot_the_quota").await {
        let store = backend.store.clone();
        let tenant = tenant(&*store).await;
        enrolled_user(&*store, &tenant, "u").await;
        let quota = Quota {
            since: NOW,
            limit: 3,
        };
        let racers: Vec<_> = (0..16)
            .map(|_| {
                let store = store.clone();
                let c = challenge(&tenant, "u", ChallengeKind::SignIn, NOW + 60_000);
                tokio::spawn(async move { store.create_challenge(&c, quota).await })
            })
            .collect();
        let mut created = 0;
        for racer in racers {
            if let Creation::Created(_) = racer.await.unwrap().unwrap() {
                created += 1;
            }
        }
        assert_eq!(created, 3, "{}", backend.name);
        // Each creation superseded the one before: one is left pending.
        assert_eq!(store.count_pending_challenges().await.unwrap(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sweeps_expire_everything_due_exactly_once() {
    for backend in backends("concurrent_sweeps_expire_everything_due_exactly_once").await {
        let store = backend.store.clone();
        let tenant = tenant(&*store).await;
        let mut due = Vec::new();
        for n in 0..12 {
            let user = format!("user-{n}");
            enrolled_user(&*store, &tenant, &user).await;
            let c = challenge(&tenant, &user, ChallengeKind::SignIn, NOW + 100 + n);
            create(&*store, &c).await;
            due.push(c.id);
        }
        let open = enrollment(&tenant, "late");
        store
            .create_enrollment(&open, "late@example.jp", &[3; 32])
            .await
            .unwrap();
        let later = challenge(&tenant, "user-0", ChallengeKind::SignIn, NOW + 10_000_000);
        let superseded = create(&*store, &later).await;
        due.retain(|id| *id != superseded[0].challenge.id);
        assert_eq!(store.next_deadline().await.unwrap(), Some(NOW + 101));

        let sweeps: Vec<_> = (0..2)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move { store.sweep(NOW + 1_000_000, NOW).await })
            })
            .collect();
        let mut expired = Vec::new();
        let mut enrollments = Vec::new();
        for sweep in sweeps {
            let swept = sweep.await.unwrap().unwrap();
            expired.extend(swept.challenges.into_iter().map(|e| e.challenge.id));
            enrollments.extend(swept.enrollments.into_iter().map(|e| e.id));
        }
        expired.sort();
        due.sort();
        assert_eq!(
            expired, due,
            "{}: each due challenge expired once",
            backend.name
        );
        assert_eq!(enrollments, vec![open.id.clone()]);
        assert_eq!(store.next_deadline().await.unwrap(), Some(NOW + 10_000_000));
    }
}

#[tokio::test]
async fn nonces_are_used_once_and_counters_and_audit_page_the_same_way() {
    for backend in backends("nonces_are_used_once_and_counters_and_audit_page_the_same_way").await {
        let store = &*backend.store;
        assert!(store.use_nonce("d", &[1, 2, 3], NOW).await.unwrap());
        assert!(!store.use_nonce("d", &[1, 2, 3], NOW).await.unwrap());
        assert!(store.use_nonce("e", &[1, 2, 3], NOW).await.unwrap());

        for at in [NOW - 10, NOW, NOW + 10] {
            store
                .record_failure("activation", "203.0.113.7", at)
                .await
                .unwrap();
        }
        assert_eq!(
            store
                .count_failures("activation", "203.0.113.7", NOW)
                .await
                .unwrap(),
            2
        );
        store.sweep(NOW + 1, NOW).await.unwrap();
        assert_eq!(
            store
                .count_failures("activation", "203.0.113.7", 0)
                .await
                .unwrap(),
            2
        );
        // The spent nonce was purged, so the store no longer remembers it.
        assert!(store.use_nonce("d", &[1, 2, 3], NOW + 100).await.unwrap());

        let tenant = tenant(store).await;
        for n in 0..5 {
            store
                .append_audit(&AuditEvent {
                    tenant_id: Some(tenant.id.clone()),
                    at: NOW + n,
                    event_type: "challenge.created".into(),
                    user_id: Some(if n % 2 == 0 { "even" } else { "odd" }.into()),
                    detail: format!("event {n}"),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let first = store.list_audit(&tenant.id, None, None, 2).await.unwrap();
        let details: Vec<_> = first.iter().map(|e| e.detail.as_str()).collect();
        assert_eq!(details, ["event 4", "event 3"], "{}", backend.name);
        let rest = store
            .list_audit(&tenant.id, None, Some(first[1].id), 10)
            .await
            .unwrap();
        assert_eq!(rest.len(), 3);
        let even = store
            .list_audit(&tenant.id, Some("even"), None, 10)
            .await
            .unwrap();
        assert_eq!(even.len(), 3);
        assert_eq!(even[0].at, NOW + 4);
    }
}

#[tokio::test]
async fn the_audit_purge_deletes_the_old_entries_and_never_a_newer_one() {
    for backend in backends("the_audit_purge_deletes_the_old_entries_and_never_a_newer_one").await {
        let store = &*backend.store;
        let tenant = tenant(store).await;
        // Written in this order; the fourth was stamped earlier than the third
        // (a clock stepped back).
        for (n, at) in [NOW - 30, NOW - 20, NOW + 10, NOW - 10, NOW + 20]
            .iter()
            .enumerate()
        {
            store
                .append_audit(&AuditEvent {
                    tenant_id: Some(tenant.id.clone()),
                    at: *at,
                    event_type: "challenge.created".into(),
                    detail: format!("event {n}"),
                    ..Default::default()
                })
                .await
                .unwrap();
        }
        let details = || async {
            let events = store.list_audit(&tenant.id, None, None, 10).await.unwrap();
            events.into_iter().map(|e| e.detail).collect::<Vec<_>>()
        };

        assert_eq!(store.purge(0, NOW).await.unwrap(), 2, "{}", backend.name);
        // The entry stamped before the cutoff but written after a newer one
        // waits; nothing at or after the cutoff goes.
        assert_eq!(
            details().await,
            ["event 4", "event 3", "event 2"],
            "{}",
            backend.name
        );
        assert_eq!(
            store.purge(0, NOW + 15).await.unwrap(),
            2,
            "{}",
            backend.name
        );
        assert_eq!(details().await, ["event 4"], "{}", backend.name);
        assert_eq!(
            store.purge(0, NOW + 100).await.unwrap(),
            1,
            "{}",
            backend.name
        );
        assert!(details().await.is_empty(), "{}", backend.name);
        assert_eq!(
            store.purge(0, NOW + 100).await.unwrap(),
            0,
            "{}",
            backend.name
        );
    }
}

#[tokio::test]
async fn a_reset_revokes_devices_and_cancels_everything_open() {
    for backend in backends("a_reset_revokes_devices_and_cancels_everything_open").await {
        let store = &*backend.store;
        let tenant = tenant(store).await;
        let device = enrolled_user(store, &tenant, "u").await;
        let c = challenge(&tenant, "u", ChallengeKind::SignIn, NOW + 60_000);
        create(store, &c).await;
        let open = enrollment(&tenant, "u");
        store
            .create_enrollment(&open, "u@example.jp", &[4; 32])
            .await
            .unwrap();
        let reset = store.reset_user(&tenant.id, "u", NOW + 5).await.unwrap();
        assert_eq!(
            reset.revoked_devices,
            vec![device.id.clone()],
            "{}",
            backend.name
        );
        assert_eq!(reset.cancelled_challenges, vec![c.id.clone()]);
        assert_eq!(reset.cancelled_sign_ins, 1);
        assert_eq!(reset.cancelled_enrollments, vec![open.id.clone()]);
        let revoked = store.get_device(&device.id).await.unwrap().unwrap();
        assert_eq!(
            (revoked.state, revoked.revoked_at),
            (DeviceState::Revoked, Some(NOW + 5))
        );
        assert!(!store.revoke_device(&device.id, NOW + 6).await.unwrap());
    }
}

#[tokio::test]
async fn a_revoked_api_key_is_still_listed_but_no_longer_found() {
    for backend in backends("a_revoked_api_key_is_still_listed_but_no_longer_found").await {
        let store = &*backend.store;
        let name = backend.name;
        let tenant = tenant(store).await;
        let other = self::tenant(store).await;
        let key = |id: &str, role, created_at, revoked_at| ApiKeyRecord {
            id: id.to_owned(),
            tenant_id: tenant.id.clone(),
            role,
            created_at,
            revoked_at,
            last_used_at: None,
        };
        let (portal, admin) = (id("key"), id("key"));
        store
            .create_api_key(&portal, &tenant.id, Role::Portal, &[5; 32], NOW)
            .await
            .unwrap();
        store
            .create_api_key(&admin, &tenant.id, Role::Admin, &[6; 32], NOW + 1)
            .await
            .unwrap();
        store
            .create_api_key(&id("key"), &other.id, Role::Portal, &[7; 32], NOW)
            .await
            .unwrap();

        assert!(store.revoke_api_key(&portal, NOW + 5).await.unwrap());
        assert!(!store.revoke_api_key(&portal, NOW + 6).await.unwrap());
        assert!(!store.revoke_api_key("no-such-key", NOW).await.unwrap());
        assert_eq!(store.find_api_key(&[5; 32]).await.unwrap(), None, "{name}");
        assert_eq!(
            store.find_api_key(&[6; 32]).await.unwrap(),
            Some(key(&admin, Role::Admin, NOW + 1, None)),
            "{name}"
        );
        let revoked = key(&portal, Role::Portal, NOW, Some(NOW + 5));
        assert_eq!(
            store.get_api_key(&portal).await.unwrap(),
            Some(revoked.clone()),
            "{name}"
        );
        assert_eq!(store.get_api_key("no-such-key").await.unwrap(), None);
        assert_eq!(
            store.list_api_keys(Some(&tenant.id)).await.unwrap(),
            vec![revoked, key(&admin, Role::Admin, NOW + 1, None)],
            "{name}"
        );
    }
}

/// A key's last use is written only over an older one, so that a busy key
/// (or every replica noting the same use) costs at most one write a minute;
/// listing without a tenant shows every tenant's keys.
#[tokio::test]
async fn a_key_s_last_use_is_written_at_most_once_a_minute() {
    for backend in backends("a_key_s_last_use_is_written_at_most_once_a_minute").await {
        let store = &*backend.store;
        let name = backend.name;
        let tenant = tenant(store).await;
        let other = self::tenant(store).await;
        let (used, unused, others) = (id("key"), id("key"), id("key"));
        for (key, tenant, hash) in [
            (&used, &tenant, 8),
            (&unused, &tenant, 9),
            (&others, &other, 10),
        ] {
            store
                .create_api_key(key, &tenant.id, Role::Portal, &[hash; 32], NOW)
                .await
                .unwrap();
        }
        let minute = 60_000;
        let last_use = || async {
            store
                .get_api_key(&used)
                .await
                .unwrap()
                .unwrap()
                .last_used_at
        };
        assert!(store
            .record_api_key_use(&used, NOW, NOW - minute)
            .await
            .unwrap());
        assert!(
            !store
                .record_api_key_use(&used, NOW + 30_000, NOW + 30_000 - minute)
                .await
                .unwrap(),
            "{name}: a use recorded within the minute is kept"
        );
        assert_eq!(last_use().await, Some(NOW), "{name}");
        assert!(store
            .record_api_key_use(&used, NOW + minute + 1, NOW + 1)
            .await
            .unwrap());
        assert_eq!(last_use().await, Some(NOW + minute + 1), "{name}");
        assert_eq!(
            store
                .find_api_key(&[8; 32])
                .await
                .unwrap()
                .unwrap()
                .last_used_at,
            Some(NOW + minute + 1),
            "{name}: authentication reads the last use"
        );
        assert!(!store
            .record_api_key_use("no-such-key", NOW, NOW)
            .await
            .unwrap());

        let listed = |keys: Vec<ApiKeyRecord>| {
            keys.into_iter()
                .filter(|k| k.tenant_id == tenant.id || k.tenant_id == other.id)
                .map(|k| (k.id, k.last_used_at))
                .collect::<Vec<_>>()
        };
        let mut all = listed(store.list_api_keys(None).await.unwrap());
        all.sort();
        let mut expected = vec![
            (used.clone(), Some(NOW + minute + 1)),
            (unused.clone(), None),
            (others.clone(), None),
        ];
        expected.sort();
        assert_eq!(all, expected, "{name}: every tenant's keys");
        assert_eq!(
            listed(store.list_api_keys(Some(&other.id)).await.unwrap()),
            [(others.clone(), None)],
            "{name}"
        );
    }
}

/// The audit entries of a challenge's creation and end are part of the change
/// itself (the same transaction), on every backend: creating, superseding,
/// answering with a fraud report (which blocks the user) and expiring each
/// leave their entries without the caller appending any.
#[tokio::test]
async fn state_changes_carry_their_audit_entries() {
    for backend in backends("state_changes_carry_their_audit_entries").await {
        let store = &*backend.store;
        let name = backend.name;
        let tenant = tenant(store).await;
        let device = enrolled_user(store, &tenant, "aiko").await;
        let first = challenge(&tenant, "aiko", ChallengeKind::SignIn, NOW + 60_000);
        assert!(create(store, &first).await.is_empty());
        let second = challenge(&tenant, "aiko", ChallengeKind::SignIn, NOW + 60_000);
        assert_eq!(create(store, &second).await.len(), 1);
        let fraud = Ending {
            state: ChallengeState::Denied,
            deny_reason: Some(DenyReason::FraudReported),
            answered_by: Some(device.id.clone()),
            block_user_until: Some(NOW + 3_600_000),
            note: None,
        };
        store
            .end_challenge(&second, &fraud, NOW + 2)
            .await
            .unwrap()
            .expect("answered");
        let third = challenge(&tenant, "aiko", ChallengeKind::SignIn, NOW + 10);
        create(store, &third).await;
        assert_eq!(
            store.sweep(NOW + 11, NOW).await.unwrap().challenges.len(),
            1
        );

        let events = store
            .list_audit(&tenant.id, Some("aiko"), None, 100)
            .await
            .unwrap();
        let of = |challenge: &Challenge| -> Vec<(String, String)> {
            let mut found: Vec<_> = events
                .iter()
                .filter(|e| e.challenge_id.as_deref() == Some(&challenge.id))
                .map(|e| (e.event_type.clone(), e.detail.clone()))
                .collect();
            found.sort();
            found
        };
        let entry = |t: &str, d: &str| (t.to_owned(), d.to_owned());
        assert_eq!(
            of(&first),
            [
                entry("challenge.created", ""),
                entry(
                    "challenge.superseded",
                    &format!("superseded by {}", second.id)
                ),
            ],
            "{name}"
        );
        assert_eq!(
            of(&second),
            [
                entry("challenge.created", ""),
                entry("challenge.denied", "fraud_reported"),
                entry("user.blocked", "fraud reported"),
            ],
            "{name}"
        );
        assert_eq!(
            of(&third),
            [
                entry("challenge.created", ""),
                entry("challenge.expired", "")
            ],
            "{name}"
        );
    }
}

/// Tenants are listed oldest first; an update changes exactly the settings
/// it names (a lifetime back to the server's default too) and nothing of
/// another tenant; the counts are the tenant's own.
#[tokio::test]
async fn tenants_are_listed_updated_setting_by_setting_and_counted() {
    for backend in backends("tenants_are_listed_updated_setting_by_setting_and_counted").await {
        let store = &*backend.store;
        let name = backend.name;
        let older = tenant(store).await;
        let mut tenant = Tenant {
            id: id("tenant"),
            display_name: "Acme (External)".into(),
            number_digits: 2,
            created_at: NOW + 1,
            challenge_ttl: Some(Duration::from_millis(90_500)),
            enrollment_ttl: None,
            offline_codes_enabled: false,
            device_policy: DevicePolicy::default(),
        };
        store.create_tenant(&tenant).await.unwrap();
        assert_eq!(
            store.get_tenant(&tenant.id).await.unwrap().as_ref(),
            Some(&tenant),
            "{name}: lifetimes round-trip to the millisecond"
        );
        assert_eq!(
            store.list_tenants().await.unwrap(),
            vec![older.clone(), tenant.clone()],
            "{name}"
        );

        let digits = TenantChanges {
            number_digits: Some(4),
            ..Default::default()
        };
        tenant.number_digits = 4;
        assert_eq!(
            store.update_tenant(&tenant.id, &digits).await.unwrap(),
            Some(tenant.clone()),
            "{name}: only the digits change"
        );
        let lifetimes = TenantChanges {
            display_name: Some("Acme Ltd".into()),
            challenge_ttl: Some(None),
            enrollment_ttl: Some(Some(Duration::from_secs(3600))),
            ..Default::default()
        };
        tenant.display_name = "Acme Ltd".into();
        tenant.challenge_ttl = None;
        tenant.enrollment_ttl = Some(Duration::from_secs(3600));
        assert_eq!(
            store.update_tenant(&tenant.id, &lifetimes).await.unwrap(),
            Some(tenant.clone()),
            "{name}: a lifetime goes back to the default, another is set"
        );
        assert_eq!(
            store.get_tenant(&tenant.id).await.unwrap(),
            Some(tenant.clone()),
            "{name}"
        );
        let offline_codes = TenantChanges {
            offline_codes_enabled: Some(true),
            ..Default::default()
        };
        tenant.offline_codes_enabled = true;
        assert_eq!(
            store
                .update_tenant(&tenant.id, &offline_codes)
                .await
                .unwrap(),
            Some(tenant.clone()),
            "{name}: only offline codes change"
        );
        let policy = TenantChanges {
            allowed_key_algorithms: Some(Some([KeyAlgorithm::EcdsaP256Sha256].into())),
            user_verification: Some(Some(
                [UserVerification::Biometric, UserVerification::DevicePin].into(),
            )),
            ..Default::default()
        };
        tenant.device_policy = DevicePolicy {
            allowed_key_algorithms: Some([KeyAlgorithm::EcdsaP256Sha256].into()),
            user_verification: Some(
                [UserVerification::DevicePin, UserVerification::Biometric].into(),
            ),
        };
        assert_eq!(
            store.update_tenant(&tenant.id, &policy).await.unwrap(),
            Some(tenant.clone()),
            "{name}: only the device policy changes"
        );
        let relaxed = TenantChanges {
            allowed_key_algorithms: Some(None),
            ..Default::default()
        };
        tenant.device_policy.allowed_key_algorithms = None;
        assert_eq!(
            store.update_tenant(&tenant.id, &relaxed).await.unwrap(),
            Some(tenant.clone()),
            "{name}: every algorithm again, verification still required"
        );
        assert_eq!(
            store.get_tenant(&older.id).await.unwrap(),
            Some(older.clone()),
            "{name}: another tenant is untouched"
        );
        assert_eq!(
            store
                .update_tenant("no-such-tenant", &digits)
                .await
                .unwrap(),
            None,
            "{name}"
        );

        // Two users with a device each (one revoked), a pending sign-in, one
        // due already, and a user who only accepted the terms.
        let kept = enrolled_user(store, &tenant, "kenji").await;
        let revoked = enrolled_user(store, &tenant, "mei").await;
        assert!(store.revoke_device(&revoked.id, NOW + 2).await.unwrap());
        store
            .record_terms(&tenant.id, "aiko", "2026-04", NOW)
            .await
            .unwrap();
        create(
            store,
            &challenge(&tenant, "kenji", ChallengeKind::SignIn, NOW + 60_000),
        )
        .await;
        create(
            store,
            &challenge(&tenant, "mei", ChallengeKind::SignIn, NOW + 10),
        )
        .await;
        enrolled_user(store, &older, "someone-else").await;
        assert_eq!(
            store.tenant_counts(&tenant.id, NOW + 20).await.unwrap(),
            TenantCounts {
                users: 3,
                active_devices: 1,
                pending_challenges: 1,
            },
            "{name}: kenji's device {} counts, not mei's revoked one",
            kept.id
        );
        assert_eq!(
            store.tenant_counts("no-such-tenant", NOW).await.unwrap(),
            TenantCounts::default(),
            "{name}"
        );
    }
}

/// Deleting a user erases their record, devices (with their nonces),
/// challenges (with their push deliveries) and enrollments in one step,
/// cancelling what was open first; their audit events stay without anything
/// that points to them, and the deletion's own entry names no one. Another
/// user, and the same user id in another tenant, are untouched; deleting
/// again finds nothing and writes nothing.
#[tokio::test]
async fn deleting_a_user_erases_their_data_and_anonymises_their_audit_events() {
    for backend in
        backends("deleting_a_user_erases_their_data_and_anonymises_their_audit_events").await
    {
        let store = &*backend.store;
        let name = backend.name;
        let tenant = tenant(store).await;
        let other_tenant = self::tenant(store).await;

        // aiko: an active device and a revoked one, an ended and a pending
        // sign-in (with a push delivery), an open enrollment, a used nonce.
        let device = enrolled_user(store, &tenant, "aiko").await;
        let revoked = enrolled_user(store, &tenant, "aiko").await;
        assert!(store.revoke_device(&revoked.id, NOW + 2).await.unwrap());
        let denied = challenge(&tenant, "aiko", ChallengeKind::SignIn, NOW + 60_000);
        create(store, &denied).await;
        let deny = Ending {
            deny_reason: Some(DenyReason::UserDenied),
            answered_by: Some(device.id.clone()),
            ..Ending::unanswered(ChallengeState::Denied)
        };
        store
            .end_challenge(&denied, &deny, NOW + 3)
            .await
            .unwrap()
            .unwrap();
        let pending = challenge(&tenant, "aiko", ChallengeKind::SignIn, NOW + 60_000);
        create(store, &pending).await;
        store
            .save_delivery(&PushDelivery {
                challenge_id: pending.id.clone(),
                device_id: device.id.clone(),
                push_platform: PushPlatform::Fcm,
                state: DeliveryState::Sent,
                attempts: 1,
                provider_message_id: "projects/p/messages/7".into(),
                reason: String::new(),
                updated_at: NOW,
            })
            .await
            .unwrap();
        let open = enrollment(&tenant, "aiko");
        store
            .create_enrollment(&open, "aiko@example.jp", &unique_code_hash())
            .await
            .unwrap();
        assert!(store
            .use_nonce(&device.id, &[4; 16], NOW + 300_000)
            .await
            .unwrap());
        // Entries the domain writes: one with the device's name and the
        // phone's address, one naming only the device, an aggregated one.
        let registered = AuditEvent {
            tenant_id: Some(tenant.id.clone()),
            at: NOW,
            event_type: "enrollment.device_registered".into(),
            user_id: Some("aiko".into()),
            device_id: Some(device.id.clone()),
            detail: "device \"Aiko's Pixel\", push fcm".into(),
            client_address: Some("198.51.100.7".into()),
            ..Default::default()
        };
        store.append_audit(&registered).await.unwrap();
        store
            .append_audit(&AuditEvent {
                event_type: "device.push_token_invalid".into(),
                user_id: None,
                detail: "Unregistered".into(),
                client_address: None,
                ..registered.clone()
            })
            .await
            .unwrap();
        let failure = AuditEvent {
            event_type: "device.bad_signature".into(),
            detail: "signature does not verify".into(),
            ..registered.clone()
        };
        let key = format!("minute|aiko|{}|198.51.100.7", device.id);
        store.count_audit(&failure, &key).await.unwrap();

        // The same user id in another tenant, and another user.
        let namesake = enrolled_user(store, &other_tenant, "aiko").await;
        let namesakes_challenge =
            challenge(&other_tenant, "aiko", ChallengeKind::SignIn, NOW + 60_000);
        create(store, &namesakes_challenge).await;
        let kenji = enrolled_user(store, &tenant, "kenji").await;
        let kenjis_audit = store
            .list_audit(&tenant.id, Some("kenji"), None, 100)
            .await
            .unwrap();
        let namesakes_audit = store
            .list_audit(&other_tenant.id, Some("aiko"), None, 100)
            .await
            .unwrap();
        let aikos_entries = store
            .list_audit(&tenant.id, Some("aiko"), None, 100)
            .await
            .unwrap()
            .len();

        let deleted = store
            .delete_user(&tenant.id, "aiko", "admin key k-1", NOW + 10)
            .await
            .unwrap();
        assert_eq!(
            deleted,
            Deletion {
                found: true,
                devices: 2,
                // Two verifications, the denied and the pending sign-in.
                challenges: 4,
                // Two verified, one open.
                enrollments: 3,
                cancelled_challenges: vec![pending.id.clone()],
                cancelled_sign_ins: 1,
                cancelled_enrollments: vec![open.id.clone()],
                // Hers, and the one naming only her device.
                anonymised_audit_events: aikos_entries as u64 + 1,
            },
            "{name}"
        );

        assert_eq!(store.get_user(&tenant.id, "aiko").await.unwrap(), None);
        assert_eq!(
            store.user_with_devices(&tenant.id, "aiko").await.unwrap(),
            None,
            "{name}"
        );
        for id in [&device.id, &revoked.id] {
            assert_eq!(store.get_device(id).await.unwrap(), None, "{name}");
        }
        for id in [&denied.id, &pending.id] {
            assert_eq!(store.get_challenge(id).await.unwrap(), None, "{name}");
        }
        assert!(store.list_deliveries(&pending.id).await.unwrap().is_empty());
        assert_eq!(store.get_enrollment(&open.id).await.unwrap(), None);
        assert!(
            store
                .use_nonce(&device.id, &[4; 16], NOW + 300_000)
                .await
                .unwrap(),
            "{name}: the device's nonces are forgotten"
        );
        assert_eq!(store.count_pending_challenges().await.unwrap(), 1, "{name}");

        let events = store
            .list_audit(&tenant.id, None, None, 1000)
            .await
            .unwrap();
        let kenjis_device = Some(kenji.id.as_str());
        for event in &events {
            if event.user_id.as_deref() == Some("kenji")
                || event.device_id.as_deref() == kenjis_device
            {
                continue;
            }
            assert_eq!(
                (
                    &event.user_id,
                    &event.device_id,
                    &event.challenge_id,
                    &event.enrollment_id,
                    &event.client_address
                ),
                (&None, &None, &None, &None, &None),
                "{name}: {event:?}"
            );
            assert!(
                !event.detail.contains("aiko") && !event.detail.contains("Pixel"),
                "{name}: {event:?}"
            );
        }
        let kept = |event_type: &str| {
            events
                .iter()
                .filter(|e| e.event_type == event_type && e.user_id.is_none())
                .map(|e| e.detail.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            kept("challenge.denied"),
            ["user_denied"],
            "{name}: a deny reason stays"
        );
        assert_eq!(kept("enrollment.device_registered"), [""], "{name}");
        let aggregated = events
            .iter()
            .find(|e| e.event_type == "device.bad_signature")
            .expect("the aggregated entry stays");
        assert_eq!(aggregated.count, 1, "{name}");
        // Its key named her: a new failure with that key is an entry of its own.
        store.count_audit(&failure, &key).await.unwrap();
        let counted = store
            .list_audit(&tenant.id, None, None, 1000)
            .await
            .unwrap();
        let counts = |id: i64| counted.iter().find(|e| e.id == id).map(|e| e.count);
        assert_eq!(counts(aggregated.id), Some(1), "{name}");
        assert_eq!(counted.len(), events.len() + 1, "{name}");
        let deletion = &events[0];
        assert_eq!(
            (deletion.event_type.as_str(), &deletion.user_id, deletion.at),
            ("user.deleted", &None, NOW + 10),
            "{name}: the newest entry"
        );
        assert_eq!(
            deletion.detail,
            format!(
                "deleted 2 devices, 4 challenges (1 pending) and 3 enrollments (1 open); \
                 anonymised {} audit events; by admin key k-1",
                aikos_entries + 1
            ),
            "{name}"
        );

        // Nobody else lost anything.
        assert!(store
            .get_user(&other_tenant.id, "aiko")
            .await
            .unwrap()
            .is_some());
        assert!(store.get_device(&namesake.id).await.unwrap().is_some());
        assert_eq!(
            store
                .get_challenge(&namesakes_challenge.id)
                .await
                .unwrap()
                .map(|c| c.state),
            Some(ChallengeState::Pending),
            "{name}"
        );
        assert_eq!(
            store
                .list_audit(&other_tenant.id, Some("aiko"), None, 100)
                .await
                .unwrap(),
            namesakes_audit,
            "{name}"
        );
        assert!(store.get_device(&kenji.id).await.unwrap().is_some());
        assert_eq!(
            store
                .list_audit(&tenant.id, Some("kenji"), None, 100)
                .await
                .unwrap(),
            kenjis_audit,
            "{name}"
        );

        // Again: nothing to delete, nothing written.
        let before = store
            .list_audit(&tenant.id, None, None, 1000)
            .await
            .unwrap();
        assert_eq!(
            store
                .delete_user(&tenant.id, "aiko", "admin key k-1", NOW + 20)
                .await
                .unwrap(),
            Deletion::default(),
            "{name}"
        );
        assert_eq!(
            store
                .delete_user(&tenant.id, "nobody", "admin key k-1", NOW + 20)
                .await
                .unwrap(),
            Deletion::default(),
            "{name}"
        );
        assert_eq!(
            store
                .list_audit(&tenant.id, None, None, 1000)
                .await
                .unwrap(),
            before,
            "{name}"
        );
    }
}

/// Offline-code secrets come back as stored for the user's active devices
/// only (oldest first), a time step is accepted once and only after the
/// last one accepted, racing acceptances of one step have one winner, and
/// deleting the user deletes the secrets.
#[tokio::test]
async fn offline_steps_are_used_once_and_only_forward() {
    for backend in backends("offline_steps_are_used_once_and_only_forward").await {
        let store = &backend.store;
        let name = backend.name;
        let tenant = tenant(&**store).await;
        let first = enrolled_user(&**store, &tenant, "aiko").await;
        let second = enrolled_user(&**store, &tenant, "aiko").await;
        let revoked = enrolled_user(&**store, &tenant, "aiko").await;
        let other = enrolled_user(&**store, &tenant, "kenji").await;
        for (device, sealed) in [
            (&first, b"sealed-1".as_slice()),
            (&second, b"sealed-2"),
            (&revoked, b"sealed-3"),
            (&other, b"sealed-4"),
        ] {
            store.save_offline_secret(&device.id, sealed).await.unwrap();
        }
        assert!(
            matches!(
                store.save_offline_secret(&first.id, b"again").await,
                Err(StoreError::Duplicate(_))
            ),
            "{name}: a device has one secret"
        );
        assert!(store.revoke_device(&revoked.id, NOW + 2).await.unwrap());
        let secret = |device: &Device, sealed: &[u8], last_step| OfflineSecret {
            device_id: device.id.clone(),
            sealed: sealed.to_vec(),
            last_step,
        };
        // Both were made at NOW: oldest first, then by id.
        let in_order = |mut secrets: Vec<OfflineSecret>| {
            secrets.sort_by(|a, b| a.device_id.cmp(&b.device_id));
            secrets
        };
        assert_eq!(
            store.offline_secrets(&tenant.id, "aiko").await.unwrap(),
            in_order(vec![
                secret(&first, b"sealed-1", None),
                secret(&second, b"sealed-2", None)
            ]),
            "{name}: active devices only, oldest first"
        );

        assert!(store.use_offline_step(&first.id, 100).await.unwrap());
        assert!(
            !store.use_offline_step(&first.id, 100).await.unwrap(),
            "{name}"
        );
        assert!(
            !store.use_offline_step(&first.id, 99).await.unwrap(),
            "{name}"
        );
        assert!(
            store.use_offline_step(&second.id, 100).await.unwrap(),
            "{name}: per device"
        );
        assert!(
            store.use_offline_step(&first.id, 101).await.unwrap(),
            "{name}"
        );
        assert!(!store.use_offline_step("no-such-device", 1).await.unwrap());
        assert_eq!(
            store.offline_secrets(&tenant.id, "aiko").await.unwrap(),
            in_order(vec![
                secret(&first, b"sealed-1", Some(101)),
                secret(&second, b"sealed-2", Some(100))
            ]),
            "{name}"
        );

        // Racing acceptances of the same step: exactly one wins.
        let races = (0..8).map(|_| {
            let store = store.clone();
            let id = other.id.clone();
            tokio::spawn(async move { store.use_offline_step(&id, 500).await.unwrap() })
        });
        let mut winners = 0;
        for race in races {
            winners += u32::from(race.await.unwrap());
        }
        assert_eq!(winners, 1, "{name}");

        let aiko = format!("{}/aiko", tenant.id);
        let kenji = format!("{}/kenji", tenant.id);
        for key in [&aiko, &kenji] {
            store
                .record_failure("offline_code.user", key, NOW)
                .await
                .unwrap();
        }
        store
            .delete_user(&tenant.id, "aiko", "test", NOW + 3)
            .await
            .unwrap();
        assert_eq!(store.offline_secrets(&tenant.id, "aiko").await.unwrap(), []);
        let failures = |key| store.count_failures("offline_code.user", key, 0);
        assert_eq!(
            failures(&aiko).await.unwrap(),
            0,
            "{name}: nothing names her"
        );
        assert_eq!(failures(&kenji).await.unwrap(), 1, "{name}");
        assert!(
            !store.use_offline_step(&first.id, 200).await.unwrap(),
            "{name}"
        );
        assert_eq!(
            store
                .offline_secrets(&tenant.id, "kenji")
                .await
                .unwrap()
                .len(),
            1,
            "{name}: nobody else's"
        );
    }
}

fn oidc_client(tenant: &Tenant, secret: Option<[u8; 32]>) -> OidcClient {
    OidcClient {
        client_id: id("client"),
        tenant_id: tenant.id.clone(),
        display_name: "Example RP".into(),
        secret_hash: secret,
        redirect_uris: vec![
            "https://rp.example.com/cb".into(),
            "http://127.0.0.1:8080/cb".into(),
        ],
        entra: None,
        created_at: NOW,
    }
}

fn authorization(client: &OidcClient, user: &str) -> Authorization {
    Authorization {
        id: id("authorization"),
        tenant_id: client.tenant_id.clone(),
        client_id: client.client_id.clone(),
        user_id: user.into(),
        email: format!("{user}@example.com"),
        pushed: true,
        response_type: ResponseType::Code,
        subject: None,
        acr: None,
        hint_hash: None,
        redirect_uri: client.redirect_uris[0].clone(),
        state: Some("state-1".into()),
        nonce: Some("nonce-1".into()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        challenge_id: None,
        enrollment_id: None,
        created_at: NOW,
        expires_at: NOW + 900_000,
        finished_at: None,
        auth_time: None,
        code_expires_at: None,
        code_used_at: None,
    }
}

#[tokio::test]
async fn oidc_clients_and_authorizations_come_back_and_end_one_way_once() {
    for backend in backends("oidc_clients_and_authorizations_come_back_and_end_one_way_once").await
    {
        let store = backend.store.clone();
        let tenant = tenant(&*store).await;
        let confidential = oidc_client(&tenant, Some(unique_code_hash()));
        let public = OidcClient {
            created_at: NOW + 1,
            entra: Some(EntraTenant {
                tenant_id: "tid-1".into(),
                app_id: "app-1".into(),
                issuer: "https://login.microsoftonline.com/tid-1/v2.0".into(),
                jwks: "/etc/mfa/entra.json".into(),
            }),
            ..oidc_client(&tenant, None)
        };
        store.create_oidc_client(&confidential).await.unwrap();
        store.create_oidc_client(&public).await.unwrap();
        assert!(matches!(
            store.create_oidc_client(&confidential).await,
            Err(StoreError::Duplicate(_))
        ));
        assert_eq!(
            store.get_oidc_client(&public.client_id).await.unwrap(),
            Some(public.clone()),
            "{}",
            backend.name
        );
        assert_eq!(
            store.list_oidc_clients(&tenant.id).await.unwrap(),
            [confidential.clone(), public.clone()]
        );
        assert!(store.get_oidc_client("nobody").await.unwrap().is_none());

        let a = authorization(&confidential, "u");
        store.create_authorization(&a).await.unwrap();
        assert_eq!(
            store.get_authorization(&a.id).await.unwrap(),
            Some(a.clone())
        );
        assert!(store
            .set_authorization_step(&a.id, Some("c-1"), None)
            .await
            .unwrap());
        let waiting = store.get_authorization(&a.id).await.unwrap().unwrap();
        assert_eq!(waiting.challenge_id.as_deref(), Some("c-1"));

        // Finished once: a code, and then neither another code nor an error.
        let hashes = [unique_code_hash(), unique_code_hash()];
        let finished: Vec<_> = [Some(hashes[0]), Some(hashes[1]), None]
            .into_iter()
            .map(|code| {
                let (store, id) = (store.clone(), a.id.clone());
                tokio::spawn(async move {
                    let code = code.map(|h| (h, NOW + 60_000));
                    store
                        .finish_authorization(
                            &id,
                            code.as_ref().map(|(h, e)| (h, *e)),
                            Some(NOW + 5),
                            NOW + 6,
                        )
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut wins = 0;
        for finishing in finished {
            wins += usize::from(finishing.await.unwrap());
        }
        assert_eq!(wins, 1, "{}", backend.name);
        assert!(!store
            .set_authorization_step(&a.id, None, None)
            .await
            .unwrap());

        // Whichever won: if it was a code, exactly one redemption of either
        // code succeeds.
        let stored = store.get_authorization(&a.id).await.unwrap().unwrap();
        assert_eq!(stored.finished_at, Some(NOW + 6));
        if stored.code_expires_at.is_some() {
            let redeems: Vec<_> = (0..6)
                .map(|i| {
                    let (store, hash) = (store.clone(), hashes[i % 2]);
                    tokio::spawn(async move { store.redeem_code(&hash, NOW + 7).await.unwrap() })
                })
                .collect();
            let mut redeemed = Vec::new();
            for redeem in redeems {
                redeemed.extend(redeem.await.unwrap());
            }
            assert_eq!(redeemed.len(), 1, "{}", backend.name);
            assert_eq!(redeemed[0].code_used_at, Some(NOW + 7));
            assert_eq!(redeemed[0].auth_time, Some(NOW + 5));
        }
        assert!(store
            .redeem_code(&unique_code_hash(), NOW)
            .await
            .unwrap()
            .is_none());

        // An Entra hint is used once; its subject comes back.
        let hinted = Authorization {
            response_type: ResponseType::IdToken,
            subject: Some(HintSubject {
                sub: "s".into(),
                oid: "o".into(),
                tid: "t".into(),
            }),
            hint_hash: Some(unique_code_hash()),
            acr: Some("possessionorinherence".into()),
            ..authorization(&public, "v")
        };
        store.create_authorization(&hinted).await.unwrap();
        assert_eq!(
            store.get_authorization(&hinted.id).await.unwrap(),
            Some(hinted.clone())
        );
        let replayed = Authorization {
            id: id("authorization"),
            ..hinted.clone()
        };
        assert!(matches!(
            store.create_authorization(&replayed).await,
            Err(StoreError::Duplicate(_))
        ));

        // Swept once long expired (their record is the audit log's).
        let short = Authorization {
            expires_at: NOW + 100,
            ..authorization(&confidential, "w")
        };
        store.create_authorization(&short).await.unwrap();
        store.sweep(NOW + 150, NOW + 100).await.unwrap();
        assert!(store.get_authorization(&short.id).await.unwrap().is_some());
        store.sweep(NOW + 150, NOW + 101).await.unwrap();
        assert!(store.get_authorization(&short.id).await.unwrap().is_none());
        assert!(store.get_authorization(&a.id).await.unwrap().is_some());

        // A deleted user's authorizations go with them.
        let other = hinted;
        store.record_terms(&tenant.id, "v", "1", NOW).await.unwrap();
        store
            .delete_user(&tenant.id, "v", "test", NOW)
            .await
            .unwrap();
        assert!(store.get_authorization(&other.id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn signing_keys_are_added_once_per_rotation_and_forgotten_when_long_replaced() {
    for backend in
        backends("signing_keys_are_added_once_per_rotation_and_forgotten_when_long_replaced").await
    {
        let store = backend.store.clone();
        let key = |kid: &str, created_at, signs_from| SigningKey {
            kid: kid.into(),
            private_key: vec![1, 2, 3, kid.len() as u8],
            certificate: vec![4, 5, 6],
            created_at,
            signs_from,
        };
        // Two replicas find no key at once: one key is added.
        let first: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|kid| {
                let (store, key) = (store.clone(), key(kid, NOW, NOW));
                tokio::spawn(async move { store.add_signing_key(&key, i64::MIN).await.unwrap() })
            })
            .collect();
        let mut added = 0;
        for adding in first {
            added += usize::from(adding.await.unwrap());
        }
        let keys = store.signing_keys().await.unwrap();
        // PostgreSQL's READ COMMITTED may let both in; both are then
        // published and the replicas agree on the signer by their order.
        assert!(
            added >= 1 && keys.len() == added,
            "{}: {keys:?}",
            backend.name
        );
        let first_kid = keys[0].kid.clone();

        // The next one, published ahead, unless another replica added it.
        let next = key("c", NOW + 100, NOW + 1_000);
        assert!(store.add_signing_key(&next, NOW + 1).await.unwrap());
        assert!(!store
            .add_signing_key(&key("d", NOW + 101, NOW + 1_000), NOW + 1)
            .await
            .unwrap());
        let keys = store.signing_keys().await.unwrap();
        assert_eq!(keys.last(), Some(&next), "{}", backend.name);

        // Replaced at NOW + 1000: kept until then, forgotten after.
        assert_eq!(store.forget_signing_keys(NOW + 1_000).await.unwrap(), 0);
        assert!(store.forget_signing_keys(NOW + 1_001).await.unwrap() >= 1);
        let kids: Vec<_> = store
            .signing_keys()
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert_eq!(kids, ["c"], "{}", backend.name);
        assert_ne!(first_kid, "c");
    }
}
