//! Wire types of the MFA approval service (protobuf package `mfa.v1`) and the
//! signed-bytes protocol that the server and the SDK share.
//!
//! The signed bytes are specified in `docs/protocol.md`; [`signing`] builds
//! them, and `testdata/signing-vectors.json` pins them for other implementations.
//! [`offline_code`] computes the offline codes (RFC 6238) that the server
//! checks and the SDK shows.

pub mod codec;
pub mod enrollment;
pub mod offline_code;
pub mod push;
pub mod signing;
pub mod status;

/// Generated messages and gRPC clients/servers of `mfa.v1`.
#[allow(clippy::all, missing_docs)]
pub mod v1 {
    tonic::include_proto!("mfa.v1");
    pub use crate::servers::*;
}

/// The generated servers, which decode requests with [`codec::ServerCodec`]
/// (see `build.rs`); [`v1`] re-exports them beside the messages and clients.
#[allow(clippy::all, missing_docs)]
mod servers {
    include!(concat!(env!("OUT_DIR"), "/servers/mfa.v1.rs"));
}

/// Encoded `FileDescriptorSet` of `mfa.v1`, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("mfa_descriptor");

#[cfg(test)]
mod tests {
    use prost::Message;

    /// The server refuses a body without a message on every `mfa.v1` method
    /// (its request framing check): right only while none streams requests.
    #[test]
    fn no_method_streams_its_requests() {
        let set = prost_types::FileDescriptorSet::decode(super::FILE_DESCRIPTOR_SET).unwrap();
        let methods: Vec<_> = set
            .file
            .iter()
            .flat_map(|f| &f.service)
            .flat_map(|s| &s.method)
            .collect();
        assert!(methods.len() >= 18, "{}", methods.len());
        for method in methods {
            assert!(!method.client_streaming(), "{:?}", method.name);
        }
    }
}
