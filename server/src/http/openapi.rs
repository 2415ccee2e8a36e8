//! The OpenAPI 3.1 document of the HTTP/JSON API, generated from the
//! handlers and types. It is served at `GET /v1/openapi.json` and committed
//! as `docs/openapi.json` (`mfa-server openapi > docs/openapi.json`
//! regenerates it; a test fails while the committed copy differs).

use super::{error, model, portal};
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "mfa-server HTTP/JSON API",
        description = "The portal service (mfa.v1.PortalService) over HTTP/JSON: the same \
            operations, API keys, limits and error reasons as the gRPC API. Every error \
            answer is an ErrorBody.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        portal::begin_enrollment,
        portal::get_enrollment,
        portal::enrollment_events,
        portal::create_challenge,
        portal::get_challenge,
        portal::challenge_events,
        portal::cancel_challenge,
        portal::user_status,
        portal::record_terms,
        portal::verify_offline_code,
    ),
    components(schemas(
        error::ErrorBody,
        error::ErrorDetail,
        model::BeginEnrollmentRequest,
        model::BeginEnrollmentResponse,
        model::Enrollment,
        model::CreateChallengeRequest,
        model::SignInContext,
        model::Challenge,
        model::PushDelivery,
        model::Device,
        model::UserStatus,
        model::RecordTermsRequest,
        model::TermsAcceptance,
        model::VerifyOfflineCodeRequest,
        model::OfflineCodeVerified,
    )),
    modifiers(&ApiKeyScheme),
    tags(
        (name = "enrollments", description = "Enrolling a user's phone"),
        (name = "challenges", description = "Number-matching sign-in challenges"),
        (name = "users", description = "A user's status, terms of use and offline codes"),
    )
)]
struct ApiDoc;

/// `Authorization: Bearer mfak_…`, a portal API key.
struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("mfak_…")
                    .description(Some(
                        "A portal API key (`mfa-server api-key create --role portal`)",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document as pretty JSON with a final newline, as committed.
pub fn document() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = crate::VERSION.to_owned();
    let mut text = doc
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    /// The committed copy is what the code generates; when this fails,
    /// regenerate it: `cargo run -p mfa-server -- openapi > docs/openapi.json`.
    #[test]
    fn the_committed_document_is_current() {
        let committed = include_str!("../../../docs/openapi.json");
        assert!(
            committed == super::document(),
            "docs/openapi.json is stale: run `cargo run -p mfa-server -- openapi > docs/openapi.json`"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_operation() {
        let doc: serde_json::Value = serde_json::from_str(&super::document()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut operations: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|path| path.as_object().unwrap().values())
            .filter_map(|operation| operation["operationId"].as_str())
            .collect();
        operations.sort_unstable();
        assert_eq!(
            operations,
            [
                "BeginEnrollment",
                "CancelChallenge",
                "CreateChallenge",
                "GetChallenge",
                "GetEnrollment",
                "GetUserStatus",
                "RecordTermsAcceptance",
                "VerifyOfflineCode",
                "WatchChallenge",
                "WatchEnrollment",
            ]
        );
    }
}
