//! The provider's listener: HTTP/1.1 and HTTP/2, over TLS when the `[tls]`
//! certificate is set, each request tagged with its client's address
//! (behind `trusted_proxies`, the forwarded one). It stops accepting when the
//! service shuts down.

use crate::{client_address::TrustedProxies, domain::Service, tls::HANDSHAKE_TIMEOUT};
use axum::{extract::Request, Router};
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// Serves `app` on `listener` until the service shuts down.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    trusted: TrustedProxies,
    app: Router,
    service: Service,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "OpenID provider: accept failed");
                    continue;
                }
            },
            () = service.shutting_down() => return,
        };
        let _ = stream.set_nodelay(true);
        let (app, trusted, acceptor) = (app.clone(), trusted.clone(), acceptor.clone());
        tokio::spawn(async move {
            let handler =
                hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                    let client = trusted.resolve(peer.ip(), request.headers());
                    request.extensions_mut().insert(client);
                    app.clone().oneshot(request)
                });
            match acceptor {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => connection(TokioIo::new(tls), handler).await,
                        Ok(Err(error)) => {
                            tracing::debug!(%error, "OpenID provider: TLS handshake failed")
                        }
                        Err(_) => tracing::debug!("OpenID provider: TLS handshake timed out"),
                    }
                }
                None => connection(TokioIo::new(stream), handler).await,
            }
        });
    }
}

async fn connection<I, S>(io: I, handler: S)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<
            Request<hyper::body::Incoming>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    if let Err(error) = auto::Builder::new(TokioExecutor::new())
        .serve_connection(io, handler)
        .await
    {
        tracing::debug!(%error, "OpenID provider: connection ended with an error");
    }
}
