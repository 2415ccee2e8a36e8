//! SDK of the MFA approval service: number-matching push approvals, as in
//! Microsoft Authenticator.
//!
//! # A short tour
//!
//! - [`Authenticator`] (in `device.rs`) is the phone's side. It enrolls from
//!   the QR code's [`EnrollmentUri`], then fetches the challenges waiting for
//!   the device and answers them. Every call is signed with the device's key.
//! - [`VerifiedChallenge`] (in `challenge.rs`) is a challenge whose context the
//!   server's key signed. The app shows nothing else: what the person sees
//!   (application, place, tenant) is what the server vouched for.
//! - [`KeyStore`] (in `store.rs`) keeps the enrolled [`Account`] and makes
//!   and keeps the device key, which the SDK uses only through [`Signer`]
//!   (in `signer.rs`): sign bytes, give the public key and the algorithm
//!   (Ed25519 or ECDSA P-256). A store over the phone's secure hardware
//!   never lets the secret out. [`FileKeyStore`] writes an owner-only JSON
//!   file with a [`SoftwareKey`]; [`MemoryKeyStore`] is for tests and
//!   examples.
//! - [`Account::offline_code`] (in `offline_code.rs`) is the 6-digit code
//!   (RFC 6238) that the person types into the portal when a push cannot
//!   reach the phone; it needs no network.
//! - [`parse_push_payload`] reads a push notification. Pushes carry no
//!   secrets, only which challenge to fetch.
//! - [`portal::RelyingParty`] is the portal's side: begin an enrollment, ask
//!   for a sign-in approval, await the outcome, or check an offline code.
//! - [`Error`] is the one error type. When the server refuses a request,
//!   [`Error::reason`] gives its machine-readable reason.
//!
//! # Usage sketch
//!
//! ```no_run
//! use mfa_sdk::{
//!     Authenticator, DeviceInfo, EnrollmentUri, FileKeyStore, KeyAlgorithm, PushPlatform,
//!     UserVerification,
//! };
//!
//! # async fn run(qr_code: &str, number_on_portal: &str) -> Result<(), mfa_sdk::Error> {
//! // A software key in an owner-only file; an app with secure hardware
//! // implements `KeyStore` and `Signer` over it instead.
//! let store = FileKeyStore::new("/data/app/mfa-account.json")
//!     .with_key_algorithm(KeyAlgorithm::EcdsaP256Sha256);
//!
//! // Once: scan the QR code, enroll, and type the number the portal shows.
//! let uri = EnrollmentUri::parse(qr_code)?;
//! let info = DeviceInfo {
//!     name: "Hanako's iPhone".into(),
//!     push_platform: PushPlatform::Apns,
//!     push_token: "apns-device-token".into(),
//! };
//! let (mut app, verification) = Authenticator::enroll(&uri, info, &store).await?;
//! app.approve(&verification, number_on_portal).await?;
//!
//! // Later, on a push or when the app opens: show and answer what is pending.
//! let mut app = Authenticator::open(&store).await?.expect("enrolled above");
//! for challenge in app.pending_challenges().await? {
//!     println!("Sign in to {} from {}?", challenge.application_name, challenge.location);
//!     // ... the person types the number shown on the sign-in page:
//!     let answer = if challenge.requires_user_verification() {
//!         // The tenant requires unlocking: ask for a fingerprint or face
//!         // (LAContext, BiometricPrompt) first, then say which was used.
//!         app.approve_verified(&challenge, "42", UserVerification::Biometric).await?
//!     } else {
//!         app.approve(&challenge, "42").await?
//!     };
//!     println!("{:?}", answer.state);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! `https://` URLs are checked against the system's trust roots; pass
//! [`ConnectOptions`] (to [`Authenticator::enroll_with`],
//! [`Authenticator::open_with`] or [`portal::RelyingParty::connect_with`]) to
//! trust an organisation's own CA or to present a client certificate.

#![warn(missing_docs)]

mod challenge;
mod connect;
mod device;
mod error;
mod offline_code;
pub mod portal;
mod signer;
mod store;

pub use challenge::VerifiedChallenge;
pub use connect::ConnectOptions;
pub use device::{Answer, Authenticator, DeviceInfo};
pub use error::{reason, Error};
pub use offline_code::OfflineCode;
pub use signer::{Signer, SoftwareKey};
pub use store::{Account, FileKeyStore, KeyStore, MemoryKeyStore, SavedAccount};

pub use mfa_proto::{
    enrollment::{EnrollmentUri, EnrollmentUriError},
    push::PushNotice,
    signing::{KeyAlgorithm, UserVerification},
    v1::{ChallengeKind, ChallengeState, Decision, DenyReason, PushPlatform, SignInContext},
};

/// The generated `mfa.v1` messages and clients, for advanced use.
pub use mfa_proto::v1 as proto;

/// Reads a push notification's payload: the APNs `userInfo` or the FCM data
/// message, as JSON. Fetch the challenge it names with
/// [`Authenticator::pending_challenges`]; the push itself is not signed and
/// carries nothing to show beyond the tenant's name.
pub fn parse_push_payload(json: &str) -> Result<PushNotice, Error> {
    Ok(PushNotice::parse(json)?)
}

#[cfg(test)]
mod test_vectors {
    //! The committed signed-bytes vectors of `mfa-proto`.

    /// The vectors of one kind; fails the test if there are none.
    pub fn vectors(kind: &str) -> Vec<serde_json::Value> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../proto/testdata/signing-vectors.json"
        );
        let text = std::fs::read_to_string(path).expect("signing vectors are readable");
        let all: serde_json::Value = serde_json::from_str(&text).expect("vectors are JSON");
        let found: Vec<_> = all["vectors"]
            .as_array()
            .expect("a vectors array")
            .iter()
            .filter(|v| v["kind"] == kind)
            .cloned()
            .collect();
        assert!(!found.is_empty(), "no {kind} vectors in {path}");
        found
    }

    /// A hex string of a vector as bytes.
    pub fn bytes(value: &serde_json::Value) -> Vec<u8> {
        hex::decode(value.as_str().expect("a hex string")).expect("valid hex")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_push_payload_shapes_parse() {
        let notice = PushNotice::new("challenge-1", "tenant-1", "Example (External)");
        let apns = r#"{
            "aps": {"alert": {"title": "Approve sign-in?", "body": "Example (External)"},
                    "sound": "default", "mutable-content": 1, "category": "MFA_CHALLENGE"},
            "mfa": {"mfa_v": "1", "challenge_id": "challenge-1", "tenant_id": "tenant-1",
                    "tenant_display_name": "Example (External)"}
        }"#;
        let fcm = r#"{"mfa_v": "1", "challenge_id": "challenge-1", "tenant_id": "tenant-1",
                      "tenant_display_name": "Example (External)"}"#;
        assert_eq!(parse_push_payload(apns).unwrap(), notice);
        assert_eq!(parse_push_payload(fcm).unwrap(), notice);
    }

    #[test]
    fn unknown_push_payloads_are_errors() {
        assert!(matches!(
            parse_push_payload(r#"{"aps": {}}"#),
            Err(Error::PushPayload(_))
        ));
        let v2 = r#"{"mfa_v":"2","challenge_id":"c","tenant_id":"t","tenant_display_name":"x"}"#;
        assert!(matches!(parse_push_payload(v2), Err(Error::PushPayload(_))));
    }
}
