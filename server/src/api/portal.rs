//! `mfa.v1.PortalService`: what the relying party calls.
//!
//! The operations below [`PortalApi`] read and watch challenges and
//! enrollments as `mfa.v1` messages; the HTTP/JSON face
//! ([`crate::http`]) calls the same ones and sends those messages as JSON,
//! so the two faces cannot answer differently.

use super::{authorize, convert};
use crate::{
    domain::{self, OfflineCodeAttempt, Service},
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

/// The answer of BeginEnrollment for the tenant's user.
pub(crate) async fn begin_enrollment(
    service: &Service,
    tenant: &str,
    user_id: &str,
    email: &str,
) -> domain::Result<BeginEnrollmentResponse> {
    let started = service.begin_enrollment(tenant, user_id, email).await?;
    Ok(BeginEnrollmentResponse {
        enrollment_id: started.enrollment.id,
        qr_uri: started.qr_uri,
        manual_code: started.manual_code,
        server_url: started.server_url,
        expire_time: Some(convert::timestamp(started.enrollment.expires_at)),
    })
}

/// An enrollment of the tenant with the number the portal shows, if any.
pub(crate) async fn enrollment(
    service: &Service,
    tenant: &str,
    id: &str,
) -> domain::Result<Enrollment> {
    let enrollment = service.enrollment(tenant, id).await?;
    let number = service.verification_number(&enrollment).await?;
    Ok(convert::enrollment(&enrollment, number))
}

/// A challenge of the tenant with how its push notifications fared.
pub(crate) async fn challenge(
    service: &Service,
    tenant: &str,
    id: &str,
) -> domain::Result<Challenge> {
    let (challenge, deliveries) = service.challenge_with_deliveries(tenant, id).await?;
    Ok(convert::challenge(&challenge, &deliveries))
}

/// Creates a sign-in challenge for the tenant's user.
pub(crate) async fn create_challenge(
    service: &Service,
    tenant: &str,
    user_id: &str,
    context: Option<SignInContext>,
) -> domain::Result<Challenge> {
    let challenge = service
        .create_challenge(tenant, user_id, convert::sign_in_context(context))
        .await?;
    Ok(convert::challenge(&challenge, &[]))
}

/// Cancels a pending challenge of the tenant.
pub(crate) async fn cancel_challenge(
    service: &Service,
    tenant: &str,
    id: &str,
) -> domain::Result<Challenge> {
    let challenge = service.cancel_challenge(tenant, id).await?;
    let deliveries = service.store().list_deliveries(&challenge.id).await?;
    Ok(convert::challenge(&challenge, &deliveries))
}

/// The answer of GetUserStatus for the tenant's user.
pub(crate) async fn user_status(
    service: &Service,
    tenant: &str,
    user_id: &str,
) -> domain::Result<GetUserStatusResponse> {
    let status = service.user_status(tenant, user_id).await?;
    Ok(GetUserStatusResponse {
        user_id: status.user_id,
        email: status.email,
        devices: status.devices.iter().map(convert::device).collect(),
        blocked: status.blocked_until.is_some(),
        blocked_until: status.blocked_until.map(convert::timestamp),
        accepted_terms_version: status.terms_version.unwrap_or_default(),
        terms_accept_time: status.terms_accepted_at.map(convert::timestamp),
    })
}

/// Checks an offline code typed by the tenant's user.
pub(crate) async fn verify_offline_code(
    service: &Service,
    tenant: &str,
    request: &VerifyOfflineCodeRequest,
) -> domain::Result<VerifyOfflineCodeResponse> {
    let attempt = OfflineCodeAttempt {
        user_id: &request.user_id,
        code: &request.code,
        client_ip: &request.client_ip,
    };
    let verified = service.verify_offline_code(tenant, &attempt).await?;
    Ok(VerifyOfflineCodeResponse {
        device_id: verified.device_id,
        verify_time: Some(convert::timestamp(verified.at)),
    })
}

/// Records the tenant's user's acceptance of a terms version.
pub(crate) async fn record_terms(
    service: &Service,
    tenant: &str,
    user_id: &str,
    version: &str,
) -> domain::Result<RecordTermsAcceptanceResponse> {
    let at = service.record_terms(tenant, user_id, version).await?;
    Ok(RecordTermsAcceptanceResponse {
        accepted_terms_version: version.to_owned(),
        accept_time: Some(convert::timestamp(at)),
    })
}

/// A stream of watch updates.
pub(crate) type Updates<T> = ReceiverStream<domain::Result<T>>;

/// Follows an enrollment of the tenant (see [`domain::follow`]). Validates
/// and checks ownership before the stream starts, so that those errors are
/// the call's own.
pub(crate) async fn watch_enrollment(
    service: &Service,
    tenant: &str,
    id: &str,
) -> domain::Result<Updates<Enrollment>> {
    service.enrollment(tenant, id).await?;
    let slot = service.open_watch(tenant)?;
    let (for_fetch, tenant, id) = (service.clone(), tenant.to_owned(), id.to_owned());
    let targets = vec![Change::Enrollment(id.clone())];
    let fetch = move || {
        let (service, tenant, id) = (for_fetch.clone(), tenant.clone(), id.clone());
        async move { enrollment(&service, &tenant, &id).await }
    };
    Ok(domain::follow(
        service,
        slot,
        targets,
        fetch,
        convert::is_terminal_enrollment,
    ))
}

/// Follows a challenge of the tenant, like [`watch_enrollment`].
pub(crate) async fn watch_challenge(
    service: &Service,
    tenant: &str,
    id: &str,
) -> domain::Result<Updates<Challenge>> {
    service.challenge(tenant, id).await?;
    let slot = service.open_watch(tenant)?;
    let (for_fetch, tenant, id) = (service.clone(), tenant.to_owned(), id.to_owned());
    let targets = vec![Change::Challenge(id.clone())];
    let fetch = move || {
        let (service, tenant, id) = (for_fetch.clone(), tenant.clone(), id.clone());
        async move { challenge(&service, &tenant, &id).await }
    };
    Ok(domain::follow(
        service,
        slot,
        targets,
        fetch,
        convert::is_terminal_challenge,
    ))
}

type Watch<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

fn boxed<T: Send + 'static, U: 'static>(updates: Updates<T>, wrap: fn(T) -> U) -> Watch<U> {
    Box::pin(updates.map(move |item| item.map(wrap).map_err(Status::from)))
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
        let begun = begin_enrollment(&self.service, &tenant, &r.user_id, &r.email).await?;
        Ok(Response::new(begun))
    }

    async fn watch_enrollment(
        &self,
        request: Request<WatchEnrollmentRequest>,
    ) -> Result<Response<Self::WatchEnrollmentStream>, Status> {
        let tenant = self.tenant(&request).await?;
        let id = request.into_inner().enrollment_id;
        let updates = watch_enrollment(&self.service, &tenant, &id).await?;
        Ok(Response::new(boxed(updates, |e| WatchEnrollmentResponse {
            enrollment: Some(e),
        })))
    }

    async fn create_challenge(
        &self,
        request: Request<CreateChallengeRequest>,
    ) -> Result<Response<CreateChallengeResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let r = request.into_inner();
        let challenge = create_challenge(&self.service, &tenant, &r.user_id, r.context).await?;
        Ok(Response::new(CreateChallengeResponse {
            challenge: Some(challenge),
        }))
    }

    async fn get_challenge(
        &self,
        request: Request<GetChallengeRequest>,
    ) -> Result<Response<GetChallengeResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let id = request.into_inner().challenge_id;
        Ok(Response::new(GetChallengeResponse {
            challenge: Some(challenge(&self.service, &tenant, &id).await?),
        }))
    }

    async fn watch_challenge(
        &self,
        request: Request<WatchChallengeRequest>,
    ) -> Result<Response<Self::WatchChallengeStream>, Status> {
        let tenant = self.tenant(&request).await?;
        let id = request.into_inner().challenge_id;
        let updates = watch_challenge(&self.service, &tenant, &id).await?;
        Ok(Response::new(boxed(updates, |c| WatchChallengeResponse {
            challenge: Some(c),
        })))
    }

    async fn cancel_challenge(
        &self,
        request: Request<CancelChallengeRequest>,
    ) -> Result<Response<CancelChallengeResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let id = request.into_inner().challenge_id;
        Ok(Response::new(CancelChallengeResponse {
            challenge: Some(cancel_challenge(&self.service, &tenant, &id).await?),
        }))
    }

    async fn get_user_status(
        &self,
        request: Request<GetUserStatusRequest>,
    ) -> Result<Response<GetUserStatusResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let user_id = request.into_inner().user_id;
        Ok(Response::new(
            user_status(&self.service, &tenant, &user_id).await?,
        ))
    }

    async fn record_terms_acceptance(
        &self,
        request: Request<RecordTermsAcceptanceRequest>,
    ) -> Result<Response<RecordTermsAcceptanceResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let r = request.into_inner();
        Ok(Response::new(
            record_terms(&self.service, &tenant, &r.user_id, &r.terms_version).await?,
        ))
    }

    async fn verify_offline_code(
        &self,
        request: Request<VerifyOfflineCodeRequest>,
    ) -> Result<Response<VerifyOfflineCodeResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let r = request.into_inner();
        let verified = verify_offline_code(&self.service, &tenant, &r).await?;
        Ok(Response::new(verified))
    }
}
