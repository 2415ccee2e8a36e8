//! The gRPC surface: each handler decodes its request into domain values
//! (rejecting bad input there, once), calls the domain, and encodes the result.

mod admin;
mod connection;
pub(crate) mod convert;
mod device;
mod framing;
pub(crate) mod portal;
mod stream_limit;

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
/// ([`mfa_proto::status::Reason::status_with`]); server faults are logged by
/// [`domain::Error::into_refusal`], which the HTTP/JSON face shares.
impl From<domain::Error> for Status {
    fn from(error: domain::Error) -> Self {
        let refusal = error.into_refusal();
        refusal
            .reason
            .status_with(refusal.message, refusal.metadata)
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
        .and_then(domain::bearer_secret);
    Ok(service
        .authenticate_key(secret, role, &peer(request))
        .await?)
}

/// The caller's address ([`ClientAddressLayer`] resolved it), for audit and
/// per-address limits.
fn peer<T>(request: &Request<T>) -> domain::Client {
    domain::Client::new(request.extensions().get::<ClientAddress>().copied())
}
