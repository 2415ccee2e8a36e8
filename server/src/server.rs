//! Starting the service: store, migrations, identity, sweeper, the gRPC
//! listener (with health and reflection) and the optional HTTP/JSON one.

use crate::{
    api::{AdminApi, Connections, DeviceApi, PortalApi, RequestFramingLayer, StreamLimitLayer},
    client_address::{ClientAddressLayer, TrustedProxies},
    config::Config,
    domain::{Limits, Service},
    events::Events,
    http::{self, HttpListener},
    identity::ServerIdentity,
    offline_code_key::OfflineCodeKey,
    push::{self, Dispatcher},
    store::{ChangeFeed, Instrumented, PostgresStore, SqliteStore, Store, StoreError},
    sweeper,
    telemetry::{self, grpc::GrpcTelemetryLayer, health::Health},
};
use mfa_proto::v1::{
    admin_service_server::AdminServiceServer, device_service_server::DeviceServiceServer,
    portal_service_server::PortalServiceServer,
};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tonic::{service::interceptor::InterceptedService, transport::server::TcpIncoming};

/// How long in-flight calls may take to finish after a shutdown request.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Setup(String),
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("OpenID provider: {0}")]
    Oidc(#[from] crate::oidc::StartError),
}

/// A store opened from the configuration, and, on a database that several
/// replicas share, the feed of every replica's changes.
pub struct OpenedStore {
    pub store: Arc<dyn Store>,
    pub changes: Option<ChangeFeed>,
}

/// Opens the store named by the configuration's database URL: `sqlite:` or
/// `postgres:` (also `postgresql:`).
pub async fn open_store(config: &Config) -> Result<OpenedStore, ServerError> {
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        if config.database_url.is_none() {
            std::fs::create_dir_all(&config.data_dir)?;
        }
        Ok(OpenedStore {
            store: Arc::new(Instrumented::new(SqliteStore::open(&url).await?)),
            changes: None,
        })
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let store = PostgresStore::open(&url, config.pool_settings(), &config.database_tls)
            .await
            .map_err(|e| {
                ServerError::Setup(format!("database {}: {e}", config.database_url_redacted()))
            })?;
        Ok(OpenedStore {
            changes: Some(store.change_feed()),
            store: Arc::new(Instrumented::bounded(store, config.database_query_timeout)),
        })
    } else {
        Err(ServerError::Setup(format!(
            "unsupported database URL scheme {:?}: use sqlite: or postgres:",
            url.split(':').next().unwrap_or_default()
        )))
    }
}

/// Opens the store, applies migrations and assembles the service; `public_url`
/// is what enrollment QR codes point phones to.
pub async fn build_service(config: &Config, public_url: String) -> Result<Service, ServerError> {
    let (service, _) = assemble_service(config, public_url).await?;
    service.store().migrate().await?;
    Ok(service)
}

/// Opens the store (without migrating) and assembles the service; returns
/// the change feed to run, if the database has one.
async fn assemble_service(
    config: &Config,
    public_url: String,
) -> Result<(Service, Option<ChangeFeed>), ServerError> {
    let OpenedStore { store, changes } = open_store(config).await?;
    let identity = ServerIdentity::load_or_create(&config.server_key_file()).map_err(|e| {
        ServerError::Setup(format!(
            "server key {}: {e}",
            config.server_key_file().display()
        ))
    })?;
    let offline_code_key = match &config.offline_code_key_file {
        Some(path) => Some(OfflineCodeKey::load(path).map_err(|e| {
            ServerError::Setup(format!("offline-code key {}: {e}", path.display()))
        })?),
        None => {
            tracing::warn!(
                "offline codes are off: no offline_code_key_file is configured \
                 (a file of 32 random bytes, the same on every replica)"
            );
            None
        }
    };
    let providers = push::providers(&config.push, store.clone())
        .await
        .map_err(|e| ServerError::Setup(format!("push: {e}")))?;
    let events = match changes {
        Some(_) => Events::announced_by_database(),
        None => Events::default(),
    };
    let dispatcher = Dispatcher::new(providers, &config.push, store.clone(), events.clone());
    let service = Service::new(
        store,
        identity,
        events,
        Arc::new(dispatcher),
        Limits::from(config),
        public_url,
        offline_code_key,
    );
    Ok((service, changes))
}

/// A running server.
pub struct RunningServer {
    /// The address the gRPC listener is bound to.
    pub addr: SocketAddr,
    /// The address of the operators' listener (`/metrics`, `/healthz`).
    pub metrics_addr: SocketAddr,
    /// The address of the HTTP/JSON listener, if `http_listen` is set.
    pub http_addr: Option<SocketAddr>,
    /// The OpenID provider's listener and issuer, when `[oidc]` turns it on.
    pub oidc: Option<(SocketAddr, String)>,
    /// The service behind it.
    pub service: Service,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Stops accepting calls, lets in-flight calls finish, and waits.
    pub async fn stop(self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(true);
        self.task
            .await
            .map_err(|e| ServerError::Setup(format!("server task: {e}")))?
    }

    /// Waits until the server stops (after a shutdown request).
    pub async fn wait(self) -> Result<(), ServerError> {
        self.task
            .await
            .map_err(|e| ServerError::Setup(format!("server task: {e}")))?
    }

    /// A handle that asks the server to stop.
    pub fn shutdown_handle(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Starts the server described by `config` (bind to port 0 for a free port).
///
/// Health is NOT_SERVING until migrations are applied and the database
/// answers, and whenever it stops answering.
pub async fn start(config: &Config) -> Result<RunningServer, ServerError> {
    // Checked before binding, so that a plaintext listener never opens where
    // it is not allowed.
    let tls = config
        .tls
        .server_config(config.listen)
        .map_err(|e| ServerError::Setup(e.to_string()))?;
    let http_tls = config
        .http_listen
        .map(|addr| config.tls.http_server_config(addr))
        .transpose()
        .map_err(|e| ServerError::Setup(e.to_string()))?;
    if let Some(listen) = config.oidc.listen {
        // The OpenID provider's listener follows the same rule (it reads
        // the files again when it starts).
        config
            .tls
            .rustls_config(listen, "the OpenID provider")
            .map_err(|e| ServerError::Setup(e.to_string()))?;
    }
    let metrics = telemetry::metrics::install();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    let health = Health::new(health_reporter).await;
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let metrics_listener = TcpListener::bind(config.metrics_listen).await?;
    let metrics_addr = metrics_listener.local_addr()?;
    let http_listener = match (config.http_listen, http_tls) {
        (Some(addr), Some(tls)) => {
            let listener = TcpListener::bind(addr).await?;
            Some(match tls {
                Some(tls) => HttpListener::Tls(listener, tls),
                None => HttpListener::Plain(listener),
            })
        }
        _ => None,
    };
    let http_addr = http_listener
        .as_ref()
        .map(HttpListener::local_addr)
        .transpose()?;
    let public_url = config.public_url_for(addr);
    let (service, changes) = assemble_service(config, public_url).await?;
    let operators = tokio::spawn(telemetry::http::serve(
        metrics_listener,
        metrics,
        health.clone(),
        service.clone(),
    ));
    service.store().migrate().await?;
    if let Some(changes) = changes {
        // Listens before serving; relays until the store closes at shutdown.
        changes.start(service.events().clone()).await?;
    }
    let oidc = crate::oidc::start(config, service.clone()).await?;
    health.check(&service).await;
    tokio::spawn(health.monitor(service.clone(), config.health_interval));

    // Both versions of reflection: grpcurl before 1.8.8 and many Python
    // and Java tools ask only `v1alpha`.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(mfa_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let setup = |e: tonic_reflection::server::Error| ServerError::Setup(format!("reflection: {e}"));
    let reflection_v1 = reflection().build_v1().map_err(setup)?;
    let reflection_v1alpha = reflection().build_v1alpha().map_err(setup)?;

    let http = http_listener.map(|listener| {
        let router = http::router(
            service.clone(),
            TrustedProxies::new(&config.trusted_proxies),
            config.tls.client_cert_policy(),
            config.max_message_size,
        );
        if let Some(addr) = http_addr {
            tracing::info!(%addr, tls = config.tls.enabled(), "HTTP/JSON API listening");
        }
        tokio::spawn(listener.serve(router, service.clone()))
    });

    let (shutdown, mut shutdown_rx) = watch::channel(false);
    let mut shutdown_grace = shutdown.subscribe();
    tokio::spawn(sweeper::run(service.clone()));

    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    let client_cert = config.tls.client_cert_policy();
    let connections = Connections::default();
    let router = builder
        .layer(ClientAddressLayer::new(TrustedProxies::new(
            &config.trusted_proxies,
        )))
        .layer(GrpcTelemetryLayer)
        .layer(StreamLimitLayer::new(
            config.max_streams_per_connection,
            connections.clone(),
        ))
        .layer(RequestFramingLayer::new(config.max_message_size))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(InterceptedService::new(
            PortalServiceServer::new(PortalApi::new(service.clone()))
                .max_decoding_message_size(config.max_message_size),
            client_cert,
        ))
        .add_service(
            DeviceServiceServer::new(DeviceApi::new(service.clone()))
                .max_decoding_message_size(config.max_message_size),
        )
        .add_service(InterceptedService::new(
            AdminServiceServer::new(AdminApi::new(service.clone()))
                .max_decoding_message_size(config.max_message_size),
            client_cert,
        ));
    tracing::info!(%addr, tls = config.tls.enabled(), "mfa-server listening");
    let stopping = service.clone();
    let service_for_close = service.clone();
    let oidc_listener = oidc
        .as_ref()
        .map(|running| (running.addr, running.issuer.clone()));
    let oidc_task = oidc.map(|running| running.task);
    // Small gRPC frames go out at once: with Nagle's algorithm a response
    // waits for the client's delayed ACK (40 ms on Linux).
    let incoming = connections.track(
        TcpIncoming::from(listener).with_nodelay(Some(true)),
        config.idle_connection_timeout,
    );
    let task = tokio::spawn(async move {
        let serve = router.serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown_rx.wait_for(|stop| *stop).await;
            // Ends watch streams (with UNAVAILABLE) and the sweeper, so that
            // open streams do not hold the shutdown.
            stopping.begin_shutdown();
            tracing::info!("stopped accepting calls; finishing those in flight");
        });
        tokio::pin!(serve);
        let served = tokio::select! {
            result = &mut serve => result,
            () = stopping_after_grace(&mut shutdown_grace) => {
                tracing::warn!("in-flight calls did not finish within {SHUTDOWN_GRACE:?}; closing them");
                Ok(())
            }
        };
        // The HTTP/JSON and operators' listeners end with the service;
        // waiting for them frees their ports before `stop` returns.
        if let Some(mut http) = http {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut http)
                .await
                .is_err()
            {
                tracing::warn!(
                    "HTTP/JSON calls did not finish within {SHUTDOWN_GRACE:?}; closing them"
                );
                http.abort();
            }
        }
        let _ = operators.await;
        if let Some(task) = oidc_task {
            let _ = task.await;
        }
        if let Err(error) = service_for_close.store().close().await {
            tracing::error!(%error, "could not close the store cleanly");
        }
        Ok(served?)
    });
    Ok(RunningServer {
        addr,
        metrics_addr,
        http_addr,
        oidc: oidc_listener,
        service,
        shutdown,
        task,
    })
}

/// Resolves `SHUTDOWN_GRACE` after a shutdown was requested.
async fn stopping_after_grace(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
    tokio::time::sleep(SHUTDOWN_GRACE).await;
}
