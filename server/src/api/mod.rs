//! The gRPC surface: each handler decodes its request into domain values
//! (rejecting bad input there, once), calls the domain, and encodes the result.

mod admin;
mod connection;
mod convert;
mod device;
mod portal;
mod stream_limit;
mod watch;

pub use admin::AdminApi;
pub use connection::Connections;
pub use device::DeviceApi;
pub use portal::PortalApi;
pub use stream_limit::StreamLimitLayer;

use crate::{
    client_address::ClientAddress,
    domain::{self, Service},
    model::Role,
};
use tonic::{metadata::MetadataValue, Code, Request, Status};

/// Metadata key of the stable error reason.
pub const REASON_METADATA: &str = "mfa-reason";

impl From<domain::Error> for Status {
    fn from(error: domain::Error) -> Self {
        use domain::Error::*;
        let code = match &error {
            InvalidArgument(_) => Code::InvalidArgument,
            Unauthenticated { .. } => Code::Unauthenticated,
            PermissionDenied { .. } => Code::PermissionDenied,
            NotFound(_) => Code::NotFound,
            FailedPrecondition { .. } => Code::FailedPrecondition,
            ResourceExhausted { .. } => Code::ResourceExhausted,
            Unavailable(_) => Code::Unavailable,
            Internal(_) => Code::Internal,
        };
        match &error {
            Unavailable(source) => tracing::error!(error = %source, "store unavailable"),
            Internal(detail) => tracing::error!(detail, "internal error"),
            _ => {}
        }
        let mut status = Status::new(code, error.to_string());
        if let Some(reason) = error.reason() {
            status
                .metadata_mut()
                .insert(REASON_METADATA, MetadataValue::from_static(reason.as_str()));
        }
        status
    }
}

/// The tenant of the request's API key, which must have `role`.
async fn authorize<T>(
    service: &Service,
    request: &Request<T>,
    role: Role,
) -> Result<String, Status> {
    let secret = request
        .metadata()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    Ok(service
        .authenticate_key(secret, role, &peer(request))
        .await?)
}

/// The caller's address ([`ClientAddressLayer`] resolved it), for audit and
/// per-address limits.
fn peer<T>(request: &Request<T>) -> domain::Client {
    match request.extensions().get::<ClientAddress>() {
        Some(address) => domain::Client {
            address: address.to_string(),
            throttle_key: address.throttle_key(),
        },
        None => domain::Client::unknown(),
    }
}
