//! The gRPC surface: each handler decodes its request into domain values
//! (rejecting bad input there, once), calls the domain, and encodes the result.

mod admin;
mod connection;
mod convert;
mod device;
mod framing;
mod portal;
mod stream_limit;
mod watch;

pub use admin::AdminApi;
pub use connection::Connections;
pub use device::DeviceApi;
pub use framing::RequestFramingLayer;
pub use portal::PortalApi;
pub use stream_limit::StreamLimitLayer;

use crate::{
    client_address::ClientAddress,
    domain::{self, Service},
    model::Role,
};
use tonic::{Request, Status};

/// The one place where domain errors become statuses: the reason gives the
/// code, `ErrorInfo` and the `mfa-reason` metadata
/// ([`mfa_proto::status::Reason::status_with`]). Server faults are logged
/// here, and the caller learns only that there was one.
impl From<domain::Error> for Status {
    fn from(error: domain::Error) -> Self {
        let message = error.to_string();
        match error {
            domain::Error::Refused {
                reason, metadata, ..
            } => reason.status_with(message, metadata),
            domain::Error::Unavailable(ref source) => {
                tracing::error!(error = %source, "store unavailable");
                error.reason().status(message)
            }
            domain::Error::Internal(ref detail) => {
                tracing::error!(detail, "internal error");
                error.reason().status(message)
            }
        }
    }
}

/// The holder of the request's API key, which must have `role`.
async fn authorize<T>(
    service: &Service,
    request: &Request<T>,
    role: Role,
) -> Result<domain::KeyHolder, Status> {
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
    domain::Client::new(request.extensions().get::<ClientAddress>().copied())
}
