//! The routes. A session moves through the [`Step`]s: password, then either
//! the app's setup (first time) or a sign-in number (or, once the push
//! timed out, an offline code from the app), then the terms of use
//! (until the current version is accepted), then signed in. Every step that
//! matters is checked with the MFA service through the SDK's
//! [`RelyingParty`], never taken from the browser's word.

use std::{convert::Infallible, net::SocketAddr, pin::Pin, sync::Arc};

use axum::{
    extract::{ConnectInfo, State},
    http::{
        header::{CACHE_CONTROL, CONTENT_TYPE, SET_COOKIE},
        HeaderMap, StatusCode,
    },
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Redirect, Response,
    },
    routing::{get, post},
    Form, Router,
};
use mfa_sdk::{
    portal::{has_active_device, RelyingParty},
    proto::{Challenge, Enrollment, EnrollmentState},
    ChallengeState, DenyReason, SignInContext,
};
use serde::{Deserialize, Serialize};
use tokio_stream::{Stream, StreamExt};

use crate::{
    i18n::{Lang, Texts},
    pages::Page,
    session::{Session, Sessions, Step},
    users::{self, DemoUser},
};

/// The terms-of-use version a user must have accepted to be signed in.
pub const TERMS_VERSION: &str = "2026-01";

/// The application name the phone shows with each sign-in request.
const APPLICATION_NAME: &str = "Demo portal";

/// The place the phone shows. A real portal looks the client's address up
/// in its GeoIP database; the demo, on loopback, names a fixed one.
const DEMO_LOCATION: &str = "Tokyo, Japan";

/// The portal's shared state.
pub struct Portal {
    rp: RelyingParty,
    sessions: Sessions,
}

type Shared = State<Arc<Portal>>;

/// The portal's routes.
pub fn router(rp: RelyingParty) -> Router {
    let portal = Portal {
        rp,
        sessions: Sessions::default(),
    };
    Router::new()
        .route("/", get(home))
        .route("/sign-in", post(sign_in))
        .route("/enroll", get(enroll_page))
        .route("/enroll/qr.svg", get(enroll_qr))
        .route("/enroll/events", get(enroll_events))
        .route("/enroll/done", get(enroll_done))
        .route("/enroll/restart", post(enroll_restart))
        .route("/approve", get(approve_page))
        .route("/approve/events", get(approve_events))
        .route("/approve/done", get(approve_done))
        .route("/approve/retry", post(approve_retry))
        .route("/approve/code", get(code_page).post(verify_code))
        .route("/terms", get(terms_page).post(accept_terms))
        .route("/welcome", get(welcome))
        .route("/sign-out", post(sign_out))
        .with_state(Arc::new(portal))
}

/// The page of a step.
fn step_path(step: &Step) -> &'static str {
    match step {
        Step::Enrolling { .. } => "/enroll",
        Step::Approving { .. } => "/approve",
        Step::Terms => "/terms",
        Step::SignedIn => "/welcome",
    }
}

fn go(path: &str) -> Response {
    Redirect::to(path).into_response()
}

/// The sign-in page, or the page of the session's step.
async fn home(State(portal): Shared, headers: HeaderMap) -> Response {
    match portal.sessions.get(&headers) {
        Some(session) => go(step_path(&session.step)),
        None => Page::new(Lang::from_headers(&headers))
            .sign_in(None)
            .into_response(),
    }
}

#[derive(Deserialize)]
struct SignInForm {
    email: String,
    password: String,
}

/// Checks the password, then starts the second factor: the app's setup for
/// a user without an active device, a sign-in number otherwise.
async fn sign_in(
    State(portal): Shared,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let Some(user) = users::check_password(&form.email, &form.password) else {
        let page = Page::new(lang).sign_in(Some(lang.texts().bad_password));
        return (StatusCode::UNAUTHORIZED, page).into_response();
    };
    match portal.second_factor(user, client).await {
        Ok(step) => {
            let path = step_path(&step);
            let cookie = portal.sessions.create(Session { user, step });
            ([(SET_COOKIE, cookie)], go(path)).into_response()
        }
        Err(refusal) => refusal.page(lang),
    }
}

/// Why the portal could not go on with a sign-in.
enum Refusal {
    Blocked,
    RateLimited,
    Unavailable,
}

impl Refusal {
    fn from_error(error: &mfa_sdk::Error) -> Self {
        if error.is_user_blocked() {
            Self::Blocked
        } else if error.is_rate_limited() {
            Self::RateLimited
        } else {
            // The SDK's errors carry no secrets; the log needs the cause.
            eprintln!("demo-portal: the MFA service call failed: {error}");
            Self::Unavailable
        }
    }

    /// The sign-in page with the reason.
    fn page(&self, lang: Lang) -> Response {
        let t = lang.texts();
        let (status, text) = match self {
            Self::Blocked => (StatusCode::FORBIDDEN, t.blocked),
            Self::RateLimited => (StatusCode::TOO_MANY_REQUESTS, t.rate_limited),
            Self::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, t.service_error),
        };
        let clear = [(SET_COOKIE, Sessions::clearing_cookie())];
        (status, clear, Page::new(lang).sign_in(Some(text))).into_response()
    }
}

impl Portal {
    /// The first second-factor step for a user who gave the right password.
    async fn second_factor(&self, user: &DemoUser, client: SocketAddr) -> Result<Step, Refusal> {
        let status = self
            .rp
            .user_status(user.id)
            .await
            .map_err(|e| Refusal::from_error(&e))?;
        if status.blocked {
            return Err(Refusal::Blocked);
        }
        if has_active_device(&status) {
            self.new_challenge(user, client).await
        } else {
            self.new_enrollment(user).await
        }
    }

    async fn new_enrollment(&self, user: &DemoUser) -> Result<Step, Refusal> {
        let begun = self
            .rp
            .begin_enrollment(user.id, user.email)
            .await
            .map_err(|e| Refusal::from_error(&e))?;
        Ok(Step::Enrolling {
            enrollment_id: begun.enrollment_id,
            qr_uri: begun.qr_uri,
            manual_code: begun.manual_code,
            server_url: begun.server_url,
        })
    }

    async fn new_challenge(&self, user: &DemoUser, client: SocketAddr) -> Result<Step, Refusal> {
        let context = SignInContext {
            application_name: APPLICATION_NAME.to_owned(),
            client_ip: client.ip().to_string(),
            location: DEMO_LOCATION.to_owned(),
            message: String::new(),
        };
        match self.rp.start_sign_in(user.id, context).await {
            Ok(challenge) => Ok(Step::Approving {
                challenge_id: challenge.challenge_id,
                number: challenge.number,
            }),
            // The app was removed meanwhile (e.g. an admin reset): set up again.
            Err(e) if e.is_no_active_device() => self.new_enrollment(user).await,
            Err(e) => Err(Refusal::from_error(&e)),
        }
    }

    /// After the second factor: the terms of use if the current version is
    /// not accepted yet, else signed in.
    async fn after_second_factor(&self, headers: &HeaderMap, user: &DemoUser) -> Response {
        let next = match self.rp.user_status(user.id).await {
            Ok(status) if status.accepted_terms_version == TERMS_VERSION => Step::SignedIn,
            Ok(_) => Step::Terms,
            Err(e) => return Refusal::from_error(&e).page(Lang::from_headers(headers)),
        };
        let path = step_path(&next);
        self.sessions.set_step(headers, next);
        go(path)
    }
}

async fn enroll_page(State(portal): Shared, headers: HeaderMap) -> Response {
    match portal.sessions.get(&headers).map(|s| s.step) {
        Some(Step::Enrolling {
            enrollment_id,
            manual_code,
            server_url,
            ..
        }) => Page::new(Lang::from_headers(&headers))
            .enroll(&enrollment_id, &manual_code, &server_url)
            .into_response(),
        _ => go("/"),
    }
}

/// The enrollment's QR code, as an SVG image.
async fn enroll_qr(State(portal): Shared, headers: HeaderMap) -> Response {
    let Some(Step::Enrolling { qr_uri, .. }) = portal.sessions.get(&headers).map(|s| s.step) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match mfa_proto::enrollment::qr_svg(&qr_uri) {
        Some(svg) => (
            [(CONTENT_TYPE, "image/svg+xml"), (CACHE_CONTROL, "no-store")],
            svg,
        )
            .into_response(),
        None => {
            eprintln!("demo-portal: the QR code could not be made: the URI is too long");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Live status of the enrollment, from the service's enrollment watch.
async fn enroll_events(State(portal): Shared, headers: HeaderMap) -> Response {
    let t = Lang::from_headers(&headers).texts();
    let Some(Step::Enrolling { enrollment_id, .. }) = portal.sessions.get(&headers).map(|s| s.step)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let watch = portal.rp.watch_enrollment(&enrollment_id).await;
    live_status(t, watch, |message| {
        message
            .enrollment
            .map(|enrollment| enrollment_status(t, &enrollment))
    })
}

/// Where the page goes when the service reports the app verified.
async fn enroll_done(State(portal): Shared, headers: HeaderMap) -> Response {
    let Some(session) = portal.sessions.get(&headers) else {
        return go("/");
    };
    if !matches!(session.step, Step::Enrolling { .. }) {
        return go(step_path(&session.step));
    }
    match portal.rp.user_status(session.user.id).await {
        Ok(status) if has_active_device(&status) => {
            portal.after_second_factor(&headers, session.user).await
        }
        Ok(_) => go("/enroll"),
        Err(e) => Refusal::from_error(&e).page(Lang::from_headers(&headers)),
    }
}

/// A new QR code after the last one expired or failed.
async fn enroll_restart(State(portal): Shared, headers: HeaderMap) -> Response {
    let Some(session) = portal.sessions.get(&headers) else {
        return go("/");
    };
    if !matches!(session.step, Step::Enrolling { .. }) {
        return go(step_path(&session.step));
    }
    match portal.new_enrollment(session.user).await {
        Ok(step) => {
            portal.sessions.set_step(&headers, step);
            go("/enroll")
        }
        Err(refusal) => refusal.page(Lang::from_headers(&headers)),
    }
}

async fn approve_page(State(portal): Shared, headers: HeaderMap) -> Response {
    match portal.sessions.get(&headers).map(|s| s.step) {
        Some(Step::Approving { number, .. }) => Page::new(Lang::from_headers(&headers))
            .approve(&number)
            .into_response(),
        _ => go("/"),
    }
}

/// Live status of the sign-in, from the service's challenge watch.
async fn approve_events(State(portal): Shared, headers: HeaderMap) -> Response {
    let t = Lang::from_headers(&headers).texts();
    let Some(Step::Approving { challenge_id, .. }) = portal.sessions.get(&headers).map(|s| s.step)
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let watch = portal.rp.watch_challenge(&challenge_id).await;
    live_status(t, watch, |message| {
        message
            .challenge
            .map(|challenge| challenge_status(t, &challenge))
    })
}

/// Where the page goes when the service reports the sign-in approved; the
/// portal asks the service itself before letting the person in.
async fn approve_done(State(portal): Shared, headers: HeaderMap) -> Response {
    let Some(session) = portal.sessions.get(&headers) else {
        return go("/");
    };
    let Step::Approving { challenge_id, .. } = &session.step else {
        return go(step_path(&session.step));
    };
    match portal.rp.get_challenge(challenge_id).await {
        Ok(challenge) if challenge.state() == ChallengeState::Approved => {
            portal.after_second_factor(&headers, session.user).await
        }
        Ok(_) => go("/approve"),
        Err(e) => Refusal::from_error(&e).page(Lang::from_headers(&headers)),
    }
}

/// A new sign-in number after a denial or expiry.
async fn approve_retry(
    State(portal): Shared,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let Some(session) = portal.sessions.get(&headers) else {
        return go("/");
    };
    if !matches!(session.step, Step::Approving { .. }) {
        return go(step_path(&session.step));
    }
    match portal.second_factor(session.user, client).await {
        Ok(step) => {
            let path = step_path(&step);
            portal.sessions.set_step(&headers, step);
            go(path)
        }
        Err(refusal) => {
            portal.sessions.remove(&headers);
            refusal.page(Lang::from_headers(&headers))
        }
    }
}

/// The form for an offline code, while a sign-in waits for its second factor.
async fn code_page(State(portal): Shared, headers: HeaderMap) -> Response {
    match portal.sessions.get(&headers).map(|s| s.step) {
        Some(Step::Approving { .. }) => Page::new(Lang::from_headers(&headers))
            .offline_code(None)
            .into_response(),
        _ => go("/"),
    }
}

#[derive(Deserialize)]
struct CodeForm {
    code: String,
}

/// Checks the typed offline code with the service (never logging it); the
/// person goes on only if the service accepts it.
async fn verify_code(
    State(portal): Shared,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    let Some(session) = portal.sessions.get(&headers) else {
        return go("/");
    };
    if !matches!(session.step, Step::Approving { .. }) {
        return go(step_path(&session.step));
    }
    let lang = Lang::from_headers(&headers);
    let t = lang.texts();
    // People copy codes as "123 456"; the service takes the digits alone.
    let code: String = form.code.chars().filter(|c| !c.is_whitespace()).collect();
    let notice = match portal
        .rp
        .verify_offline_code(session.user.id, &code, &client.ip().to_string())
        .await
    {
        Ok(_) => return portal.after_second_factor(&headers, session.user).await,
        Err(e) if e.reason() == Some(mfa_sdk::reason::OFFLINE_CODE_USED) => t.code_used,
        Err(e)
            if e.is_offline_code_refused()
                || e.reason() == Some(mfa_sdk::reason::INVALID_ARGUMENT) =>
        {
            t.code_wrong
        }
        Err(e) if e.is_offline_code_unavailable() || e.is_no_active_device() => t.code_unavailable,
        Err(e) => {
            portal.sessions.remove(&headers);
            return Refusal::from_error(&e).page(lang);
        }
    };
    let page = Page::new(lang).offline_code(Some(notice));
    (StatusCode::UNAUTHORIZED, page).into_response()
}

async fn terms_page(State(portal): Shared, headers: HeaderMap) -> Response {
    match portal.sessions.get(&headers).map(|s| s.step) {
        Some(Step::Terms) => Page::new(Lang::from_headers(&headers))
            .terms()
            .into_response(),
        _ => go("/"),
    }
}

/// Records the accepted version with the service, then signs the person in.
async fn accept_terms(State(portal): Shared, headers: HeaderMap) -> Response {
    let Some(session) = portal.sessions.get(&headers) else {
        return go("/");
    };
    if !matches!(session.step, Step::Terms) {
        return go(step_path(&session.step));
    }
    match portal
        .rp
        .record_terms_acceptance(session.user.id, TERMS_VERSION)
        .await
    {
        Ok(_) => {
            portal.sessions.set_step(&headers, Step::SignedIn);
            go("/welcome")
        }
        Err(e) => Refusal::from_error(&e).page(Lang::from_headers(&headers)),
    }
}

async fn welcome(State(portal): Shared, headers: HeaderMap) -> Response {
    match portal.sessions.get(&headers) {
        Some(Session {
            user,
            step: Step::SignedIn,
        }) => Page::new(Lang::from_headers(&headers))
            .welcome(user.email)
            .into_response(),
        _ => go("/"),
    }
}

async fn sign_out(State(portal): Shared, headers: HeaderMap) -> Response {
    portal.sessions.remove(&headers);
    ([(SET_COOKIE, Sessions::clearing_cookie())], go("/")).into_response()
}

/// One live-status message for the page's script (see `pages.rs`).
#[derive(Serialize)]
struct LiveStatus {
    state: &'static str,
    text: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<&'static str>,
    retry: bool,
    #[serde(rename = "final")]
    done: bool,
    /// Offer an offline code from the app instead.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    code: bool,
}

impl LiveStatus {
    fn waiting(state: &'static str, text: &'static str) -> Self {
        Self {
            state,
            text,
            number: None,
            next: None,
            retry: false,
            done: false,
            code: false,
        }
    }

    /// A final state after which the person may try again.
    fn retry(state: &'static str, text: &'static str) -> Self {
        Self {
            retry: true,
            done: true,
            ..Self::waiting(state, text)
        }
    }

    /// A final state of success: the page goes on to `next`.
    fn success(state: &'static str, text: &'static str, next: &'static str) -> Self {
        Self {
            next: Some(next),
            done: true,
            ..Self::waiting(state, text)
        }
    }
}

fn enrollment_status(t: &Texts, enrollment: &Enrollment) -> LiveStatus {
    match enrollment.state() {
        EnrollmentState::DeviceRegistered => LiveStatus {
            number: Some(enrollment.verification_number.clone()),
            ..LiveStatus::waiting("registered", t.enroll_registered)
        },
        EnrollmentState::Verified => {
            LiveStatus::success("verified", t.enroll_verified, "/enroll/done")
        }
        EnrollmentState::Failed => LiveStatus::retry("failed", t.enroll_failed),
        EnrollmentState::Expired => LiveStatus::retry("expired", t.enroll_expired),
        EnrollmentState::Cancelled => LiveStatus::retry("cancelled", t.enroll_cancelled),
        _ => LiveStatus::waiting("waiting", t.enroll_waiting),
    }
}

fn challenge_status(t: &Texts, challenge: &Challenge) -> LiveStatus {
    match (challenge.state(), challenge.deny_reason()) {
        (ChallengeState::Approved, _) => {
            LiveStatus::success("approved", t.approve_approved, "/approve/done")
        }
        (ChallengeState::Denied, DenyReason::WrongNumber) => {
            LiveStatus::retry("denied", t.approve_wrong_number)
        }
        (ChallengeState::Denied, DenyReason::UserVerificationRequired) => {
            LiveStatus::retry("denied", t.approve_user_verification)
        }
        // A fraud report blocks the user: no new attempt to offer.
        (ChallengeState::Denied, DenyReason::FraudReported) => LiveStatus {
            done: true,
            ..LiveStatus::waiting("reported", t.approve_fraud)
        },
        (ChallengeState::Denied, _) => LiveStatus::retry("denied", t.approve_denied),
        // The push may not have reached the phone: offer its offline code.
        // Not after a denial, which the phone did receive.
        (ChallengeState::Expired, _) => LiveStatus {
            code: true,
            ..LiveStatus::retry("expired", t.approve_expired)
        },
        (ChallengeState::Superseded, _) => LiveStatus::retry("superseded", t.approve_superseded),
        (ChallengeState::Cancelled, _) => LiveStatus::retry("cancelled", t.approve_cancelled),
        _ => LiveStatus::waiting("waiting", t.approve_waiting),
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>>;

/// Turns a service watch into server-sent events, one JSON [`LiveStatus`]
/// per change; a failed watch ends with an error status.
fn live_status<M, S>(
    t: &'static Texts,
    watch: Result<S, mfa_sdk::Error>,
    describe: impl Fn(M) -> Option<LiveStatus> + Send + 'static,
) -> Response
where
    S: Stream<Item = Result<M, tonic::Status>> + Send + 'static,
    M: 'static,
{
    let failed = move || LiveStatus::retry("error", t.service_error);
    let events: EventStream = match watch {
        Ok(stream) => Box::pin(stream.filter_map(move |message| match message {
            Ok(message) => describe(message).map(to_event),
            Err(status) => {
                eprintln!("demo-portal: a watch failed: {}", status.message());
                Some(to_event(failed()))
            }
        })),
        Err(e) => {
            eprintln!("demo-portal: a watch could not start: {e}");
            Box::pin(tokio_stream::once(to_event(failed())))
        }
    };
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn to_event(status: LiveStatus) -> Result<Event, Infallible> {
    let json = serde_json::to_string(&status).unwrap_or_default();
    Ok(Event::default().data(json))
}
