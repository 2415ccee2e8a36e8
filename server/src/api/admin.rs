//! `mfa.v1.AdminService`: what the tenant's administrators call.

use super::{authorize, convert};
use crate::{
    domain::{KeyHolder, Service},
    model::{Role, Tenant, TenantChanges},
};
use mfa_proto::v1::{admin_service_server::AdminService, *};
use tonic::{Request, Response, Status};

/// The admin service.
#[derive(Clone)]
pub struct AdminApi {
    service: Service,
}

impl AdminApi {
    /// Serves the admin API from `service`.
    pub fn new(service: Service) -> Self {
        Self { service }
    }

    async fn tenant<T>(&self, request: &Request<T>) -> Result<String, Status> {
        Ok(self.caller(request).await?.tenant_id)
    }

    /// The tenant and key of the administrator calling.
    async fn caller<T>(&self, request: &Request<T>) -> Result<KeyHolder, Status> {
        authorize(&self.service, request, Role::Admin).await
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_devices(
        &self,
        request: Request<ListDevicesRequest>,
    ) -> Result<Response<ListDevicesResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let devices = self
            .service
            .list_devices(&tenant, &request.into_inner().user_id)
            .await?;
        Ok(Response::new(ListDevicesResponse {
            devices: devices.iter().map(convert::device).collect(),
        }))
    }

    async fn revoke_device(
        &self,
        request: Request<RevokeDeviceRequest>,
    ) -> Result<Response<RevokeDeviceResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let device = self
            .service
            .revoke_device(&tenant, &request.into_inner().device_id)
            .await?;
        Ok(Response::new(RevokeDeviceResponse {
            device: Some(convert::device(&device)),
        }))
    }

    async fn reset_user_methods(
        &self,
        request: Request<ResetUserMethodsRequest>,
    ) -> Result<Response<ResetUserMethodsResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let counts = self
            .service
            .reset_user(&tenant, &request.into_inner().user_id)
            .await?;
        Ok(Response::new(ResetUserMethodsResponse {
            revoked_devices: counts.revoked_devices,
            cancelled_challenges: counts.cancelled_challenges,
            cancelled_enrollments: counts.cancelled_enrollments,
        }))
    }

    async fn unblock_user(
        &self,
        request: Request<UnblockUserRequest>,
    ) -> Result<Response<UnblockUserResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        self.service
            .unblock_user(&tenant, &request.into_inner().user_id)
            .await?;
        Ok(Response::new(UnblockUserResponse {}))
    }

    async fn delete_user(
        &self,
        request: Request<DeleteUserRequest>,
    ) -> Result<Response<DeleteUserResponse>, Status> {
        let caller = self.caller(&request).await?;
        let by = format!("admin key {}", caller.key_id);
        let counts = self
            .service
            .delete_user(&caller.tenant_id, &request.into_inner().user_id, &by)
            .await?;
        Ok(Response::new(DeleteUserResponse {
            user_found: counts.user_found,
            deleted_devices: counts.deleted_devices,
            deleted_challenges: counts.deleted_challenges,
            deleted_enrollments: counts.deleted_enrollments,
            cancelled_challenges: counts.cancelled_challenges,
            cancelled_enrollments: counts.cancelled_enrollments,
            anonymised_audit_events: counts.anonymised_audit_events,
        }))
    }

    async fn list_audit_events(
        &self,
        request: Request<ListAuditEventsRequest>,
    ) -> Result<Response<ListAuditEventsResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let r = request.into_inner();
        let (events, next_page_token) = self
            .service
            .audit_events(&tenant, &r.user_id, r.page_size, &r.page_token)
            .await?;
        Ok(Response::new(ListAuditEventsResponse {
            events: events.iter().map(convert::audit_event).collect(),
            next_page_token,
        }))
    }

    async fn get_tenant_settings(
        &self,
        request: Request<GetTenantSettingsRequest>,
    ) -> Result<Response<GetTenantSettingsResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let tenant = self.service.known_tenant(&tenant).await?;
        Ok(Response::new(GetTenantSettingsResponse {
            settings: Some(settings(&tenant)),
        }))
    }

    async fn update_tenant_settings(
        &self,
        request: Request<UpdateTenantSettingsRequest>,
    ) -> Result<Response<UpdateTenantSettingsResponse>, Status> {
        let tenant = self.tenant(&request).await?;
        let request = request.into_inner();
        let policy = match request.device_policy {
            Some(policy) => Some(convert::device_policy_in(policy)?),
            None => None,
        };
        let changes = TenantChanges {
            offline_codes_enabled: request.offline_codes_enabled,
            allowed_key_algorithms: policy.as_ref().map(|p| p.allowed_key_algorithms.clone()),
            user_verification: policy.map(|p| p.user_verification),
            ..Default::default()
        };
        let tenant = self.service.update_tenant(&tenant, &changes).await?;
        Ok(Response::new(UpdateTenantSettingsResponse {
            settings: Some(settings(&tenant)),
        }))
    }
}

/// The settings of a tenant that its administrators may change.
fn settings(tenant: &Tenant) -> TenantSettings {
    TenantSettings {
        offline_codes_enabled: tenant.offline_codes_enabled,
        device_policy: Some(convert::device_policy(&tenant.device_policy)),
    }
}
