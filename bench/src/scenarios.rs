//! What the bench does, as a portal and as phones would, through the SDK.

use crate::load::{Steps, Worker};
use mfa_sdk::{
    portal::RelyingParty, proto, Authenticator, ChallengeState, DeviceInfo, EnrollmentUri,
    MemoryKeyStore, PushPlatform, SignInContext, VerifiedChallenge,
};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Instant,
};
use tonic::transport::Channel;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

fn context() -> SignInContext {
    SignInContext {
        application_name: "Customer portal".into(),
        client_ip: "203.0.113.7".into(),
        location: "Tokyo, JP".into(),
        message: String::new(),
    }
}

fn failed(what: &str) -> impl Fn(mfa_sdk::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// A user with an enrolled phone.
pub struct User {
    pub id: String,
    pub phone: Authenticator,
}

/// Enrolls phones: begin (portal) → register (phone) → the number (portal's
/// watch) → verify (phone), as a person enrolling does. Keeps the users.
pub struct Enroll {
    pub portal: RelyingParty,
    pub channel: Channel,
    pub prefix: String,
    pub next: u64,
    pub users: Vec<User>,
    /// Phones with push tokens (iPhones and Android phones in turn), or
    /// pull-only ones.
    pub push: bool,
}

impl Enroll {
    /// The phone of the `n`-th user.
    fn device(&self, n: u64) -> DeviceInfo {
        let (push_platform, push_token) = match (self.push, n % 2) {
            (false, _) => (PushPlatform::None, String::new()),
            (true, 0) => (PushPlatform::Apns, format!("{:064x}", n + 1)),
            (true, _) => (PushPlatform::Fcm, format!("fcm-{}-{n}", self.prefix)),
        };
        DeviceInfo {
            name: "bench phone".into(),
            push_platform,
            push_token,
        }
    }
}

impl Worker for Enroll {
    async fn step(&mut self, steps: &mut Steps) -> Result<bool, String> {
        let start = Instant::now();
        let user_id = format!("{}-{}", self.prefix, self.next);
        self.next += 1;
        let email = format!("{user_id}@example.com");
        let begun = steps
            .time("begin", self.portal.begin_enrollment(&user_id, &email))
            .await
            .map_err(failed("begin enrollment"))?;
        let uri = EnrollmentUri::parse(&begun.qr_uri).map_err(|e| e.to_string())?;
        let info = self.device(self.next - 1);
        let store = MemoryKeyStore::new();
        let (mut phone, verification) = steps
            .time(
                "register",
                Authenticator::enroll_over(self.channel.clone(), &uri, info, &store),
            )
            .await
            .map_err(failed("register"))?;
        let number = steps
            .time("number", async {
                let mut watch = self.portal.watch_enrollment(&begun.enrollment_id).await?;
                let first = watch.message().await?;
                Ok::<_, mfa_sdk::Error>(
                    first
                        .and_then(|m| m.enrollment)
                        .map(|e| e.verification_number),
                )
            })
            .await
            .map_err(failed("watch enrollment"))?
            .ok_or("the enrollment watch ended early")?;
        let answer = steps
            .time("verify", phone.approve(&verification, &number))
            .await
            .map_err(failed("verify"))?;
        if answer.state != ChallengeState::Approved {
            return Err(format!("verification ended {:?}", answer.state));
        }
        steps.record("enrollment", start.elapsed());
        self.users.push(User { id: user_id, phone });
        Ok(true)
    }
}

/// Items taken in turn, round and round. Sign-ins come from many people,
/// each a few times within the rate-limit window, so a worker signs its users
/// in one after the other rather than one user thousands of times (the
/// rate-limit count reads every sign-in of the user within the window).
pub struct Turns<T> {
    items: Vec<T>,
    next: usize,
}

impl<T> Turns<T> {
    /// Turns over `items`, which must not be empty.
    pub fn new(items: Vec<T>) -> Self {
        assert!(!items.is_empty(), "nothing to take turns with");
        Self { items, next: 0 }
    }

    /// The item whose turn it is.
    pub fn take(&mut self) -> &mut T {
        let turn = self.next;
        self.next = (turn + 1) % self.items.len();
        &mut self.items[turn]
    }

    /// The items, in the order given.
    pub fn items(&self) -> &[T] {
        &self.items
    }

    /// Gives the items back.
    pub fn into_items(self) -> Vec<T> {
        self.items
    }
}

/// The whole sign-in: create (portal) → list pending (phone) → approve with
/// the typed number (phone) → get sees APPROVED (portal), for each user in
/// turn.
pub struct FullCycle {
    pub portal: RelyingParty,
    pub users: Turns<User>,
}

impl Worker for FullCycle {
    async fn step(&mut self, steps: &mut Steps) -> Result<bool, String> {
        let start = Instant::now();
        let user = self.users.take();
        let challenge = steps
            .time("create", self.portal.start_sign_in(&user.id, context()))
            .await
            .map_err(failed("create"))?;
        let pending = steps
            .time("list", user.phone.pending_challenges())
            .await
            .map_err(failed("list"))?;
        let shown = pending
            .iter()
            .find(|p| p.challenge_id == challenge.challenge_id)
            .ok_or("the phone does not see the challenge")?;
        steps
            .time("respond", user.phone.approve(shown, &challenge.number))
            .await
            .map_err(failed("respond"))?;
        let seen = steps
            .time("get", self.portal.get_challenge(&challenge.challenge_id))
            .await
            .map_err(failed("get"))?;
        if seen.state() != proto::ChallengeState::Approved {
            return Err(format!("the portal sees {:?}", seen.state()));
        }
        steps.record("cycle", start.elapsed());
        Ok(true)
    }
}

/// When each challenge was created, by id, for timing what follows it
/// elsewhere (the push provider's receipt).
pub type Created = Arc<Mutex<HashMap<String, Instant>>>;

/// The sign-in as a portal that follows the outcome live: create → watch
/// (on `watching`: another replica where there is one) → the phone lists and
/// approves → the watch sees APPROVED. One worker per user with a push token,
/// so the push goes out as well.
pub struct WatchedCycle {
    pub creating: RelyingParty,
    pub watching: RelyingParty,
    pub user: User,
    pub created: Created,
}

impl Worker for WatchedCycle {
    async fn step(&mut self, steps: &mut Steps) -> Result<bool, String> {
        let start = Instant::now();
        let challenge = steps
            .time(
                "create",
                self.creating.start_sign_in(&self.user.id, context()),
            )
            .await
            .map_err(failed("create"))?;
        self.created
            .lock()
            .expect("not poisoned")
            .insert(challenge.challenge_id.clone(), start);
        let mut watch = steps
            .time(
                "watch",
                self.watching.watch_challenge(&challenge.challenge_id),
            )
            .await
            .map_err(failed("watch"))?;
        let pending = steps
            .time("list", self.user.phone.pending_challenges())
            .await
            .map_err(failed("list"))?;
        let shown = pending
            .iter()
            .find(|p| p.challenge_id == challenge.challenge_id)
            .ok_or("the phone does not see the challenge")?;
        let approving = Instant::now();
        steps
            .time("respond", self.user.phone.approve(shown, &challenge.number))
            .await
            .map_err(failed("respond"))?;
        loop {
            let seen = watch
                .message()
                .await
                .map_err(|e| format!("watch: {e}"))?
                .and_then(|m| m.challenge)
                .ok_or("the watch ended before the approval")?;
            match seen.state() {
                proto::ChallengeState::Approved => break,
                proto::ChallengeState::Pending => continue,
                other => return Err(format!("the watch sees {other:?}")),
            }
        }
        steps.record("approve→watch", approving.elapsed());
        steps.record("cycle", start.elapsed());
        Ok(true)
    }
}

/// Challenge creation alone, for each user in turn (each supersedes the
/// user's previous one).
pub struct Create {
    pub portal: RelyingParty,
    pub user_ids: Turns<String>,
}

impl Worker for Create {
    async fn step(&mut self, steps: &mut Steps) -> Result<bool, String> {
        let user_id = self.user_ids.take();
        steps
            .time("create", self.portal.start_sign_in(user_id, context()))
            .await
            .map_err(failed("create"))?;
        Ok(true)
    }
}

/// The device's answer alone, to challenges created and listed beforehand.
pub struct Answer {
    pub ready: Vec<(User, VerifiedChallenge, String)>,
    pub done: Vec<User>,
}

impl Answer {
    /// Creates and lists one challenge for each of `users` (not timed).
    pub async fn prepare(portal: &RelyingParty, users: Vec<User>) -> Result<Self, String> {
        let mut ready = Vec::with_capacity(users.len());
        for mut user in users {
            let challenge = portal
                .start_sign_in(&user.id, context())
                .await
                .map_err(failed("create"))?;
            let shown = user
                .phone
                .pending_challenges()
                .await
                .map_err(failed("list"))?
                .into_iter()
                .find(|p| p.challenge_id == challenge.challenge_id)
                .ok_or("the phone does not see the challenge")?;
            ready.push((user, shown, challenge.number));
        }
        Ok(Self {
            ready,
            done: Vec::new(),
        })
    }
}

impl Worker for Answer {
    async fn step(&mut self, steps: &mut Steps) -> Result<bool, String> {
        let Some((mut user, shown, number)) = self.ready.pop() else {
            return Ok(false);
        };
        let answer = steps
            .time("respond", user.phone.approve(&shown, &number))
            .await
            .map_err(failed("respond"))?;
        if answer.state != ChallengeState::Approved {
            return Err(format!("answer ended {:?}", answer.state));
        }
        self.done.push(user);
        Ok(true)
    }
}

/// The transport's ceiling: a health check, the cheapest call there is.
pub struct Ceiling {
    pub health: HealthClient<Channel>,
}

impl Worker for Ceiling {
    async fn step(&mut self, steps: &mut Steps) -> Result<bool, String> {
        steps
            .time("health", self.health.check(HealthCheckRequest::default()))
            .await
            .map_err(|e| format!("health: {e}"))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::Turns;

    #[test]
    fn turns_go_round_every_item_in_order() {
        let mut turns = Turns::new(vec!['a', 'b', 'c']);
        let taken: String = (0..7).map(|_| *turns.take()).collect();
        assert_eq!(taken, "abcabca");
        *turns.take() = 'B';
        assert_eq!(turns.into_items(), ['a', 'B', 'c']);
    }
}
