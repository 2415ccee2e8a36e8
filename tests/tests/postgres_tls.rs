//! PostgreSQL over TLS, through the real server start, against throwaway
//! clusters of the test's own (Debian's `initdb` and `postgres` on a free
//! port, see `mfa_tests::pg_cluster`), with a CA and certificates made here:
//! `verify-full` works, and the server's connections (its pool's and its
//! change listener's) are encrypted; a wrong CA, a host name the
//! certificate lacks, and a missing client certificate each fail at start
//! with a message that names the cause; `verify-ca` checks the CA; the
//! `[database_tls]` keys override the URL; client certificates work;
//! `require` refuses a cluster without TLS; and TLS connections cut off by a
//! silent network give their places in the pool back.
//!
//! Without PostgreSQL's server binaries the tests say that they are skipped
//! (and fail under `CI=true`).

use mfa_server::{
    config::Config,
    store::{DatabaseTls, SslMode},
};
use mfa_tests::{
    pg_cluster::{self, Ca, PgCluster, ServerTls},
    tcp_proxy::TcpProxy,
    *,
};
use sqlx::Executor;
use std::{
    path::{Path, PathBuf},
    time::Duration,
};
use tonic::Code;

/// The role that must log in with a client certificate.
const CERT_USER: &str = "mfa_cert";
/// A password in every URL here, which no message may show (the clusters
/// trust 127.0.0.1, so it is never asked for).
const PASSWORD: &str = "hunter2-not-shown";

/// The files a client is given, in a directory of its own.
struct ClientFiles {
    _dir: tempfile::TempDir,
    /// The CA that signed the cluster's certificate.
    ca: PathBuf,
    /// A CA that did not.
    other_ca: PathBuf,
    /// A client certificate for [`CERT_USER`], and its key.
    cert: PathBuf,
    key: PathBuf,
}

impl ClientFiles {
    fn write(ca: &Ca, other_ca: &Ca) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let client = ca.client(CERT_USER);
        let files = Self {
            ca: dir.path().join("ca.pem"),
            other_ca: dir.path().join("other-ca.pem"),
            cert: dir.path().join("client.pem"),
            key: dir.path().join("client.key"),
            _dir: dir,
        };
        std::fs::write(&files.ca, ca.pem()).unwrap();
        std::fs::write(&files.other_ca, other_ca.pem()).unwrap();
        std::fs::write(&files.cert, client.cert_pem).unwrap();
        std::fs::write(&files.key, client.key_pem).unwrap();
        files
    }
}

fn url(user: &str, host: &str, port: u16, database: &str, query: &str) -> String {
    format!("postgres://{user}:{PASSWORD}@{host}:{port}/{database}?{query}")
}

/// The server's configuration for `url` and `tls`, with a small pool.
fn config(dir: &Path, url: &str, tls: DatabaseTls) -> Config {
    Config {
        database_url: Some(url.to_owned()),
        database_tls: tls,
        database_max_connections: 3,
        ..test_config(dir)
    }
}

/// Starts a server on `url` with `tls`, expecting a refusal; returns its
/// message, which must not show the password.
async fn refused(url: &str, tls: DatabaseTls) -> String {
    let dir = tempfile::tempdir().unwrap();
    let error = match mfa_server::start(&config(dir.path(), url, tls)).await {
        Ok(_) => panic!("the server started on {url}"),
        Err(error) => error.to_string(),
    };
    assert!(!error.contains(PASSWORD), "the password shows: {error}");
    error
}

/// Starts a server on `url` with `tls`, and proves it works through gRPC:
/// a phone enrolls (the portal's watch hears the change listener), and an
/// administrator reads the audit log.
async fn serving(url: &str, tls: DatabaseTls) -> TestServer {
    let (url, tls) = (url.to_owned(), tls);
    let server = TestServer::start_on(None, |c| {
        c.database_url = Some(url);
        c.database_tls = tls;
        c.database_max_connections = 3;
    })
    .await;
    let portal = server.portal().await;
    server.enroll(&portal, "alice", "alice@example.com").await;
    let audit = within(server.audit_types("alice")).await;
    assert!(
        audit.iter().any(|t| t == "challenge.approved"),
        "audit: {audit:?}"
    );
    server
}

/// Whether each connection the server holds to `database` is encrypted
/// (the pool's and the change listener's), as PostgreSQL reports it.
async fn encrypted(cluster: &PgCluster, database: &str) -> Vec<String> {
    cluster
        .query(&format!(
            "SELECT s.ssl::text FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
             WHERE a.datname = '{database}' AND a.application_name = 'mfa-server'"
        ))
        .await
}

fn assert_all_encrypted(connections: &[String]) {
    assert!(
        connections.len() >= 2 && connections.iter().all(|ssl| ssl == "true"),
        "the server's connections (pool and listener) must all be encrypted: {connections:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_modes_against_a_cluster_with_tls() {
    if !pg_cluster::available_or_skip("postgres_tls::tls_modes_against_a_cluster_with_tls") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = Ca::new("mfa test PostgreSQL CA");
    let other_ca = Ca::new("another CA");
    // For `localhost` only: connecting to 127.0.0.1 is a host name it lacks.
    let server_cert = ca.server(&["localhost"]);
    let cluster = PgCluster::start(
        Some(ServerTls {
            server: &server_cert,
            client_ca: &ca,
        }),
        CERT_USER,
    )
    .await;
    let files = ClientFiles::write(&ca, &other_ca);
    let port = cluster.port;
    let ca_file = files.ca.display().to_string();
    let other_ca_file = files.other_ca.display().to_string();

    // verify-full with the test CA: the server works, over TLS only.
    let database = cluster.create_database("postgres").await;
    let good = url(
        "postgres",
        "localhost",
        port,
        &database,
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    );
    let _server = serving(&good, DatabaseTls::default()).await;
    assert_all_encrypted(&encrypted(&cluster, &database).await);

    // A CA that did not sign the server's certificate.
    let wrong_ca = url(
        "postgres",
        "localhost",
        port,
        &database,
        &format!("sslmode=verify-full&sslrootcert={other_ca_file}"),
    );
    let error = refused(&wrong_ca, DatabaseTls::default()).await;
    assert!(
        error.contains(&format!(
            "PostgreSQL TLS: the server's certificate is not signed by a CA in \
             {other_ca_file} (sslrootcert)"
        )),
        "{error}"
    );
    // verify-ca checks the CA too.
    let error = refused(
        &wrong_ca.replace("verify-full", "verify-ca"),
        DatabaseTls::default(),
    )
    .await;
    assert!(
        error.contains("the server's certificate is not signed by a CA in"),
        "{error}"
    );

    // A host name the certificate lacks.
    let wrong_host = url(
        "postgres",
        "127.0.0.1",
        port,
        &database,
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    );
    let error = refused(&wrong_host, DatabaseTls::default()).await;
    assert!(
        error.contains(
            "PostgreSQL TLS: the server's certificate does not match host 127.0.0.1 \
             (it names localhost)"
        ),
        "{error}"
    );
    // verify-ca checks the CA only: the same connection works.
    let verify_ca_database = cluster.create_database("postgres").await;
    let _verify_ca = serving(
        &url(
            "postgres",
            "127.0.0.1",
            port,
            &verify_ca_database,
            &format!("sslmode=verify-ca&sslrootcert={ca_file}"),
        ),
        DatabaseTls::default(),
    )
    .await;
    assert_all_encrypted(&encrypted(&cluster, &verify_ca_database).await);

    // The configuration's keys override the URL's parameters: a URL that
    // says disable and names the wrong CA works over verified TLS…
    let overridden_database = cluster.create_database("postgres").await;
    let _overridden = serving(
        &url(
            "postgres",
            "localhost",
            port,
            &overridden_database,
            &format!("sslmode=disable&sslrootcert={other_ca_file}"),
        ),
        DatabaseTls {
            mode: Some(SslMode::VerifyFull),
            root_cert_file: Some(files.ca.clone()),
            ..DatabaseTls::default()
        },
    )
    .await;
    assert_all_encrypted(&encrypted(&cluster, &overridden_database).await);
    // …and a good URL fails with a wrong CA file in the configuration,
    // named by its key.
    let error = refused(
        &good,
        DatabaseTls {
            root_cert_file: Some(files.other_ca.clone()),
            ..DatabaseTls::default()
        },
    )
    .await;
    assert!(
        error.contains(&format!(
            "not signed by a CA in {other_ca_file} (database_tls.root_cert_file)"
        )),
        "{error}"
    );
    // Without TLS (disable, from the URL alone), the connections are plain.
    let plain_database = cluster.create_database("postgres").await;
    let _plain = serving(
        &url(
            "postgres",
            "localhost",
            port,
            &plain_database,
            "sslmode=disable",
        ),
        DatabaseTls::default(),
    )
    .await;
    let plain = encrypted(&cluster, &plain_database).await;
    assert!(
        !plain.is_empty() && plain.iter().all(|ssl| ssl == "false"),
        "{plain:?}"
    );

    // Client certificates: the role that PostgreSQL authenticates by
    // certificate logs in with one (from the configuration's keys)…
    let cert_database = cluster.create_database(CERT_USER).await;
    let cert_url = url(
        CERT_USER,
        "localhost",
        port,
        &cert_database,
        &format!("sslmode=verify-full&sslrootcert={ca_file}"),
    );
    let _certified = serving(
        &cert_url,
        DatabaseTls {
            cert_file: Some(files.cert.clone()),
            key_file: Some(files.key.clone()),
            ..DatabaseTls::default()
        },
    )
    .await;
    assert_all_encrypted(&encrypted(&cluster, &cert_database).await);
    // …and is refused without one, in PostgreSQL's words.
    let error = refused(&cert_url, DatabaseTls::default()).await;
    assert!(
        error.contains("connection requires a valid client certificate"),
        "{error}"
    );
    // A certificate without its key is named before any connection.
    let error = refused(
        &format!("{cert_url}&sslcert={}", files.cert.display()),
        DatabaseTls::default(),
    )
    .await;
    assert!(
        error.contains(&format!(
            "PostgreSQL TLS: the client certificate {} (sslcert) needs its private key",
            files.cert.display()
        )),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn require_refuses_a_cluster_without_tls() {
    if !pg_cluster::available_or_skip("postgres_tls::require_refuses_a_cluster_without_tls") {
        return;
    }
    let cluster = PgCluster::start(None, CERT_USER).await;
    let database = cluster.create_database("postgres").await;
    let plain = url("postgres", "127.0.0.1", cluster.port, &database, "");
    for mode in ["require", "verify-full"] {
        let error = refused(&format!("{plain}sslmode={mode}"), DatabaseTls::default()).await;
        assert!(
            error.contains(&format!(
                "PostgreSQL at 127.0.0.1:{} does not offer TLS, and sslmode={mode} \
                 needs it",
                cluster.port
            )),
            "{error}"
        );
    }
    // The same from the configuration, named by its key.
    let error = refused(
        &plain,
        DatabaseTls {
            mode: Some(SslMode::Require),
            ..DatabaseTls::default()
        },
    )
    .await;
    assert!(
        error.contains("does not offer TLS, and database_tls.mode=require needs it"),
        "{error}"
    );
    // prefer, the default, falls back to clear text.
    let _server = serving(&plain, DatabaseTls::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_cut_off_silently_give_their_places_back() {
    let test = "postgres_tls::tls_connections_cut_off_silently_give_their_places_back";
    if !pg_cluster::available_or_skip(test) {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = Ca::new("mfa test PostgreSQL CA");
    let server_cert = ca.server(&["localhost", "127.0.0.1"]);
    let cluster = PgCluster::start(
        Some(ServerTls {
            server: &server_cert,
            client_ca: &ca,
        }),
        CERT_USER,
    )
    .await;
    let database = cluster.create_database("postgres").await;
    let proxy = TcpProxy::start(([127, 0, 0, 1], cluster.port).into()).await;
    // A pool of two that gives up quickly, and every call reads its API key
    // from the database.
    let through_proxy = url(
        "postgres",
        "127.0.0.1",
        proxy.addr.port(),
        &database,
        "sslmode=require",
    );
    let server = TestServer::start_on(None, |c| {
        c.database_url = Some(through_proxy);
        c.database_acquire_timeout = Duration::from_millis(300);
        c.database_query_timeout = Duration::from_millis(500);
        c.database_max_connections = 3;
        c.api_key_cache_ttl = Duration::ZERO;
    })
    .await;
    assert_all_encrypted(&encrypted(&cluster, &database).await);
    let admin = server.admin().await;

    // Twice, as many as the pool holds: a call waits inside the database
    // for the API keys, which the test holds, when the network goes silent,
    // then heals for new connections only. Each call gives up; closing its
    // connection must not wait for the silent server.
    let mut holder = cluster.connect(&database).await;
    for _ in 0..2 {
        holder.execute("BEGIN").await.unwrap();
        holder
            .execute("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let call = within(call_waiting_for_the_lock(&admin, &mut holder)).await;
        proxy.stall();
        proxy.forward_new_only();
        let error = within(call).await.unwrap().unwrap_err();
        assert_eq!(error.code(), Code::Unavailable, "{error:?}");
        holder.execute("ROLLBACK").await.unwrap();
    }

    // Once the idle connections the cuts left are discarded (each failing
    // one call), calls work again.
    within(async {
        loop {
            match list(admin.clone()).await {
                Ok(_) => return,
                Err(e) if e.code() == Code::Unavailable => continue,
                Err(e) => panic!("{e:?}"),
            }
        }
    })
    .await;
}

/// An administrator's call that reads the audit log (and, with no cache,
/// the caller's API key first).
async fn list(
    mut admin: AdminClient,
) -> Result<tonic::Response<mfa_proto::v1::ListAuditEventsResponse>, tonic::Status> {
    admin
        .list_audit_events(mfa_proto::v1::ListAuditEventsRequest {
            user_id: String::new(),
            page_size: 10,
            page_token: String::new(),
        })
        .await
}

/// Starts a [`list`] call and returns it once it waits for a lock `holder`
/// holds. A call that first meets an idle connection a silent network left
/// behind fails while the pool discards it; the next one is made.
async fn call_waiting_for_the_lock(
    admin: &AdminClient,
    holder: &mut sqlx::PgConnection,
) -> tokio::task::JoinHandle<
    Result<tonic::Response<mfa_proto::v1::ListAuditEventsResponse>, tonic::Status>,
> {
    loop {
        let call = tokio::spawn(list(admin.clone()));
        loop {
            if waits_for_a_lock(holder).await {
                return call;
            }
            if call.is_finished() {
                let error = call.await.unwrap().unwrap_err();
                assert_eq!(error.code(), Code::Unavailable, "{error:?}");
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Whether a session waits for a lock `holder` holds.
async fn waits_for_a_lock(holder: &mut sqlx::PgConnection) -> bool {
    let waiting: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_locks WHERE NOT granted \
         AND pg_backend_pid() = ANY(pg_blocking_pids(pid))",
    )
    .fetch_one(holder)
    .await
    .unwrap();
    waiting > 0
}
