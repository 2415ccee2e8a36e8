//! Wire types of the MFA approval service (protobuf package `mfa.v1`) and the
//! signed-bytes protocol that the server and the SDK share.
//!
//! The signed bytes are specified in `docs/protocol.md`; [`signing`] builds
//! them, and `testdata/signing-vectors.json` pins them for other implementations.

pub mod enrollment;
pub mod push;
pub mod signing;
pub mod status;

/// Generated messages and gRPC clients/servers of `mfa.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("mfa.v1");
}

/// Encoded `FileDescriptorSet` of `mfa.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("mfa_descriptor");
