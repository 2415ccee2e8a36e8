//! The hosted verification page, `…/verify/{id}`: one URL per
//! authorization, whose view follows where the sign-in stands.
//!
//! - Nothing started yet: a user with a device gets a sign-in challenge
//!   (`Service::create_challenge`, with all its limits and audit); a user
//!   without one, on a pushed request, an enrollment with a QR code
//!   (`Service::begin_enrollment`); a blocked user, the blocked page.
//! - A challenge or enrollment in progress: the number (or the QR code) and
//!   a live status, which long-polls `…/status` (built on the domain's
//!   watch slots and change feed) and reloads the page when the view changes.
//! - Approved (or, for a first device, verified): the code is issued once and
//!   the browser goes back to the client.
//! - Denied, reported, expired, replaced, blocked: a page that says so, with
//!   "try again" where that makes sense, and the way back to the client,
//!   which then receives `access_denied`.

use super::{
    error::{self, Mode, OAuthError},
    i18n::Lang,
    pages::{self, Offer, Page},
    Provider,
};
use crate::{
    client_address::ClientAddress,
    domain::{now_ms, Error, Reason},
    events::Change,
    model::*,
};
use axum::{
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    Extension, Json,
};
use serde::Deserialize;
use serde_json::json;
use std::{sync::Arc, time::Duration};

/// The longest a status request waits for a change.
const LONG_POLL: Duration = Duration::from_secs(25);

/// Where an authorization stands, as the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum View {
    /// Nothing started yet.
    Start,
    Challenge(Challenge),
    Enrollment(Enrollment),
}

impl View {
    /// The short name the page and the status endpoint compare.
    fn key(&self, now: i64) -> String {
        match self {
            View::Start => "start".into(),
            View::Challenge(c) if c.state == ChallengeState::Pending && c.expires_at <= now => {
                "challenge:expired".into()
            }
            View::Challenge(c) => format!(
                "challenge:{}{}",
                c.state.as_str(),
                c.deny_reason
                    .map_or(String::new(), |r| format!(":{}", r.as_str()))
            ),
            View::Enrollment(e) => format!("enrollment:{}", e.state.as_str()),
        }
    }
}

/// Reads where `authorization` stands.
async fn view(p: &Provider, authorization: &Authorization) -> Result<View, Error> {
    let tenant = &authorization.tenant_id;
    if let Some(id) = &authorization.challenge_id {
        return Ok(View::Challenge(p.service.challenge(tenant, id).await?));
    }
    if let Some(id) = &authorization.enrollment_id {
        return Ok(View::Enrollment(p.service.enrollment(tenant, id).await?));
    }
    Ok(View::Start)
}

/// An authorization and its client, or the page that says why not.
async fn load(p: &Provider, id: &str, lang: Lang) -> Result<(Authorization, OidcClient), Response> {
    let authorization = match p.service.authorization(id).await {
        Ok(a) => a,
        Err(Error::Refused { .. }) => {
            return Err((
                StatusCode::NOT_FOUND,
                pages::message(lang, "error", lang.texts().bad_request),
            )
                .into_response())
        }
        Err(e) => return Err(unavailable(lang, &e)),
    };
    let client = p
        .service
        .oidc_client(&authorization.client_id)
        .await
        .map_err(|e| unavailable(lang, &e))?;
    Ok((authorization, client))
}

fn unavailable(lang: Lang, error: &Error) -> Response {
    tracing::warn!(%error, "verification page: the service failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        pages::message(lang, "error", lang.texts().service_error),
    )
        .into_response()
}

fn again(p: &Provider, authorization: &Authorization) -> Response {
    Redirect::to(&p.path(&format!("/verify/{}", authorization.id))).into_response()
}

/// `GET …/verify/{id}`: the page for where the sign-in stands.
pub async fn page(
    State(p): State<Provider>,
    Path(id): Path<String>,
    Extension(client): Extension<ClientAddress>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let (authorization, rp) = match load(&p, &id, lang).await {
        Ok(loaded) => loaded,
        Err(page) => return page,
    };
    let t = lang.texts();
    if authorization.finished_at.is_some() {
        return (
            StatusCode::GONE,
            pages::message(lang, "finished", t.finished),
        )
            .into_response();
    }
    if authorization.expires_at <= now_ms() {
        return finish_with_error(
            &p,
            &authorization,
            lang,
            OAuthError::new("access_denied", "the sign-in was not finished in time"),
        )
        .await;
    }
    let base = p.path(&format!("/verify/{}", authorization.id));
    let page = Page {
        lang,
        app: &rp.display_name,
        base: &base,
    };
    let view = match view(&p, &authorization).await {
        Ok(view) => view,
        Err(e) => return unavailable(lang, &e),
    };
    let now = now_ms();
    let key = view.key(now);
    let outcome = |state: &str, text: &str, offer: Offer, lost: bool| {
        page.outcome(state, text, offer, lost).into_response()
    };
    match &view {
        View::Start => start(&p, &authorization, &rp, client, &page).await,
        View::Challenge(c) => match (c.state, c.deny_reason) {
            (ChallengeState::Pending, _) if c.expires_at > now => {
                page.approve(&c.number, &key).into_response()
            }
            (ChallengeState::Pending | ChallengeState::Expired, _) => {
                outcome("expired", t.expired, Offer::Retry, false)
            }
            (ChallengeState::Approved, _) => {
                let approved_at = c.ended_at.unwrap_or(now);
                issue(&p, &authorization, approved_at, lang).await
            }
            (ChallengeState::Denied, Some(DenyReason::FraudReported)) => {
                outcome("reported", t.reported, Offer::Nothing, true)
            }
            (ChallengeState::Denied, Some(DenyReason::WrongNumber)) => {
                outcome("denied", t.wrong_number, Offer::Retry, false)
            }
            (ChallengeState::Denied, _) => outcome("denied", t.denied, Offer::Retry, false),
            (ChallengeState::Superseded | ChallengeState::Cancelled, _) => {
                outcome("replaced", t.replaced, Offer::Retry, false)
            }
        },
        View::Enrollment(e) => match e.state {
            EnrollmentState::WaitingForScan if e.expires_at > now => {
                // Only the code's hash is stored: the QR code was on the
                // page that began the enrollment. Reloaded, the page
                // offers a new code.
                page.enroll(None, None, &key).into_response()
            }
            EnrollmentState::DeviceRegistered => {
                let number = match p.service.verification_number(e).await {
                    Ok(number) => number,
                    Err(error) => return unavailable(lang, &error),
                };
                page.enroll(None, number.as_deref(), &key).into_response()
            }
            EnrollmentState::Verified => {
                let verified_at = now;
                issue(&p, &authorization, verified_at, lang).await
            }
            EnrollmentState::WaitingForScan | EnrollmentState::Expired => {
                outcome("expired", t.enroll_expired, Offer::NewCode, false)
            }
            EnrollmentState::Failed | EnrollmentState::Cancelled => {
                outcome("failed", t.enroll_failed, Offer::NewCode, false)
            }
        },
    }
}

/// Starts the sign-in: a challenge for a user with a device, an enrollment
/// for one without (on a pushed request), or says why neither can start.
async fn start(
    p: &Provider,
    authorization: &Authorization,
    rp: &OidcClient,
    client: ClientAddress,
    page: &Page<'_>,
) -> Response {
    let lang = page.lang;
    let t = lang.texts();
    let status = match p
        .service
        .user_status(&authorization.tenant_id, &authorization.user_id)
        .await
    {
        Ok(status) => status,
        Err(e) => return unavailable(lang, &e),
    };
    if status.blocked_until.is_some() {
        return page
            .outcome("blocked", t.blocked, Offer::Nothing, true)
            .into_response();
    }
    let has_device = status
        .devices
        .iter()
        .any(|d| d.state == DeviceState::Active);
    if !has_device {
        if !authorization.pushed || authorization.email.is_empty() {
            return page
                .outcome("not-set-up", t.not_set_up, Offer::Nothing, true)
                .into_response();
        }
        return enroll(p, authorization, page).await;
    }
    let context = SignInContext {
        application_name: rp.display_name.clone(),
        client_ip: client.to_string(),
        ..Default::default()
    };
    match p
        .service
        .create_challenge(&authorization.tenant_id, &authorization.user_id, context)
        .await
    {
        Ok(challenge) => {
            match p
                .service
                .set_authorization_step(authorization, Some(&challenge.id), None)
                .await
            {
                Ok(_) => again(p, authorization),
                Err(e) => unavailable(lang, &e),
            }
        }
        Err(e) => match e.reason() {
            Reason::UserBlocked => page
                .outcome("blocked", t.blocked, Offer::Nothing, true)
                .into_response(),
            Reason::RateLimited => page
                .outcome("rate-limited", t.rate_limited, Offer::Nothing, false)
                .into_response(),
            Reason::NoActiveDevice => page
                .outcome("not-set-up", t.not_set_up, Offer::Nothing, true)
                .into_response(),
            _ => unavailable(lang, &e),
        },
    }
}

/// Begins a first device's enrollment and shows its QR code.
async fn enroll(p: &Provider, authorization: &Authorization, page: &Page<'_>) -> Response {
    let lang = page.lang;
    let started = match p
        .service
        .begin_enrollment(
            &authorization.tenant_id,
            &authorization.user_id,
            &authorization.email,
        )
        .await
    {
        Ok(started) => started,
        Err(e) => return unavailable(lang, &e),
    };
    match p
        .service
        .set_authorization_step(authorization, None, Some(&started.enrollment.id))
        .await
    {
        Ok(true) => {}
        Ok(false) => return again(p, authorization),
        Err(e) => return unavailable(lang, &e),
    }
    let qr = match qr_image(&started.qr_uri) {
        Ok(qr) => qr,
        Err(e) => return unavailable(lang, &e),
    };
    let key = View::Enrollment(started.enrollment.clone()).key(now_ms());
    let shown = pages::EnrollmentCode {
        qr_image: &qr,
        manual_code: &started.manual_code,
        server_url: &started.server_url,
    };
    let mut response = page.enroll(Some(&shown), None, &key).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// Issues the code (or, for Entra ID's external method, the id_token) and
/// sends the browser back to the client with it.
async fn issue(
    p: &Provider,
    authorization: &Authorization,
    auth_time: i64,
    lang: Lang,
) -> Response {
    if authorization.response_type == ResponseType::IdToken {
        return match p
            .service
            .complete_authorization(authorization, auth_time)
            .await
        {
            Ok(true) => match super::token::id_token(p, authorization, auth_time).await {
                Ok(id_token) => error::respond(
                    &authorization.redirect_uri,
                    &p.issuer,
                    Mode::FormPost,
                    &[
                        ("id_token", Some(&id_token)),
                        ("state", authorization.state.as_deref()),
                    ],
                ),
                Err(e) => unavailable(lang, &e),
            },
            Ok(false) => (
                StatusCode::GONE,
                pages::message(lang, "finished", lang.texts().finished),
            )
                .into_response(),
            Err(e) => unavailable(lang, &e),
        };
    }
    match p
        .service
        .issue_code(authorization, auth_time, p.config.code_ttl)
        .await
    {
        Ok(Some(code)) => error::respond(
            &authorization.redirect_uri,
            &p.issuer,
            Mode::Query,
            &[
                ("code", Some(&code)),
                ("state", authorization.state.as_deref()),
            ],
        ),
        Ok(None) => (
            StatusCode::GONE,
            pages::message(lang, "finished", lang.texts().finished),
        )
            .into_response(),
        Err(e) => unavailable(lang, &e),
    }
}

/// Finishes the authorization with `error` and sends the browser back to
/// the client with it.
async fn finish_with_error(
    p: &Provider,
    authorization: &Authorization,
    lang: Lang,
    error: OAuthError,
) -> Response {
    match p.service.abandon_authorization(authorization).await {
        Ok(true) => error::respond_error(
            &authorization.redirect_uri,
            &p.issuer,
            authorization.response_type.into(),
            authorization.state.as_deref(),
            &error,
        ),
        Ok(false) => (
            StatusCode::GONE,
            pages::message(lang, "finished", lang.texts().finished),
        )
            .into_response(),
        Err(e) => unavailable(lang, &e),
    }
}

/// `POST …/retry`: starts again after an ending that allows it.
pub async fn retry(
    State(p): State<Provider>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let authorization = match load(&p, &id, lang).await {
        Ok((authorization, _)) => authorization,
        Err(page) => return page,
    };
    let retriable = match view(&p, &authorization).await {
        Ok(View::Challenge(c)) => match c.state {
            ChallengeState::Pending => c.expires_at <= now_ms(),
            ChallengeState::Approved => false,
            ChallengeState::Denied => c.deny_reason != Some(DenyReason::FraudReported),
            _ => true,
        },
        Ok(View::Enrollment(e)) => !matches!(
            e.state,
            EnrollmentState::Verified | EnrollmentState::DeviceRegistered
        ),
        Ok(View::Start) => false,
        Err(e) => return unavailable(lang, &e),
    };
    if retriable {
        if let Err(e) = p
            .service
            .set_authorization_step(&authorization, None, None)
            .await
        {
            return unavailable(lang, &e);
        }
    }
    again(&p, &authorization)
}

/// `POST …/return`: the person goes back to the application without
/// signing in; a pending challenge is cancelled, and the client receives
/// `access_denied` saying why.
pub async fn give_up(
    State(p): State<Provider>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::from_headers(&headers);
    let authorization = match load(&p, &id, lang).await {
        Ok((authorization, _)) => authorization,
        Err(page) => return page,
    };
    let now = now_ms();
    let description = match view(&p, &authorization).await {
        Ok(View::Challenge(c)) => match (c.state, c.deny_reason) {
            (ChallengeState::Pending, _) if c.expires_at > now => {
                // Cancelled so that the phone no longer offers it; a race
                // with the phone's answer leaves whichever ended it first.
                let _ = p.service.cancel_challenge(&c.tenant_id, &c.id).await;
                "the person cancelled the sign-in"
            }
            (ChallengeState::Pending | ChallengeState::Expired, _) => {
                "the sign-in request expired before it was approved"
            }
            (ChallengeState::Denied, Some(DenyReason::FraudReported)) => {
                "the person reported the sign-in as not theirs"
            }
            (ChallengeState::Denied, _) => "the sign-in was denied on the phone",
            (ChallengeState::Approved, _) => return again(&p, &authorization),
            _ => "the sign-in was cancelled",
        },
        Ok(View::Enrollment(_)) => "the authenticator app was not set up",
        Ok(View::Start) => match p
            .service
            .user_status(&authorization.tenant_id, &authorization.user_id)
            .await
        {
            Ok(status) if status.blocked_until.is_some() => {
                "sign-ins of this user are blocked after a fraud report"
            }
            Ok(_) => "the user has no authenticator app set up",
            Err(e) => return unavailable(lang, &e),
        },
        Err(e) => return unavailable(lang, &e),
    };
    finish_with_error(
        &p,
        &authorization,
        lang,
        OAuthError::new("access_denied", description),
    )
    .await
}

#[derive(Deserialize)]
pub struct StatusQuery {
    seen: Option<String>,
}

/// `GET …/status?seen=…`: the view's name, once it differs from `seen` (or
/// after [`LONG_POLL`]).
pub async fn status(
    State(p): State<Provider>,
    Path(id): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Response {
    let authorization = match p.service.authorization(&id).await {
        Ok(a) => a,
        Err(e) => return OAuthError::from_domain(&e).json(),
    };
    let targets: Vec<Change> = authorization
        .challenge_id
        .iter()
        .map(|c| Change::Challenge(c.clone()))
        .chain(
            authorization
                .enrollment_id
                .iter()
                .map(|e| Change::Enrollment(e.clone())),
        )
        .collect();
    let seen = query.seen.unwrap_or_default();
    let tenant_id = authorization.tenant_id.clone();
    let (provider, authorization) = (p.clone(), Arc::new(authorization));
    let read = move || {
        let (p, authorization) = (provider.clone(), authorization.clone());
        // Expiry is a view change even before the sweeper records it.
        async move { Ok(view(&p, &authorization).await?.key(now_ms())) }
    };
    let waited = if targets.is_empty() {
        read().await
    } else {
        p.service
            .await_change(&tenant_id, targets, &seen, LONG_POLL, read)
            .await
    };
    match waited {
        Ok(key) => (
            [(header::CACHE_CONTROL, "no-store")],
            Json(json!({ "view": key })),
        )
            .into_response(),
        Err(e) => OAuthError::from_domain(&e).json(),
    }
}

/// The QR code of an enrollment URI as an SVG `data:` URI, put in the page
/// itself: the code is shown once, by the response that began the
/// enrollment, whichever replica serves the next request.
fn qr_image(uri: &str) -> Result<String, Error> {
    use base64::{engine::general_purpose::STANDARD, Engine};
    let svg = mfa_proto::enrollment::qr_svg(uri)
        .ok_or_else(|| Error::Internal("enrollment URI too long for a QR code".into()))?;
    Ok(format!(
        "data:image/svg+xml;base64,{}",
        STANDARD.encode(svg)
    ))
}
