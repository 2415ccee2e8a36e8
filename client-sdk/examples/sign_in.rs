//! The whole journey against a running server: a portal enrolls a phone for
//! "demo-user", then asks it to approve a sign-in by number matching.
//!
//! ```text
//! MFA_PORTAL_KEY=<portal API key> cargo run -p mfa-sdk --example sign_in
//! ```
//!
//! `MFA_SERVER_URL` defaults to `http://127.0.0.1:50051`. Both sides run in
//! this one process: `portal` plays the relying party, `phone` the app.

use mfa_sdk::{
    portal::RelyingParty,
    proto::{EnrollmentState, WatchEnrollmentResponse},
    Authenticator, ChallengeState, DeviceInfo, EnrollmentUri, MemoryKeyStore, PushPlatform,
    SignInContext,
};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const USER_ID: &str = "demo-user";
const EMAIL: &str = "demo@example.com";

#[tokio::main]
async fn main() -> Result<()> {
    let server_url =
        std::env::var("MFA_SERVER_URL").unwrap_or_else(|_| "http://127.0.0.1:50051".to_owned());
    let portal_key = std::env::var("MFA_PORTAL_KEY").map_err(|_| {
        "MFA_PORTAL_KEY is not set: set it to a portal API key of the tenant to sign in to"
    })?;

    let portal = RelyingParty::connect(&server_url, &portal_key).await?;

    // Portal: show a QR code and watch the enrollment.
    let begin = portal.begin_enrollment(USER_ID, EMAIL).await?;
    println!("portal: scan this QR code: {}", begin.qr_uri);
    println!(
        "portal: or type the code {} at {}",
        begin.manual_code, begin.server_url
    );
    let mut watch = portal.watch_enrollment(&begin.enrollment_id).await?;

    // Phone: scan the QR code and enroll.
    let store = MemoryKeyStore::new();
    let uri = EnrollmentUri::parse(&begin.qr_uri)?;
    let info = DeviceInfo {
        name: "Demo phone".to_owned(),
        push_platform: PushPlatform::None,
        push_token: String::new(),
    };
    let (mut phone, verification) = Authenticator::enroll(&uri, info, &store).await?;
    let account = phone.account();
    println!(
        "phone: enrolled as device {} of {} for {}",
        account.device_id, account.tenant_display_name, account.user_email
    );

    // Portal: the device registered, so show the verification number.
    let number = loop {
        match watch.message().await? {
            Some(WatchEnrollmentResponse {
                enrollment: Some(enrollment),
            }) if enrollment.state() == EnrollmentState::DeviceRegistered => {
                break enrollment.verification_number;
            }
            Some(WatchEnrollmentResponse {
                enrollment: Some(enrollment),
            }) if enrollment.state() != EnrollmentState::WaitingForScan => {
                return Err(format!(
                    "the enrollment ended as {} before the device registered",
                    enrollment.state().as_str_name()
                )
                .into());
            }
            Some(_) => continue,
            None => return Err("the enrollment watch ended before the device registered".into()),
        }
    };
    println!("portal: type {number} in the app to finish");

    // Phone: the person types the number.
    let answer = phone.approve(&verification, &number).await?;
    println!("phone: verification {}", answer.state.as_str_name());
    let enrollment = portal.await_enrollment(&begin.enrollment_id).await?;
    println!("portal: enrollment {}", enrollment.state().as_str_name());
    if enrollment.state() != EnrollmentState::Verified {
        return Err("the enrollment was not verified".into());
    }

    // Portal: someone signs in as demo-user.
    let context = SignInContext {
        application_name: "Demo portal".to_owned(),
        client_ip: "203.0.113.7".to_owned(),
        location: "Tokyo, JP".to_owned(),
        message: "Sign-in from the sign_in example".to_owned(),
    };
    let challenge = portal.start_sign_in(USER_ID, context).await?;
    println!("portal: sign-in page shows the number {}", challenge.number);

    // Phone: fetch the challenge, show its verified context, approve.
    let pending = phone.pending_challenges().await?;
    let on_phone = pending
        .iter()
        .find(|c| c.challenge_id == challenge.challenge_id)
        .ok_or("the sign-in challenge is not pending on the phone")?;
    println!(
        "phone: {} ({}) asks {} to approve a sign-in to {} from {} ({}): \"{}\"; \
         type the {}-digit number",
        on_phone.tenant_display_name,
        on_phone.kind.as_str_name(),
        on_phone.user_email,
        on_phone.application_name,
        on_phone.location,
        on_phone.client_ip,
        on_phone.message,
        on_phone.number_length,
    );
    let answer = phone.approve(on_phone, &challenge.number).await?;
    println!("phone: answer {}", answer.state.as_str_name());

    // Portal: the outcome decides whether the sign-in goes on.
    let outcome = portal.await_outcome(&challenge.challenge_id).await?;
    println!("portal: sign-in {}", outcome.state().as_str_name());
    if outcome.state() != ChallengeState::Approved {
        return Err("the sign-in was not approved".into());
    }
    Ok(())
}
