//! A small helper for relying parties (portals): enroll a user's phone, ask
//! for a sign-in approval, and wait for the outcome.

use mfa_proto::v1::{
    portal_service_client::PortalServiceClient, BeginEnrollmentRequest, BeginEnrollmentResponse,
    CancelChallengeRequest, Challenge, ChallengeState, CreateChallengeRequest, DeviceState,
    Enrollment, EnrollmentState, GetChallengeRequest, GetUserStatusRequest, GetUserStatusResponse,
    RecordTermsAcceptanceRequest, RecordTermsAcceptanceResponse, SignInContext,
    VerifyOfflineCodeRequest, VerifyOfflineCodeResponse, WatchChallengeRequest,
    WatchChallengeResponse, WatchEnrollmentRequest, WatchEnrollmentResponse,
};
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{interceptor::InterceptedService, Interceptor},
    transport::Channel,
    Streaming,
};

use crate::{ConnectOptions, Error};

/// Adds the portal API key to every request as `authorization: Bearer <key>`.
#[derive(Clone)]
pub struct BearerAuth {
    header: MetadataValue<Ascii>,
}

impl BearerAuth {
    /// Checks that the key can be sent in a header.
    pub fn new(api_key: &str) -> Result<Self, Error> {
        let header = format!("Bearer {api_key}")
            .parse()
            .map_err(|_| Error::InvalidApiKey)?;
        Ok(Self { header })
    }
}

impl std::fmt::Debug for BearerAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerAuth(<redacted>)")
    }
}

impl Interceptor for BearerAuth {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.header.clone());
        Ok(request)
    }
}

/// The generated PortalService client with the API key attached.
pub type PortalClient = PortalServiceClient<InterceptedService<Channel, BearerAuth>>;

/// A portal's connection to the MFA service. Cheap to clone; every method
/// takes `&self`, so one value can serve concurrent sign-ins.
#[derive(Debug, Clone)]
pub struct RelyingParty {
    client: PortalClient,
}

impl RelyingParty {
    /// Connects to the server at `url` with a portal API key.
    pub async fn connect(url: &str, api_key: &str) -> Result<Self, Error> {
        Self::connect_with(url, api_key, &ConnectOptions::default()).await
    }

    /// [`connect`](Self::connect) with connection settings: the server's CA
    /// and, when the server requires one, the portal's client certificate.
    pub async fn connect_with(
        url: &str,
        api_key: &str,
        options: &ConnectOptions,
    ) -> Result<Self, Error> {
        let auth = BearerAuth::new(api_key)?;
        let channel = options.connect(url).await?;
        Ok(Self {
            client: PortalServiceClient::with_interceptor(channel, auth),
        })
    }

    /// For advanced use: a clone of the underlying gRPC client.
    pub fn client(&self) -> PortalClient {
        self.client.clone()
    }

    /// Starts enrolling a phone for a user: the response carries the QR URI
    /// to show and the code for manual entry.
    pub async fn begin_enrollment(
        &self,
        user_id: &str,
        email: &str,
    ) -> Result<BeginEnrollmentResponse, Error> {
        let request = BeginEnrollmentRequest {
            user_id: user_id.to_owned(),
            email: email.to_owned(),
        };
        Ok(self.client().begin_enrollment(request).await?.into_inner())
    }

    /// Streams an enrollment's state: the current state at once, then every
    /// change, ending after a final state.
    pub async fn watch_enrollment(
        &self,
        enrollment_id: &str,
    ) -> Result<Streaming<WatchEnrollmentResponse>, Error> {
        let request = WatchEnrollmentRequest {
            enrollment_id: enrollment_id.to_owned(),
        };
        Ok(self.client().watch_enrollment(request).await?.into_inner())
    }

    /// Waits until the enrollment reaches a final state (verified, failed,
    /// expired or cancelled) and returns it. A watch the server ends at its
    /// longest duration, or with UNAVAILABLE as a replica shuts down, is
    /// opened again.
    pub async fn await_enrollment(&self, enrollment_id: &str) -> Result<Enrollment, Error> {
        follow_until(
            || self.watch_enrollment(enrollment_id),
            |message| message.enrollment,
            |enrollment| is_final_enrollment_state(enrollment.state()),
            "the enrollment watch ended before the enrollment finished",
        )
        .await
    }

    /// Asks the user's phone to approve a sign-in; show the returned
    /// challenge's `number` on the sign-in page.
    pub async fn start_sign_in(
        &self,
        user_id: &str,
        context: SignInContext,
    ) -> Result<Challenge, Error> {
        let request = CreateChallengeRequest {
            user_id: user_id.to_owned(),
            context: Some(context),
        };
        let response = self.client().create_challenge(request).await?.into_inner();
        response
            .challenge
            .ok_or(Error::Protocol("CreateChallenge returned no challenge"))
    }

    /// Reads a challenge's current state.
    pub async fn get_challenge(&self, challenge_id: &str) -> Result<Challenge, Error> {
        let request = GetChallengeRequest {
            challenge_id: challenge_id.to_owned(),
        };
        let response = self.client().get_challenge(request).await?.into_inner();
        response
            .challenge
            .ok_or(Error::Protocol("GetChallenge returned no challenge"))
    }

    /// Streams a challenge's state: the current state at once, then every
    /// change, ending after a final state.
    pub async fn watch_challenge(
        &self,
        challenge_id: &str,
    ) -> Result<Streaming<WatchChallengeResponse>, Error> {
        let request = WatchChallengeRequest {
            challenge_id: challenge_id.to_owned(),
        };
        Ok(self.client().watch_challenge(request).await?.into_inner())
    }

    /// Waits until the challenge leaves the pending state and returns it:
    /// approved, denied, expired, superseded or cancelled. A watch the server
    /// ends at its longest duration, or with UNAVAILABLE as a replica shuts
    /// down, is opened again.
    pub async fn await_outcome(&self, challenge_id: &str) -> Result<Challenge, Error> {
        follow_until(
            || self.watch_challenge(challenge_id),
            |message| message.challenge,
            |challenge| challenge.state() != ChallengeState::Pending,
            "the challenge watch ended while the challenge was pending",
        )
        .await
    }

    /// Cancels a pending challenge, e.g. when the person left the sign-in page.
    pub async fn cancel(&self, challenge_id: &str) -> Result<Challenge, Error> {
        let request = CancelChallengeRequest {
            challenge_id: challenge_id.to_owned(),
        };
        let response = self.client().cancel_challenge(request).await?.into_inner();
        response
            .challenge
            .ok_or(Error::Protocol("CancelChallenge returned no challenge"))
    }

    /// What the portal needs to decide the next step for a user: devices,
    /// block, accepted terms.
    pub async fn user_status(&self, user_id: &str) -> Result<GetUserStatusResponse, Error> {
        let request = GetUserStatusRequest {
            user_id: user_id.to_owned(),
        };
        Ok(self.client().get_user_status(request).await?.into_inner())
    }

    /// Records that the user accepted a version of the terms of use.
    pub async fn record_terms_acceptance(
        &self,
        user_id: &str,
        terms_version: &str,
    ) -> Result<RecordTermsAcceptanceResponse, Error> {
        let request = RecordTermsAcceptanceRequest {
            user_id: user_id.to_owned(),
            terms_version: terms_version.to_owned(),
        };
        Ok(self
            .client()
            .record_terms_acceptance(request)
            .await?
            .into_inner())
    }

    /// Checks the offline code a person typed (6 digits from the app, for
    /// when a push cannot reach the phone); `client_ip` is the person's
    /// address as the portal saw it, or empty. On success the person is
    /// signed in; each code works once. A refusal says why:
    /// [`Error::is_offline_code_refused`] (wrong or already used),
    /// [`Error::is_offline_code_unavailable`], [`Error::is_rate_limited`].
    /// Never log the code.
    pub async fn verify_offline_code(
        &self,
        user_id: &str,
        code: &str,
        client_ip: &str,
    ) -> Result<VerifyOfflineCodeResponse, Error> {
        let request = VerifyOfflineCodeRequest {
            user_id: user_id.to_owned(),
            code: code.to_owned(),
            client_ip: client_ip.to_owned(),
        };
        Ok(self
            .client()
            .verify_offline_code(request)
            .await?
            .into_inner())
    }
}

/// Whether a user has an active (enrolled and verified) device, from
/// [`RelyingParty::user_status`]: if so, the portal asks for a sign-in
/// approval ([`RelyingParty::start_sign_in`]); if not, it enrolls a phone
/// first ([`RelyingParty::begin_enrollment`]). Devices still pending
/// verification do not count.
pub fn has_active_device(status: &GetUserStatusResponse) -> bool {
    status
        .devices
        .iter()
        .any(|device| device.state() == DeviceState::Active)
}

/// Whether an enrollment can no longer change.
pub fn is_final_enrollment_state(state: EnrollmentState) -> bool {
    matches!(
        state,
        EnrollmentState::Verified
            | EnrollmentState::Failed
            | EnrollmentState::Expired
            | EnrollmentState::Cancelled
    )
}

/// Follows the watches `open` makes until `is_final` holds for a value
/// `extract` finds in a message. The server ends a watch at its longest
/// duration with DEADLINE_EXCEEDED; the watch is then opened again.
async fn follow_until<M, T, Open, Opened>(
    open: Open,
    extract: fn(M) -> Option<T>,
    is_final: fn(&T) -> bool,
    ended_early: &'static str,
) -> Result<T, Error>
where
    Open: Fn() -> Opened,
    Opened: std::future::Future<Output = Result<Streaming<M>, Error>>,
{
    loop {
        let mut stream = open().await?;
        let mut heard = false;
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    heard = true;
                    if let Some(value) = extract(message).filter(is_final) {
                        return Ok(value);
                    }
                }
                Ok(None) => return Err(Error::Protocol(ended_early)),
                Err(status) if status.code() == tonic::Code::DeadlineExceeded => break,
                // A replica shutting down ends its watches with UNAVAILABLE;
                // behind a load balancer the next watch reaches another one.
                // Only a watch that was open (it sends the current state at
                // once) is opened again, so a server that keeps failing ends
                // the wait with its error rather than a loop.
                Err(status) if status.code() == tonic::Code::Unavailable && heard => break,
                Err(status) => return Err(status.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mfa_proto::v1::Device;

    #[test]
    fn the_key_goes_in_the_authorization_header() {
        let mut auth = BearerAuth::new("pk_test_123").unwrap();
        let request = auth.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer pk_test_123"
        );
        assert!(!format!("{auth:?}").contains("pk_test"));
    }

    #[test]
    fn a_key_that_cannot_be_a_header_is_refused() {
        assert!(matches!(
            BearerAuth::new("line\nbreak"),
            Err(Error::InvalidApiKey)
        ));
    }

    #[test]
    fn only_an_active_device_counts() {
        let device = |state: DeviceState| Device {
            state: state.into(),
            ..Device::default()
        };
        let mut status = GetUserStatusResponse::default();
        assert!(!has_active_device(&status));
        status.devices = vec![device(DeviceState::PendingVerification)];
        assert!(!has_active_device(&status));
        status.devices.push(device(DeviceState::Active));
        assert!(has_active_device(&status));
    }

    #[test]
    fn final_enrollment_states() {
        assert!(is_final_enrollment_state(EnrollmentState::Verified));
        assert!(is_final_enrollment_state(EnrollmentState::Cancelled));
        assert!(!is_final_enrollment_state(EnrollmentState::WaitingForScan));
        assert!(!is_final_enrollment_state(
            EnrollmentState::DeviceRegistered
        ));
    }
}
