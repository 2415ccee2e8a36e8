//! Starting the service: store, migrations, identity, sweeper and the gRPC
//! listener (with health and reflection).

use crate::{
    api::{AdminApi, DeviceApi, PortalApi},
    config::Config,
    domain::{Limits, Service},
    identity::ServerIdentity,
    push::RecordingGateway,
    store::{SqliteStore, Store, StoreError},
    sweeper,
};
use mfa_proto::v1::{
    admin_service_server::AdminServiceServer, device_service_server::DeviceServiceServer,
    portal_service_server::PortalServiceServer,
};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_stream::wrappers::TcpListenerStream;

/// Largest request the server accepts (bytes).
const MAX_MESSAGE_SIZE: usize = 64 * 1024;
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
}

/// Opens the store named by the configuration's database URL.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, ServerError> {
    let url = config.database_url();
    if url.starts_with("sqlite:") {
        if config.database_url.is_none() {
            std::fs::create_dir_all(&config.data_dir)?;
        }
        Ok(Arc::new(SqliteStore::open(&url).await?))
    } else {
        Err(ServerError::Setup(format!(
            "unsupported database URL scheme in {:?}: use sqlite:",
            url.split(':').next().unwrap_or_default()
        )))
    }
}

/// Opens the store, applies migrations and assembles the service; `public_url`
/// is what enrollment QR codes point phones to.
pub async fn build_service(config: &Config, public_url: String) -> Result<Service, ServerError> {
    let store = open_store(config).await?;
    store.migrate().await?;
    let identity = ServerIdentity::load_or_create(&config.server_key_file()).map_err(|e| {
        ServerError::Setup(format!(
            "server key {}: {e}",
            config.server_key_file().display()
        ))
    })?;
    let push = Arc::new(RecordingGateway::new(config.push_log.clone())?);
    Ok(Service::new(
        store,
        identity,
        push,
        Limits::from(config),
        public_url,
    ))
}

/// A running server.
pub struct RunningServer {
    /// The address the listener is bound to.
    pub addr: SocketAddr,
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
pub async fn start(config: &Config) -> Result<RunningServer, ServerError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let service = build_service(config, public_url).await?;

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(mfa_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ServerError::Setup(format!("reflection: {e}")))?;

    let (shutdown, mut shutdown_rx) = watch::channel(false);
    let mut shutdown_grace = shutdown.subscribe();
    tokio::spawn(sweeper::run(service.clone()));

    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            PortalServiceServer::new(PortalApi::new(service.clone()))
                .max_decoding_message_size(MAX_MESSAGE_SIZE),
        )
        .add_service(
            DeviceServiceServer::new(DeviceApi::new(service.clone()))
                .max_decoding_message_size(MAX_MESSAGE_SIZE),
        )
        .add_service(
            AdminServiceServer::new(AdminApi::new(service.clone()))
                .max_decoding_message_size(MAX_MESSAGE_SIZE),
        );
    for name in [
        "mfa.v1.PortalService",
        "mfa.v1.DeviceService",
        "mfa.v1.AdminService",
        "",
    ] {
        health_reporter
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
    }
    tracing::info!(%addr, "mfa-server listening");
    let stopping = service.clone();
    let task = tokio::spawn(async move {
        let serve =
            router.serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                let _ = shutdown_rx.wait_for(|stop| *stop).await;
                // Ends watch streams (with UNAVAILABLE) and the sweeper, so that
                // open streams do not hold the shutdown.
                stopping.begin_shutdown();
                tracing::info!("stopped accepting calls; finishing those in flight");
            });
        tokio::pin!(serve);
        tokio::select! {
            result = &mut serve => return Ok(result?),
            () = stopping_after_grace(&mut shutdown_grace) => {}
        }
        tracing::warn!("in-flight calls did not finish within {SHUTDOWN_GRACE:?}; closing them");
        Ok(())
    });
    Ok(RunningServer {
        addr,
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
