//! `mfa.v1.PortalService`: what the relying party calls.

use super::{authorize, convert, watch};
use crate::{
    domain::{OfflineCodeAttempt, Service},
    events::Change,
    model::Role,
};
use mfa_proto::v1::{portal_service_server::PortalService, *};
use tokio_stream::{wrappers::ReceiverStream, StreamExt};
use tonic::{Request, Response, Status};

/// The portal service.
#[derive(Clone)]
pub struct PortalApi {
    service: Service,
}

impl PortalApi {
    /// Serves the portal API from `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }

    async fn tenant<T>(&self, request: &Request<T>) -> Result<String, Status> {
        Ok(authorize(&self.service, request, Role::Portal)
            .await?
            .tenant_id)
    }
}

type Watch<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

fn boxed<T: Send + 'static, U: 'static>(
    stream: ReceiverStream<Result<T, Status>>,
    wrap: fn(T) -> U,
) -> Watch<U> {
    Box::pin(stream.map(move |item| item.map(wrap)))
}

#[tonic::async_trait]
impl PortalService for PortalApi {
    type WatchEnrollmentStream = Watch<WatchEnrollmentResponse>;
    type WatchChallengeStream = Watch<WatchChallengeResponse>;

    async fn begin_enrollment(
        &self,
        request: Request<BeginEnrollmentRequest>,
    ) -> Result<Response<BeginEnrollmentResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let r = request.into_inner();
        let started = self
            .service
            .begin_enrollment(&tenant, &r.user_id, &r.email)
            .await?;
        Ok(Response::new(BeginEnrollmentResponse {
            enrollment_id: started.enrollment.id,
            qr_uri: started.qr_uri,
            manual_code: started.manual_code,
            server_url: started.server_url,
            expire_time: Some(convert::timestamp(started.enrollment.expires_at)),
        }))
    }

    async fn watch_enrollment(
        &self,
        request: Request<WatchEnrollmentRequest>,
    ) -> Result<Response<Self::WatchEnrollmentStream>, Status> {
        let tenant = self.tenant(&request).await?;
        let id = request.into_inner().enrollment_id;
        // Validate and check ownership before streaming, so errors come back as the call's status.
        self.service.enrollment(&tenant, &id).await?;
        let slot = self.service.open_watch(&tenant)?;
        let service = self.service.clone();
        let target = Change::Enrollment(id.clone());
        let fetch = move || {
            let (service, tenant, id) = (service.clone(), tenant.clone(), id.clone());
            async move {
                let enrollment = service.enrollment(&tenant, &id).await?;
                let number = service.verification_number(&enrollment).await?;
                Ok(convert::enrollment(&enrollment, number))
            }
        };
        let stream = watch::follow(
            &self.service,
            slot,
            target,
            fetch,
            convert::is_terminal_enrollment,
        );
        Ok(Response::new(boxed(stream, |e| WatchEnrollmentResponse {
            enrollment: Some(e),
        })))
    }

    async fn create_challenge(
        &self,
        request: Request<CreateChallengeRequest>,
    ) -> Result<Response<CreateChallengeResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let r = request.into_inner();
        let challenge = self
            .service
            .create_challenge(&tenant, &r.user_id, convert::sign_in_context(r.context))
            .await?;
        Ok(Response::new(CreateChallengeResponse {
            challenge: Some(convert::challenge(&challenge, &[])),
        }))
    }

    async fn get_challenge(
        &self,
        request: Request<GetChallengeRequest>,
    ) -> Result<Response<GetChallengeResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let (challenge, deliveries) = self
            .service
            .challenge_with_deliveries(&tenant, &request.into_inner().challenge_id)
            .await?;
        Ok(Response::new(GetChallengeResponse {
            challenge: Some(convert::challenge(&challenge, &deliveries)),
        }))
    }

    async fn watch_challenge(
        &self,
        request: Request<WatchChallengeRequest>,
    ) -> Result<Response<Self::WatchChallengeStream>, Status> {
        let tenant = self.tenant(&request).await?;
        let id = request.into_inner().challenge_id;
        self.service.challenge(&tenant, &id).await?;
        let slot = self.service.open_watch(&tenant)?;
        let service = self.service.clone();
        let target = Change::Challenge(id.clone());
        let fetch = move || {
            let (service, tenant, id) = (service.clone(), tenant.clone(), id.clone());
            async move {
                let (challenge, deliveries) =
                    service.challenge_with_deliveries(&tenant, &id).await?;
                Ok(convert::challenge(&challenge, &deliveries))
            }
        };
        let stream = watch::follow(
            &self.service,
            slot,
            target,
            fetch,
            convert::is_terminal_challenge,
        );
        Ok(Response::new(boxed(stream, |c| WatchChallengeResponse {
            challenge: Some(c),
        })))
    }

    async fn cancel_challenge(
        &self,
        request: Request<CancelChallengeRequest>,
    ) -> Result<Response<CancelChallengeResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let challenge = self
            .service
            .cancel_challenge(&tenant, &request.into_inner().challenge_id)
            .await?;
        let deliveries = self
            .service
            .store()
            .list_deliveries(&challenge.id)
            .await
            .map_err(crate::domain::Error::from)?;
        Ok(Response::new(CancelChallengeResponse {
            challenge: Some(convert::challenge(&challenge, &deliveries)),
        }))
    }

    async fn get_user_status(
        &self,
        request: Request<GetUserStatusRequest>,
    ) -> Result<Response<GetUserStatusResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let status = self
            .service
            .user_status(&tenant, &request.into_inner().user_id)
            .await?;
        Ok(Response::new(GetUserStatusResponse {
            user_id: status.user_id,
            email: status.email,
            devices: status.devices.iter().map(convert::device).collect(),
            blocked: status.blocked_until.is_some(),
            blocked_until: status.blocked_until.map(convert::timestamp),
            accepted_terms_version: status.terms_version.unwrap_or_default(),
            terms_accept_time: status.terms_accepted_at.map(convert::timestamp),
        }))
    }

    async fn record_terms_acceptance(
        &self,
        request: Request<RecordTermsAcceptanceRequest>,
    ) -> Result<Response<RecordTermsAcceptanceResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let r = request.into_inner();
        let at = self
            .service
            .record_terms(&tenant, &r.user_id, &r.terms_version)
            .await?;
        Ok(Response::new(RecordTermsAcceptanceResponse {
            accepted_terms_version: r.terms_version,
            accept_time: Some(convert::timestamp(at)),
        }))
    }

    async fn verify_offline_code(
        &self,
        request: Request<VerifyOfflineCodeRequest>,
    ) -> Result<Response<VerifyOfflineCodeResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let r = request.into_inner();
        let verified = self
            .service
            .verify_offline_code(
                &tenant,
                &OfflineCodeAttempt {
                    user_id: &r.user_id,
                    code: &r.code,
                    client_ip: &r.client_ip,
                },
            )
            .await?;
        Ok(Response::new(VerifyOfflineCodeResponse {
            device_id: verified.device_id,
            verify_time: Some(convert::timestamp(verified.at)),
        }))
    }
}
