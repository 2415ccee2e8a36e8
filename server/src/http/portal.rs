//! The portal service's operations as resources. Each handler decodes the
//! request (the extractors of [`super::extract`] refuse bad input), calls
//! the same operation as the gRPC face ([`crate::api::portal`]), and sends
//! the `mfa.v1` answer as JSON ([`super::model`]).

use super::{
    error::{ApiError, ErrorBody},
    extract::{JsonBody, Message, PathParam, PortalCaller, WaitQuery},
    json,
    model::{enum_names, *},
    watch, Api,
};
use crate::{
    api::portal as ops,
    domain::{Error, Reason},
};
use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use mfa_proto::v1;

impl Message for BeginEnrollmentRequest {
    const NAME: &'static str = "mfa.v1.BeginEnrollmentRequest";
}
impl Message for CreateChallengeRequest {
    const NAME: &'static str = "mfa.v1.CreateChallengeRequest";
}
impl Message for RecordTermsRequest {
    const NAME: &'static str = "mfa.v1.RecordTermsAcceptanceRequest";
}
impl Message for VerifyOfflineCodeRequest {
    const NAME: &'static str = "mfa.v1.VerifyOfflineCodeRequest";
}

/// Starts enrolling a phone for a user: the QR code (as URI and as SVG
/// image) and the manual-entry code. The code is single-use and expires.
#[utoipa::path(
    post, path = "/v1/enrollments", tag = "enrollments", operation_id = "BeginEnrollment",
    request_body = BeginEnrollmentRequest,
    responses(
        (status = 201, description = "The enrollment started", body = BeginEnrollmentResponse),
        (status = "4XX", description = "Refused; see `reason`", body = ErrorBody),
        (status = "5XX", description = "A server fault or outage; try again", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn begin_enrollment(
    State(api): State<Api>,
    caller: PortalCaller,
    JsonBody(body): JsonBody<BeginEnrollmentRequest>,
) -> Result<Response, ApiError> {
    let begun =
        ops::begin_enrollment(&api.service, &caller.tenant_id, &body.user_id, &body.email).await?;
    let svg = mfa_proto::enrollment::qr_svg(&begun.qr_uri)
        .ok_or_else(|| Error::Internal("enrollment URI too long for a QR code".into()))?;
    Ok(json(
        StatusCode::CREATED,
        &BeginEnrollmentResponse::new(begun, svg),
    ))
}

/// Returns an enrollment's state. With `wait`, answers once the state is
/// no longer `while_state` (by default `ENROLLMENT_STATE_WAITING_FOR_SCAN`),
/// or when the wait ends, with the state then.
#[utoipa::path(
    get, path = "/v1/enrollments/{enrollment_id}", tag = "enrollments", operation_id = "GetEnrollment",
    params(
        ("enrollment_id" = String, Path, description = "The enrollment"),
        ("wait" = Option<String>, Query, description = "Wait up to this long (e.g. `30s`; at most 60s) for the state to change"),
        ("while_state" = Option<String>, Query, description = "With `wait`: the state to wait out (default `ENROLLMENT_STATE_WAITING_FOR_SCAN`)"),
    ),
    responses(
        (status = 200, description = "The enrollment", body = Enrollment),
        (status = "4XX", description = "Refused; see `reason`", body = ErrorBody),
        (status = "5XX", description = "A server fault or outage; try again", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn get_enrollment(
    State(api): State<Api>,
    caller: PortalCaller,
    PathParam(id): PathParam,
    query: WaitQuery,
) -> Result<Response, ApiError> {
    let (service, tenant) = (&api.service, &caller.tenant_id);
    let enrollment = watch::read_or_wait(
        &query,
        v1::EnrollmentState::WaitingForScan.as_str_name(),
        &enum_names!(v1::EnrollmentState),
        |e| e.state().as_str_name(),
        ops::enrollment(service, tenant, &id),
        ops::watch_enrollment(service, tenant, &id),
    )
    .await?;
    Ok(json(StatusCode::OK, &Enrollment::from(enrollment)))
}

/// Streams an enrollment's state as server-sent events: `enrollment` events
/// (an [`Enrollment`] each), the current state at once, then every change,
/// ending after a terminal state; or a last `error` event.
#[utoipa::path(
    get, path = "/v1/enrollments/{enrollment_id}/events", tag = "enrollments", operation_id = "WatchEnrollment",
    params(("enrollment_id" = String, Path, description = "The enrollment")),
    responses(
        (status = 200, description = "`text/event-stream` of `enrollment` events (data: an Enrollment) and at most one `error` event (data: an ErrorBody)", content_type = "text/event-stream", body = String),
        (status = "4XX", description = "Refused; see `reason`", body = ErrorBody),
        (status = "5XX", description = "A server fault or outage; try again", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn enrollment_events(
    State(api): State<Api>,
    caller: PortalCaller,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    let updates = ops::watch_enrollment(&api.service, &caller.tenant_id, &id).await?;
    Ok(watch::events::<_, Enrollment>(updates, "enrollment").into_response())
}

/// Creates a sign-in challenge and notifies the user's active devices. A
/// pending challenge of the same user is superseded.
#[utoipa::path(
    post, path = "/v1/challenges", tag = "challenges", operation_id = "CreateChallenge",
    request_body = CreateChallengeRequest,
    responses(
        (status = 201, description = "The new challenge; show its number", body = Challenge),
        (status = "4XX", description = "Refused; see `reason` (e.g. `NO_ACTIVE_DEVICE`, `USER_BLOCKED`, `RATE_LIMITED`)", body = ErrorBody),
        (status = "5XX", description = "A server fault or outage; try again", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn create_challenge(
    State(api): State<Api>,
    caller: PortalCaller,
    JsonBody(body): JsonBody<CreateChallengeRequest>,
) -> Result<Response, ApiError> {
    let challenge = ops::create_challenge(
        &api.service,
        &caller.tenant_id,
        &body.user_id,
        body.context.map(Into::into),
    )
    .await?;
    Ok(json(StatusCode::CREATED, &Challenge::from(challenge)))
}

/// Returns a challenge's state. With `wait`, answers once the state is no
/// longer `while_state` (by default `CHALLENGE_STATE_PENDING`), or when the
/// wait ends, with the state then.
#[utoipa::path(
    get, path = "/v1/challenges/{challenge_id}", tag = "challenges", operation_id = "GetChallenge",
    params(
        ("challenge_id" = String, Path, description = "The challenge"),
        ("wait" = Option<String>, Query, description = "Wait up to this long (e.g. `30s`; at most 60s) for the state to change"),
        ("while_state" = Option<String>, Query, description = "With `wait`: the state to wait out (default `CHALLENGE_STATE_PENDING`)"),
    ),
    responses(
        (status = 200, description = "The challenge", body = Challenge),
        (status = "4XX", description = "Refused; see `reason`", body = ErrorBody),
        (status = "5XX", description = "A server fault or outage; try again", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn get_challenge(
    State(api): State<Api>,
    caller: PortalCaller,
    PathParam(id): PathParam,
    query: WaitQuery,
) -> Result<Response, ApiError> {
    let (service, tenant) = (&api.service, &caller.tenant_id);
    let challenge = watch::read_or_wait(
        &query,
        v1::ChallengeState::Pending.as_str_name(),
        &enum_names!(v1::ChallengeState),
        |c| c.state().as_str_name(),
        ops::challenge(service, tenant, &id),
        ops::watch_challenge(service, tenant, &id),
    )
    .await?;
    Ok(json(StatusCode::OK, &Challenge::from(challenge)))
}

/// Streams a challenge's state as server-sent events: `challenge` events (a
/// [`Challenge`] each), the current state at once, then every change,
/// ending after a terminal state; or a last `error` event.
#[utoipa::path(
    get, path = "/v1/challenges/{challenge_id}/events", tag = "challenges", operation_id = "WatchChallenge",
    params(("challenge_id" = String, Path, description = "The challenge")),
    responses(
        (status = 200, description = "`text/event-stream` of `challenge` events (data: a Challenge) and at most one `error` event (data: an ErrorBody)", content_type = "text/event-stream", body = String),
        (status = "4XX", description = "Refused; see `reason`", body = ErrorBody),
        (status = "5XX", description = "A server fault or outage; try again", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn challenge_events(
    State(api): State<Api>,
    caller: PortalCaller,
    PathParam(id): PathParam,
) -> Result<Response, ApiError> {
    let updates = ops::watch_challenge(&api.service, &caller.tenant_id, &id).await?;
    Ok(watch::events::<_, Challenge>(updates, "challenge").into_response())
}

/// Cancels a pending challenge (e.g. the person closed the sign-in page).
/// `CHALLENGE_ENDED` or `CHALLENGE_EXPIRED` when it already ended. Takes no
/// body (any is ignored).
#[utoipa::path(
    post, path = "/v1/challenges/{challenge_id}:cancel", tag = "challenges", operation_id = "CancelChallenge",
    params(("challenge_id" = String, Path, description = "The challenge")),
    responses(
        (status = 200, description = "The challenge, now cancelled", body = Challenge),
        (status = "4XX", description = "Refused; see `reason`", body = ErrorBody),
        (status = "5XX", description = "A server fault or outage; try again", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn cancel_challenge(
    State(api): State<Api>,
    PathParam(target): PathParam,
    caller: PortalCaller,
) -> Result<Response, ApiError> {
    let id = target.strip_suffix(":cancel").ok_or_else(|| {
        ApiError::new(
            Reason::NotFound,
            "no such route: POST /v1/challenges/{challenge_id}:cancel is the only POST on a challenge",
        )
        .with("resource", "route")
    })?;
    let challenge = ops::cancel_challenge(&api.service, &caller.tenant_id, id).await?;
    Ok(json(StatusCode::OK, &Challenge::from(challenge)))
}

/// Returns what the portal needs to decide the next step for a user:
/// enrolled devices, whether the user is blocked, and the accepted terms
/// version.
#[utoipa::path(
    get, path = "/v1/users/{user_id}", tag = "users", operation_id = "GetUserStatus",
    params(("user_id" = String, Path, description = "The portal's identifier of the user (percent-encoded)")),
    responses(
        (status = 200, description = "The user's status", body = UserStatus),
        (status = "4XX", description = "Refused; see `reason`", body = ErrorBody),
        (status = "5XX", description = "A server fault or outage; try again", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn user_status(
    State(api): State<Api>,
    caller: PortalCaller,
    PathParam(user_id): PathParam,
) -> Result<Response, ApiError> {
    let status = ops::user_status(&api.service, &caller.tenant_id, &user_id).await?;
    Ok(json(StatusCode::OK, &UserStatus::from(status)))
}

/// Records that the user accepted a version of the terms of use.
#[utoipa::path(
    post, path = "/v1/users/{user_id}/terms", tag = "users", operation_id = "RecordTermsAcceptance",
    params(("user_id" = String, Path, description = "The portal's identifier of the user (percent-encoded)")),
    request_body = RecordTermsRequest,
    responses(
        (status = 200, description = "The version now recorded", body = TermsAcceptance),
        (status = "4XX", description = "Refused; see `reason`", body = ErrorBody),
        (status = "5XX", description = "A server fault or outage; try again", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn record_terms(
    State(api): State<Api>,
    caller: PortalCaller,
    PathParam(user_id): PathParam,
    JsonBody(body): JsonBody<RecordTermsRequest>,
) -> Result<Response, ApiError> {
    let recorded = ops::record_terms(
        &api.service,
        &caller.tenant_id,
        &user_id,
        &body.terms_version,
    )
    .await?;
    Ok(json(StatusCode::OK, &TermsAcceptance::from(recorded)))
}

/// Checks the 6-digit offline code the person typed when a push could not
/// reach the phone: accepted at most once per time step and device; wrong
/// and replayed codes count towards the user's and the address's limits.
#[utoipa::path(
    post, path = "/v1/users/{user_id}/offline-codes:verify", tag = "users",
    operation_id = "VerifyOfflineCode",
    params(("user_id" = String, Path, description = "The portal's identifier of the user (percent-encoded)")),
    request_body = VerifyOfflineCodeRequest,
    responses(
        (status = 200, description = "The code is accepted: sign the user in", body = OfflineCodeVerified),
        (status = "4XX", description = "Refused; see `reason` (OFFLINE_CODE_INVALID, OFFLINE_CODE_USED, RATE_LIMITED, …)", body = ErrorBody),
        (status = "5XX", description = "A server fault or outage; try again", body = ErrorBody),
    ),
    security(("api_key" = []))
)]
pub async fn verify_offline_code(
    State(api): State<Api>,
    caller: PortalCaller,
    PathParam(user_id): PathParam,
    JsonBody(body): JsonBody<VerifyOfflineCodeRequest>,
) -> Result<Response, ApiError> {
    let request = v1::VerifyOfflineCodeRequest {
        user_id,
        code: body.code,
        client_ip: body.client_ip,
    };
    let verified = ops::verify_offline_code(&api.service, &caller.tenant_id, &request).await?;
    Ok(json(StatusCode::OK, &OfflineCodeVerified::from(verified)))
}
