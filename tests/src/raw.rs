//! gRPC calls over an HTTP/2 connection of the test's own, with bodies of
//! its own making: the framing and the bytes that no generated client sends.

use crate::TestServer;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::{net::TcpStream, task::JoinHandle};

/// A connection of one's own to the server.
pub type Connection = SendRequest<Full<Bytes>>;

/// An HTTP/2 connection to the server, and a task that ends when the server
/// closes it.
pub async fn connection(server: &TestServer) -> (Connection, JoinHandle<()>) {
    let tcp = TcpStream::connect(server.addr()).await.unwrap();
    // A request's HEADERS and DATA frames go out at once, not 40 ms apart.
    tcp.set_nodelay(true).unwrap();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    let closed = tokio::spawn(async move {
        let _ = connection.await;
    });
    (sender, closed)
}

/// `message` as one uncompressed gRPC message: the flag, the length, the bytes.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut body = vec![0];
    body.extend_from_slice(&u32::try_from(message.len()).unwrap().to_be_bytes());
    body.extend_from_slice(message);
    body
}

/// Calls `path` (`/package.Service/Method`) with `body` as the whole request
/// body, and `authorization: Bearer <key>` when there is a key; reads the
/// response to its end and returns its status as a client decodes it (from
/// the headers of a trailers-only response, else from the trailers).
pub async fn call(
    connection: &mut Connection,
    server: &TestServer,
    path: &str,
    key: Option<&str>,
    body: Vec<u8>,
) -> tonic::Status {
    let mut request = http::Request::post(format!("{}{path}", server.url))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let request = request.body(Full::new(Bytes::from(body))).unwrap();
    let response = connection.send_request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    if let Some(status) = tonic::Status::from_header_map(&parts.headers) {
        return status;
    }
    let body = body.collect().await.unwrap();
    let trailers = body.trailers().expect("gRPC trailers");
    tonic::Status::from_header_map(trailers).expect("a grpc-status trailer")
}
