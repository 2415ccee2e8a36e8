//! The standard services beside ours: health and reflection.

use mfa_tests::{
    postgres::{self, Backend, TestDatabase},
    tcp_proxy::TcpProxy,
    *,
};
use std::{sync::Arc, time::Duration};
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::{
    health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
};

#[tokio::test]
async fn health_reports_serving_for_the_server_and_each_service() {
    let server = TestServer::start().await;
    let channel = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    for service in [
        "",
        "mfa.v1.PortalService",
        "mfa.v1.DeviceService",
        "mfa.v1.AdminService",
    ] {
        let response = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.status(), ServingStatus::Serving, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "nope.Service".into(),
        })
        .await;
    assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
}

/// `/healthz` as a load balancer sees it: the status code and body.
async fn healthz(server: &TestServer) -> Result<String, String> {
    let url = format!("http://{}/healthz", server.metrics_addr());
    mfa_server::stats::fetch(&url)
        .await
        .map_err(|e| e.to_string())
}

/// A database a test can take away from the server and give back: the
/// SQLite file moved aside, or the connection to PostgreSQL cut.
enum Removable {
    SqliteFile(std::path::PathBuf),
    Postgres(TcpProxy),
}

impl Removable {
    async fn start(adjust: impl FnOnce(&mut mfa_server::Config)) -> (TestServer, Self) {
        match postgres::backend() {
            Backend::Sqlite => {
                let server = TestServer::start_with(adjust).await;
                let file = server.dir().join("mfa.db");
                (server, Self::SqliteFile(file))
            }
            Backend::Postgres => {
                let database = Arc::new(TestDatabase::create().await);
                let proxy = TcpProxy::start(postgres::server_addr()).await;
                let url = database.url_through(proxy.addr);
                let server = TestServer::start_on(Some(database), |c| {
                    c.database_url = Some(url);
                    c.database_acquire_timeout = Duration::from_millis(500);
                    adjust(c);
                })
                .await;
                (server, Self::Postgres(proxy))
            }
        }
    }

    fn remove(&self) {
        match self {
            Self::SqliteFile(file) => std::fs::rename(file, file.with_extension("away")).unwrap(),
            Self::Postgres(proxy) => proxy.cut(),
        }
    }

    fn restore(&self) {
        match self {
            Self::SqliteFile(file) => std::fs::rename(file.with_extension("away"), file).unwrap(),
            Self::Postgres(proxy) => proxy.restore(),
        }
    }
}

#[tokio::test]
async fn health_goes_not_serving_while_the_database_is_gone_and_back_after() {
    let (server, database) =
        Removable::start(|c| c.health_interval = Duration::from_millis(50)).await;
    let channel = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: "mfa.v1.PortalService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    async fn next_status(
        watch: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>,
    ) -> ServingStatus {
        within(watch.next()).await.unwrap().unwrap().status()
    }
    assert_eq!(next_status(&mut watch).await, ServingStatus::Serving);
    // The state, then the running version (no push provider is configured).
    let serving = format!("SERVING\nversion: {}\n", mfa_server::VERSION);
    assert_eq!(healthz(&server).await.unwrap(), serving);

    database.remove();
    assert_eq!(next_status(&mut watch).await, ServingStatus::NotServing);
    let refused = healthz(&server).await.unwrap_err();
    assert!(refused.contains("503"), "{refused}");

    database.restore();
    assert_eq!(next_status(&mut watch).await, ServingStatus::Serving);
    assert_eq!(healthz(&server).await.unwrap(), serving);
    // Serving again means serving: a call that reads and writes works.
    let portal = server.portal().await;
    portal.begin_enrollment("u", "u@example.jp").await.unwrap();
}

/// The services that reflection lists through its version `$version` (`v1`
/// or `v1alpha`, modules of `tonic_reflection::pb` with the same types).
macro_rules! reflected_services {
    ($version:ident, $channel:expr) => {{
        use tonic_reflection::pb::$version::{
            server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
            ServerReflectionRequest,
        };
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut responses = ServerReflectionClient::new($channel)
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let response = responses.next().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
            panic!("unexpected reflection response {response:?}");
        };
        list.service
            .into_iter()
            .map(|s| s.name)
            .collect::<Vec<String>>()
    }};
}

#[tokio::test]
async fn reflection_lists_our_services_in_both_versions() {
    let server = TestServer::start().await;
    let channel = Channel::from_shared(server.url.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    // grpcurl before 1.8.8 and many Python tools speak only v1alpha.
    let versions = [
        ("v1", reflected_services!(v1, channel.clone())),
        ("v1alpha", reflected_services!(v1alpha, channel)),
    ];
    for (version, names) in versions {
        for expected in [
            "mfa.v1.PortalService",
            "mfa.v1.DeviceService",
            "mfa.v1.AdminService",
            "grpc.health.v1.Health",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {version}'s {names:?}"
            );
        }
    }
}
