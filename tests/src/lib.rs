//! Test harness: starts the real `mfa-server` on a free loopback port with a
//! temporary SQLite file (or, with `TEST_DATABASE=postgres`, a fresh
//! PostgreSQL database), and gives tests a portal, an admin client and phones
//! built on the SDK, all talking gRPC.

pub mod connect_proxy;
pub mod haproxy;
pub mod http_api;
pub mod pg_cluster;
pub mod php;
pub mod postgres;
pub mod process;
pub mod push;
pub mod raw;
pub mod scrape;
pub mod tcp_proxy;
pub mod tls;

use mfa_proto::v1::{admin_service_client::AdminServiceClient, EnrollmentState};
use mfa_sdk::{
    portal::{BearerAuth, RelyingParty},
    Authenticator, ConnectOptions, DeviceInfo, EnrollmentUri, KeyStore, MemoryKeyStore,
    PushPlatform, VerifiedChallenge,
};
use mfa_server::{config::Config, model::Role, RunningServer};
use postgres::{Backend, TestDatabase};
use std::{sync::Arc, time::Duration};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

/// The admin client with its key attached.
pub type AdminClient = AdminServiceClient<InterceptedService<Channel, BearerAuth>>;

/// A tenant with its keys.
#[derive(Debug, Clone)]
pub struct TestTenant {
    pub id: String,
    pub portal_key: String,
    pub admin_key: String,
}

/// A running server on a temporary data directory.
pub struct TestServer {
    pub config: Config,
    pub url: String,
    pub tenant: TestTenant,
    /// How the test's portal, admin and phones connect (TLS settings).
    pub connect: ConnectOptions,
    running: Option<RunningServer>,
    dir: Arc<tempfile::TempDir>,
    database: Option<Arc<TestDatabase>>,
}

/// The `google.rpc.ErrorInfo` of a refusal, decoded as any client would with
/// tonic-types. Checks on the way that it is of the server's domain and that
/// the `mfa-reason` metadata, kept for older clients, says the same.
pub fn error_info(status: &tonic::Status) -> tonic_types::ErrorInfo {
    use tonic_types::StatusExt;
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.domain, mfa_proto::status::ERROR_DOMAIN, "{status:?}");
    let compatible = status
        .metadata()
        .get(mfa_proto::status::REASON_METADATA)
        .and_then(|v| v.to_str().ok());
    assert_eq!(compatible, Some(info.reason.as_str()), "{status:?}");
    info
}

/// Lifetimes short enough for tests to watch things expire without waiting long.
/// Offline codes are on, with a key made in `dir`.
pub fn test_config(dir: &std::path::Path) -> Config {
    let offline_code_key = dir.join("offline-code.key");
    mfa_server::offline_code_key::OfflineCodeKey::create_if_missing(&offline_code_key)
        .expect("offline-code key");
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        metrics_listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        offline_code_key_file: Some(offline_code_key),
        ..Config::default()
    }
}

impl TestServer {
    /// Starts with the test defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts with the test defaults changed by `adjust`, on the backend
    /// `TEST_DATABASE` selects.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let database = match postgres::backend() {
            Backend::Postgres => Some(Arc::new(TestDatabase::create().await)),
            Backend::Sqlite => None,
        };
        Self::start_on(database, adjust).await
    }

    /// Starts on `database`, or on a temporary SQLite file when it is `None`.
    pub async fn start_on(
        database: Option<Arc<TestDatabase>>,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let dir = Arc::new(tempfile::tempdir().expect("temporary directory"));
        let mut config = test_config(dir.path());
        config.database_url = database.as_ref().map(|db| db.url.clone());
        adjust(&mut config);
        let running = mfa_server::start(&config).await.expect("server starts");
        let url = config.public_url_for(running.addr);
        let mut server = Self {
            config,
            url,
            connect: ConnectOptions::default(),
            tenant: TestTenant {
                id: String::new(),
                portal_key: String::new(),
                admin_key: String::new(),
            },
            running: Some(running),
            dir,
            database,
        };
        server.tenant = server
            .create_tenant("IHIGrp (External Collaboration)", 2)
            .await;
        server
    }

    /// Another replica: a second server on the same database and server key,
    /// with its own listeners and `adjust` applied to its configuration.
    pub async fn replica(&self, adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.metrics_listen = "127.0.0.1:0".parse().unwrap();
        if config.http_listen.is_some() {
            config.http_listen = Some("127.0.0.1:0".parse().unwrap());
        }
        adjust(&mut config);
        let running = mfa_server::start(&config).await.expect("replica starts");
        Self {
            url: config.public_url_for(running.addr),
            config,
            tenant: self.tenant.clone(),
            connect: self.connect.clone(),
            running: Some(running),
            dir: self.dir.clone(),
            database: self.database.clone(),
        }
    }

    fn running(&self) -> &RunningServer {
        self.running.as_ref().expect("server is running")
    }

    /// Creates another tenant with keys (as `mfa-server tenant create` does).
    pub async fn create_tenant(&self, name: &str, digits: u8) -> TestTenant {
        let service = &self.running().service;
        let tenant = service.create_tenant(name, digits).await.expect("tenant");
        TestTenant {
            portal_key: service
                .create_api_key(&tenant.id, Role::Portal)
                .await
                .expect("key")
                .secret,
            admin_key: service
                .create_api_key(&tenant.id, Role::Admin)
                .await
                .expect("key")
                .secret,
            id: tenant.id,
        }
    }

    /// Stops the server and starts it again on the same data and port.
    pub async fn restart(&mut self) {
        let running = self.running.take().expect("server is running");
        let (addr, metrics_addr, http_addr) =
            (running.addr, running.metrics_addr, running.http_addr);
        running.stop().await.expect("server stops cleanly");
        let mut config = self.config.clone();
        config.listen = addr;
        config.metrics_listen = metrics_addr;
        config.http_listen = http_addr;
        self.running = Some(mfa_server::start(&config).await.expect("server restarts"));
    }

    /// The service inside the server, for what a test does as if at another
    /// time (e.g. [`mfa_server::domain::Service::purge_at`]).
    pub fn service(&self) -> &mfa_server::domain::Service {
        &self.running().service
    }

    /// The address of the gRPC listener.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.running().addr
    }

    /// The base URL of the HTTP/JSON API (`http_listen` must be set).
    pub fn http_url(&self) -> String {
        let addr = self.running().http_addr.expect("http_listen is set");
        format!("http://{addr}")
    }

    /// The HTTP/JSON API with the default tenant's portal key.
    pub fn http_api(&self) -> http_api::HttpApi {
        http_api::HttpApi::new(&self.http_url(), Some(&self.tenant.portal_key))
    }

    /// The address of `/metrics` and `/healthz`.
    pub fn metrics_addr(&self) -> std::net::SocketAddr {
        self.running().metrics_addr
    }

    /// The OpenID provider's listener and issuer, when `oidc.listen` is set.
    pub fn oidc(&self) -> Option<(std::net::SocketAddr, String)> {
        self.running().oidc.clone()
    }

    /// The PostgreSQL database it runs on, if any.
    pub fn database(&self) -> Option<&TestDatabase> {
        self.database.as_deref()
    }

    /// The data directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The types of the tenant's audit events (of one user, unless
    /// `user_id` is empty), newest first, as an administrator lists them.
    pub async fn audit_types(&self, user_id: &str) -> Vec<String> {
        self.audit_events(user_id)
            .await
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    }

    /// A user's audit events (all of the tenant's with an empty `user_id`),
    /// newest first.
    pub async fn audit_events(&self, user_id: &str) -> Vec<mfa_proto::v1::AuditEvent> {
        self.admin()
            .await
            .list_audit_events(mfa_proto::v1::ListAuditEventsRequest {
                user_id: user_id.into(),
                page_size: 1000,
                page_token: String::new(),
            })
            .await
            .expect("audit events")
            .into_inner()
            .events
    }

    /// Runs `sql` on the server's database directly, as an operator with a
    /// database shell would (both backends accept the same plain statements).
    pub async fn execute_sql(&self, sql: &str) {
        use sqlx::{Connection, Executor};
        match self.database() {
            Some(database) => {
                let mut connection = sqlx::PgConnection::connect(&database.url)
                    .await
                    .expect("database connection");
                connection.execute(sql).await.expect("statement runs");
            }
            None => {
                let url = format!("sqlite://{}", self.dir().join("mfa.db").display());
                let mut connection = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("database connection");
                connection.execute(sql).await.expect("statement runs");
            }
        }
    }

    /// Everything the database holds, as someone with a copy of it would
    /// read it: the SQLite file and its log, or on PostgreSQL every row of
    /// every table as text (binary columns in hex).
    pub async fn database_dump(&self) -> Vec<u8> {
        let Some(database) = self.database() else {
            let mut stored = Vec::new();
            for name in ["mfa.db", "mfa.db-wal"] {
                if let Ok(bytes) = std::fs::read(self.dir().join(name)) {
                    stored.extend(bytes);
                }
            }
            return stored;
        };
        database.dump().await.into_bytes()
    }

    /// Every row of every table as text, on either backend: what the
    /// database still holds for anyone who queries it (unlike
    /// [`Self::database_dump`], not the bytes of rows deleted but not yet
    /// overwritten).
    pub async fn database_rows(&self) -> String {
        use sqlx::{Connection, Row};
        if let Some(database) = self.database() {
            return database.dump().await;
        }
        let url = format!("sqlite://{}", self.dir().join("mfa.db").display());
        let mut connection = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("database connection");
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&mut connection)
                .await
                .expect("table list");
        let mut rows = String::new();
        for table in tables {
            let columns: Vec<String> =
                sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .fetch_all(&mut connection)
                    .await
                    .expect("column list");
            let quoted: Vec<String> = columns.iter().map(|c| format!("quote(\"{c}\")")).collect();
            let sql = format!("SELECT {} FROM \"{table}\"", quoted.join(" || ',' || "));
            for row in sqlx::query(&sql)
                .fetch_all(&mut connection)
                .await
                .expect("table rows")
            {
                rows.push_str(&row.get::<String, _>(0));
                rows.push('\n');
            }
        }
        rows
    }

    /// The portal of the default tenant.
    pub async fn portal(&self) -> RelyingParty {
        self.portal_with(&self.tenant.portal_key).await
    }

    /// A portal with any key.
    pub async fn portal_with(&self, key: &str) -> RelyingParty {
        RelyingParty::connect_with(&self.url, key, &self.connect)
            .await
            .expect("portal connects")
    }

    /// The admin client of the default tenant.
    pub async fn admin(&self) -> AdminClient {
        self.admin_with(&self.tenant.admin_key).await
    }

    /// An admin client with any key.
    pub async fn admin_with(&self, key: &str) -> AdminClient {
        let channel = self.connect.connect(&self.url).await.unwrap();
        AdminServiceClient::with_interceptor(channel, BearerAuth::new(key).unwrap())
    }

    /// Enrolls a phone for `user_id` the way a person does: the portal begins,
    /// the phone scans the QR URI, the person types the verification number
    /// shown by the portal, and the portal sees VERIFIED.
    pub async fn enroll(&self, portal: &RelyingParty, user_id: &str, email: &str) -> Authenticator {
        self.enroll_device(portal, user_id, email, phone_info("Test phone"))
            .await
    }

    /// [`Self::enroll`] with a device key made by `store`, e.g. a P-256 key.
    pub async fn enroll_in(
        &self,
        portal: &RelyingParty,
        user_id: &str,
        email: &str,
        store: &dyn KeyStore,
    ) -> Authenticator {
        enroll_phone_in(
            portal,
            user_id,
            email,
            phone_info("Test phone"),
            &self.connect,
            store,
        )
        .await
    }

    /// [`Self::enroll`] with a phone described by `info` (e.g. one with push).
    pub async fn enroll_device(
        &self,
        portal: &RelyingParty,
        user_id: &str,
        email: &str,
        info: DeviceInfo,
    ) -> Authenticator {
        enroll_phone(portal, user_id, email, info, &self.connect).await
    }
}

/// Enrolls a phone described by `info` for `user_id` through `portal`, with
/// any server (see [`TestServer::enroll`]).
pub async fn enroll_phone(
    portal: &RelyingParty,
    user_id: &str,
    email: &str,
    info: DeviceInfo,
    connect: &ConnectOptions,
) -> Authenticator {
    enroll_phone_in(
        portal,
        user_id,
        email,
        info,
        connect,
        &MemoryKeyStore::new(),
    )
    .await
}

/// [`enroll_phone`] with the device key made and kept by `store` (of its
/// algorithm).
pub async fn enroll_phone_in(
    portal: &RelyingParty,
    user_id: &str,
    email: &str,
    info: DeviceInfo,
    connect: &ConnectOptions,
    store: &dyn KeyStore,
) -> Authenticator {
    let begun = portal
        .begin_enrollment(user_id, email)
        .await
        .expect("begin enrollment");
    let uri = EnrollmentUri::parse(&begun.qr_uri).expect("QR URI parses");
    let (mut phone, verification) = Authenticator::enroll_with(&uri, info, store, connect)
        .await
        .expect("phone enrolls");
    let number = verification_number(portal, &begun.enrollment_id).await;
    let answer = phone
        .approve(&verification, &number)
        .await
        .expect("verification answer");
    assert_eq!(answer.state, mfa_proto::v1::ChallengeState::Approved);
    let done = portal
        .await_enrollment(&begun.enrollment_id)
        .await
        .expect("enrollment ends");
    assert_eq!(done.state(), EnrollmentState::Verified);
    phone
}

/// The same enrolled phone talking to the server at `url` (another replica
/// behind the same load balancer).
pub async fn phone_via(phone: &Authenticator, url: &str) -> Authenticator {
    let mut account = phone.account().clone();
    account.server_url = url.to_owned();
    Authenticator::from_account(account, phone.signer().clone(), &ConnectOptions::default())
        .expect("account opens")
}

/// The approval bytes `phone` signs to approve `pending` with `typed_number`,
/// with the user-verification field `user_verification` (`None`: no field,
/// as apps of the first release sign), for tests that sign them with
/// another key or send them with a request of their own.
pub fn approval_bytes(
    phone: &Authenticator,
    pending: &VerifiedChallenge,
    typed_number: &str,
    user_verification: Option<&str>,
) -> Vec<u8> {
    mfa_proto::signing::Approval {
        tenant_id: &pending.tenant_id,
        challenge_id: &pending.challenge_id,
        device_id: &phone.account().device_id,
        decision: "DECISION_APPROVE",
        typed_number,
        challenge_nonce: &pending.nonce,
        user_verification,
    }
    .signed_bytes()
}

/// Device details for a pull-only phone.
pub fn phone_info(name: &str) -> DeviceInfo {
    DeviceInfo {
        name: name.to_owned(),
        push_platform: PushPlatform::None,
        push_token: String::new(),
    }
}

/// Follows the portal's enrollment watch until the number to show appears.
pub async fn verification_number(portal: &RelyingParty, enrollment_id: &str) -> String {
    let mut watch = portal
        .watch_enrollment(enrollment_id)
        .await
        .expect("watch enrollment");
    while let Some(update) = watch.message().await.expect("watch message") {
        let enrollment = update.enrollment.expect("enrollment");
        if enrollment.state() == EnrollmentState::DeviceRegistered {
            assert!(!enrollment.verification_number.is_empty());
            return enrollment.verification_number;
        }
        assert_eq!(
            enrollment.state(),
            EnrollmentState::WaitingForScan,
            "unexpected {enrollment:?}"
        );
    }
    panic!("watch ended before a device registered");
}

/// The single pending challenge the phone sees.
pub async fn only_pending(phone: &mut Authenticator) -> VerifiedChallenge {
    let mut pending = phone.pending_challenges().await.expect("list pending");
    assert_eq!(
        pending.len(),
        1,
        "expected one pending challenge: {pending:?}"
    );
    pending.remove(0)
}

/// A number other than `number` with the same length.
pub fn wrong_number(number: &str) -> String {
    let n: u32 = number.parse().unwrap();
    let low = 10u32.pow(number.len() as u32 - 1);
    (if n + 1 < low * 10 { n + 1 } else { low }).to_string()
}

/// Whether a tool a test needs is `installed`; if not, says that `test` is
/// skipped and which Debian `packages` bring the tool, or fails under
/// `CI=true`, where `.ci/run` installs them.
pub fn installed_or_skip(test: &str, installed: bool, packages: &str) -> bool {
    if installed {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} needs Debian's {packages} under CI");
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: not installed (apt-get install {packages})"
    );
    false
}

/// Awaits `future` for at most five seconds, so a hang fails instead of stalling.
/// How many times events of `event_type` happened, aggregated entries
/// counted by their `count`.
pub fn occurrences(events: &[mfa_proto::v1::AuditEvent], event_type: &str) -> u32 {
    events
        .iter()
        .filter(|e| e.event_type == event_type)
        .map(|e| e.count)
        .sum()
}

pub async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .expect("finished in time")
}

/// Every string value in a JSON document.
pub fn string_leaves(value: &serde_json::Value) -> Vec<String> {
    match value {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(items) => items.iter().flat_map(string_leaves).collect(),
        serde_json::Value::Object(map) => map.values().flat_map(string_leaves).collect(),
        _ => Vec::new(),
    }
}
