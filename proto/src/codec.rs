//! The codec of the generated servers (selected in `build.rs` through
//! `codec_path`): tonic-prost's, except that a request body that does not
//! decode is the caller's error.
//!
//! tonic-prost answers such a body `INTERNAL`, the code of a server fault,
//! so a few junk calls would page whoever watches server errors and hide
//! real ones. Here it is `INVALID_ARGUMENT` with the reason
//! [`MalformedRequest`](crate::status::Reason::MalformedRequest). The
//! generated clients keep tonic-prost's codec: a response that does not
//! decode is not the client's mistake.

use crate::status::Reason;
use prost::{bytes::Buf, Message, Name};
use std::marker::PhantomData;
use tonic::{
    codec::{Codec, DecodeBuf, Decoder},
    Status,
};
use tonic_prost::{ProstCodec, ProstEncoder};

/// `ErrorInfo.metadata` key of a malformed request: the protobuf message type
/// that the body should have been, e.g. `mfa.v1.CreateChallengeRequest`.
pub const MESSAGE_TYPE: &str = "message_type";

/// Encodes responses (`T`) as tonic-prost does; decodes requests (`U`) with
/// [`RequestDecoder`].
#[derive(Debug, Clone)]
pub struct ServerCodec<T, U> {
    prost: ProstCodec<T, U>,
}

// Written out: a derived `Default` would require `T: Default, U: Default`.
impl<T, U> Default for ServerCodec<T, U> {
    fn default() -> Self {
        Self {
            prost: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for ServerCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Name + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = RequestDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.prost.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder(PhantomData)
    }
}

/// Decodes a request message `U`; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct RequestDecoder<U>(PhantomData<U>);

impl<U: Message + Name + Default> Decoder for RequestDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        decode_request(buf).map(Some)
    }
}

/// Decodes a request message `U` from `body` as the servers do: one that
/// does not decode is refused `INVALID_ARGUMENT` (`MALFORMED_REQUEST`), with
/// prost's account of which field is wrong and how, never the bytes.
pub fn decode_request<U: Message + Name + Default>(body: impl Buf) -> Result<U, Status> {
    U::decode(body).map_err(|error| {
        let name = U::full_name();
        Reason::MalformedRequest.status_with(
            format!("request body does not decode as {name}: {error}"),
            [(MESSAGE_TYPE, name)],
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::CreateChallengeRequest;
    use tonic::Code;
    use tonic_types::StatusExt;

    fn decode(bytes: &[u8]) -> Result<CreateChallengeRequest, Status> {
        decode_request(bytes)
    }

    #[test]
    fn undecodable_bodies_are_invalid_arguments_that_name_the_type() {
        for (what, body) in [
            ("bad varint", &[0xff; 11][..]),
            ("invalid UTF-8", &[0x0a, 0x02, 0xc3, 0x28][..]),
            ("wrong wire type", &[0x0d, 0, 0, 0, 0][..]),
            ("truncated length", &[0x0a, 0x10, b'u'][..]),
        ] {
            let status = decode(body).expect_err(what);
            assert_eq!(status.code(), Code::InvalidArgument, "{what}");
            assert!(
                status
                    .message()
                    .starts_with("request body does not decode as mfa.v1.CreateChallengeRequest: "),
                "{what}: {}",
                status.message()
            );
            let info = status.get_details_error_info().expect("ErrorInfo");
            assert_eq!(info.reason, "MALFORMED_REQUEST", "{what}");
            assert_eq!(info.metadata[MESSAGE_TYPE], "mfa.v1.CreateChallengeRequest");
        }
    }
}
