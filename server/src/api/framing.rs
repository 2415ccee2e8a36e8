//! The gRPC framing of request bodies, checked as tonic reads them.
//!
//! A body is a sequence of messages, each a 5-byte prefix (a compressed
//! flag, then the length, big-endian) and that many bytes. tonic answers a
//! body that ends inside a message, one with no message where the method
//! needs one, and a compressed flag without an encoding `INTERNAL`: the code
//! of a server fault, so that junk from any client would page whoever
//! watches server errors. Those are the caller's mistakes, refused here as
//! `INVALID_ARGUMENT` (`MALFORMED_REQUEST`), and a message longer than
//! `max_message_size` as `OUT_OF_RANGE` (`REQUEST_TOO_LARGE`, the code
//! tonic gives it, now with a reason). What the messages hold is the codec's
//! business ([`mfa_proto::codec`]).

use bytes::Bytes;
use http::Request;
use http_body::{Frame, SizeHint};
use mfa_proto::status::Reason;
use std::{
    pin::Pin,
    task::{ready, Context, Poll},
};
use tonic::{body::Body, Status};
use tower::{Layer, Service};

/// Length of a message's prefix: the compressed flag and the length.
const PREFIX: usize = 5;

/// `ErrorInfo.metadata` key of `REQUEST_TOO_LARGE`: the largest request
/// message the server accepts, in bytes.
pub const MAX_BYTES: &str = "max_bytes";

/// Services whose every method takes exactly one request message (unary or
/// server-streaming): for them a body without a message is malformed.
/// Reflection streams its requests, and may send none.
const ONE_MESSAGE_SERVICES: &[&str] = &["/mfa.v1.", "/grpc.health.v1.Health/"];

/// Adds [`RequestFraming`], with messages of at most `max_message_size` bytes.
#[derive(Debug, Clone)]
pub struct RequestFramingLayer {
    max_message_size: usize,
}

impl RequestFramingLayer {
    /// Checks request bodies, refusing messages over `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Self { max_message_size }
    }
}

impl<S> Layer<S> for RequestFramingLayer {
    type Service = RequestFraming<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestFraming {
            inner,
            max_message_size: self.max_message_size,
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct RequestFraming<S> {
    inner: S,
    max_message_size: usize,
}

impl<S> Service<Request<Body>> for RequestFraming<S>
where
    S: Service<Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let path = request.uri().path();
        let needs_message = ONE_MESSAGE_SERVICES.iter().any(|s| path.starts_with(s));
        // With an encoding, tonic either decompresses the message or has
        // refused the call (UNIMPLEMENTED) before reading the body.
        let encoded = request
            .headers()
            .get("grpc-encoding")
            .is_some_and(|e| e != "identity");
        let checks = Checks {
            max_message_size: self.max_message_size,
            needs_message,
            encoded,
        };
        self.inner.call(request.map(|body| {
            Body::new(Framed {
                body,
                checks,
                state: State::prefix(),
                messages: 0,
                done: false,
            })
        }))
    }
}

#[derive(Debug, Clone, Copy)]
struct Checks {
    max_message_size: usize,
    needs_message: bool,
    encoded: bool,
}

/// Where the body is in its framing.
#[derive(Debug)]
enum State {
    /// Reading a prefix, of which `have` bytes are in `read`.
    Prefix { read: [u8; PREFIX], have: usize },
    /// Inside a message, `left` bytes from its end.
    Message { left: usize },
}

impl State {
    /// Before a message.
    fn prefix() -> Self {
        Self::Prefix {
            read: [0; PREFIX],
            have: 0,
        }
    }
}

/// A request body whose framing is checked as it passes.
struct Framed {
    body: Body,
    checks: Checks,
    state: State,
    messages: u64,
    /// Ended, or refused: nothing more to read.
    done: bool,
}

impl Framed {
    /// Follows the framing through `data`.
    fn follow(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            let prefix = match &mut self.state {
                State::Prefix { read, have } => {
                    let take = (PREFIX - *have).min(data.len());
                    read[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    data = &data[take..];
                    (*have == PREFIX).then(|| {
                        let length = u32::from_be_bytes([read[1], read[2], read[3], read[4]]);
                        (read[0], length as usize)
                    })
                }
                State::Message { left } => {
                    let take = (*left).min(data.len());
                    *left -= take;
                    data = &data[take..];
                    if *left == 0 {
                        self.state = State::prefix();
                    }
                    None
                }
            };
            if let Some((flag, length)) = prefix {
                self.check_prefix(flag, length)?;
                self.messages += 1;
                self.state = State::Message { left: length };
            }
        }
        // A message of length 0 ends with its prefix.
        if let State::Message { left: 0 } = self.state {
            self.state = State::prefix();
        }
        Ok(())
    }

    fn check_prefix(&self, flag: u8, length: usize) -> Result<(), Status> {
        match flag {
            0 => {}
            1 if self.checks.encoded => {}
            1 => {
                return Err(malformed(
                    "request message is marked compressed, but the call names no grpc-encoding",
                ))
            }
            other => {
                return Err(malformed(format!(
                    "request message has compressed flag {other}; only 0 and 1 exist"
                )))
            }
        }
        if length > self.checks.max_message_size {
            return Err(Reason::RequestTooLarge.status_with(
                format!(
                    "request message of {length} bytes is larger than the {} bytes this server accepts",
                    self.checks.max_message_size
                ),
                [(MAX_BYTES, self.checks.max_message_size.to_string())],
            ));
        }
        Ok(())
    }

    /// The body has ended: complete, or malformed.
    fn check_end(&self) -> Result<(), Status> {
        match self.state {
            State::Prefix { have: 0, .. } => {}
            State::Prefix { .. } | State::Message { .. } => {
                return Err(malformed(
                    "request body ends inside a gRPC message (a truncated frame)",
                ))
            }
        }
        if self.checks.needs_message && self.messages == 0 {
            return Err(malformed("request body holds no gRPC message"));
        }
        Ok(())
    }
}

fn malformed(message: impl Into<String>) -> Status {
    Reason::MalformedRequest.status(message)
}

impl http_body::Body for Framed {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let checked = match ready!(Pin::new(&mut this.body).poll_frame(cx)) {
            Some(Ok(frame)) => match frame.data_ref() {
                Some(data) => this.follow(data).map(|()| Some(frame)),
                None => Ok(Some(frame)),
            },
            // The client reset the stream, or the connection failed: not a
            // framing matter.
            Some(Err(error)) => return Poll::Ready(Some(Err(error))),
            None => this.check_end().map(|()| None),
        };
        match checked {
            Ok(Some(frame)) => Poll::Ready(Some(Ok(frame))),
            Ok(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Err(status) => {
                this.done = true;
                Poll::Ready(Some(Err(status)))
            }
        }
    }

    /// Never ended before its end is checked: `Body::new` would take an
    /// ended body for an empty one, and skip the check.
    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use tonic::Code;

    /// The body `chunks` (as separate DATA frames) read through the checks;
    /// the status it is refused with, if any.
    async fn read(chunks: &[&[u8]], needs_message: bool, encoded: bool) -> Option<Status> {
        let owned: Vec<Result<Frame<Bytes>, Status>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
            .collect();
        let framed = Framed {
            body: Body::new(http_body_util::StreamBody::new(tokio_stream::iter(owned))),
            checks: Checks {
                max_message_size: 16,
                needs_message,
                encoded,
            },
            state: State::prefix(),
            messages: 0,
            done: false,
        };
        framed.collect().await.err()
    }

    fn reason(status: &Status) -> &str {
        status
            .metadata()
            .get(mfa_proto::status::REASON_METADATA)
            .unwrap()
            .to_str()
            .unwrap()
    }

    #[tokio::test]
    async fn whole_messages_pass_however_they_are_split() {
        assert!(read(&[&[0, 0, 0, 0, 2, 8, 1]], true, false).await.is_none());
        assert!(read(&[&[0, 0], &[0, 0, 2, 8], &[1]], true, false)
            .await
            .is_none());
        // An empty message, then another.
        assert!(read(&[&[0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 7]], true, false)
            .await
            .is_none());
        // No message where the method may take none.
        assert!(read(&[], false, false).await.is_none());
        // Compressed, with an encoding named: tonic's to decompress.
        assert!(read(&[&[1, 0, 0, 0, 1, 9]], true, true).await.is_none());
    }

    #[tokio::test]
    async fn broken_framing_is_malformed_not_internal() {
        for (what, chunks, needs_message) in [
            ("no message", &[][..], true),
            ("a partial prefix", &[&[0u8, 0, 0][..]][..], true),
            (
                "a partial message",
                &[&[0u8, 0, 0, 0, 4, 1, 2][..]][..],
                true,
            ),
            (
                "compressed without encoding",
                &[&[1u8, 0, 0, 0, 1, 9][..]][..],
                true,
            ),
            ("an unknown flag", &[&[7u8, 0, 0, 0, 1, 9][..]][..], false),
        ] {
            let status = read(chunks, needs_message, false).await.expect(what);
            assert_eq!(status.code(), Code::InvalidArgument, "{what}");
            assert_eq!(reason(&status), "MALFORMED_REQUEST", "{what}");
        }
    }

    #[tokio::test]
    async fn a_message_over_the_limit_is_refused_from_its_prefix() {
        let status = read(&[&[0, 0, 0, 0, 17]], true, false).await.unwrap();
        assert_eq!(status.code(), Code::OutOfRange);
        assert_eq!(reason(&status), "REQUEST_TOO_LARGE");
    }
}
