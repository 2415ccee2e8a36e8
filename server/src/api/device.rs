//! `mfa.v1.DeviceService`: what the phone app calls.

use super::{convert, peer};
use crate::domain::{self, Answer, Decision, DeviceCall, NewDevice, Proof, Service};
use mfa_proto::v1::{device_service_server::DeviceService, *};
use tonic::{Request, Response, Status};

/// The device service.
#[derive(Clone)]
pub struct DeviceApi {
    service: Service,
}

impl DeviceApi {
    /// Serves the device API from `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }
}

/// Decodes a request's proof for `method`, made by `client`.
fn call<'a>(
    proof: &'a Option<DeviceProof>,
    method: &'a str,
    client: &'a domain::Client,
) -> Result<DeviceCall<'a>, domain::Error> {
    let proof = proof
        .as_ref()
        .ok_or_else(|| domain::Error::invalid("proof is required"))?;
    Ok(DeviceCall {
        proof: Proof {
            device_id: &proof.device_id,
            timestamp_ms: proof.timestamp_ms,
            nonce: &proof.nonce,
            signature: &proof.signature,
        },
        method,
        client,
    })
}

#[tonic::async_trait]
impl DeviceService for DeviceApi {
    async fn complete_enrollment(
        &self,
        request: Request<CompleteEnrollmentRequest>,
    ) -> Result<Response<CompleteEnrollmentResponse>, Status> {
        let peer = peer(&request);
        let r = request.into_inner();
        let (push_platform, push_platform_name) = convert::push_platform(r.push_platform)?;
        let registered = self
            .service
            .complete_enrollment(NewDevice {
                activation_code: &r.activation_code,
                key_algorithm: convert::key_algorithm(r.key_algorithm)?,
                public_key: &r.public_key,
                push_platform,
                push_platform_name,
                push_token: &r.push_token,
                device_name: &r.device_name,
                signature: &r.signature,
                client: &peer,
            })
            .await?;
        Ok(Response::new(CompleteEnrollmentResponse {
            device_id: registered.device.id,
            tenant_id: registered.tenant.id,
            tenant_display_name: registered.tenant.display_name,
            user_email: registered.user_email,
            server_public_key: self.service.identity().public_key().to_vec(),
            verification_challenge: Some(convert::pending(&registered.verification)),
            offline_code_secret: registered.offline_code_secret.unwrap_or_default(),
        }))
    }

    async fn list_pending_challenges(
        &self,
        request: Request<ListPendingChallengesRequest>,
    ) -> Result<Response<ListPendingChallengesResponse>, Status> {
        let peer = peer(&request);
        let r = request.into_inner();
        let pending = self
            .service
            .pending_challenges(call(&r.proof, "ListPendingChallenges", &peer)?)
            .await?;
        Ok(Response::new(ListPendingChallengesResponse {
            challenges: pending.iter().map(convert::pending).collect(),
        }))
    }

    async fn respond_to_challenge(
        &self,
        request: Request<RespondToChallengeRequest>,
    ) -> Result<Response<RespondToChallengeResponse>, Status> {
        let peer = peer(&request);
        let r = request.into_inner();
        let wire = mfa_proto::v1::Decision::try_from(r.decision)
            .unwrap_or(mfa_proto::v1::Decision::Unspecified);
        let decision = match wire {
            mfa_proto::v1::Decision::Approve => Decision::Approve,
            mfa_proto::v1::Decision::Deny => Decision::Deny,
            mfa_proto::v1::Decision::ReportFraud => Decision::ReportFraud,
            mfa_proto::v1::Decision::Unspecified => {
                return Err(domain::Error::invalid(
                    "decision must be APPROVE, DENY or REPORT_FRAUD",
                )
                .into())
            }
        };
        let challenge = self
            .service
            .respond(Answer {
                device_id: &r.device_id,
                challenge_id: &r.challenge_id,
                decision,
                decision_name: wire.as_str_name(),
                typed_number: &r.typed_number,
                user_verification: convert::user_verification(r.user_verification)?,
                signature: &r.signature,
                client: &peer,
            })
            .await?;
        Ok(Response::new(convert::answer(&challenge)))
    }

    async fn update_push_token(
        &self,
        request: Request<UpdatePushTokenRequest>,
    ) -> Result<Response<UpdatePushTokenResponse>, Status> {
        let peer = peer(&request);
        let r = request.into_inner();
        let (platform, platform_name) = convert::push_platform(r.push_platform)?;
        self.service
            .update_push_token(
                call(&r.proof, "UpdatePushToken", &peer)?,
                platform,
                platform_name,
                &r.push_token,
            )
            .await?;
        Ok(Response::new(UpdatePushTokenResponse {}))
    }

    async fn remove_device(
        &self,
        request: Request<RemoveDeviceRequest>,
    ) -> Result<Response<RemoveDeviceResponse>, Status> {
        let peer = peer(&request);
        let r = request.into_inner();
        self.service
            .remove_device(call(&r.proof, "RemoveDevice", &peer)?)
            .await?;
        Ok(Response::new(RemoveDeviceResponse {}))
    }
}
