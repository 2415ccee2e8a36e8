//! PostgreSQL for the tests: which backend the suite runs on, a fresh
//! uniquely named database per test (dropped afterwards), and whether the
//! server at `TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) can be reached.

use sqlx::{Connection, Executor, PgConnection};
use std::{io::Write, time::Duration};

/// The database the e2e suite runs on, chosen by `TEST_DATABASE`
/// (`sqlite`, the default, or `postgres`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The backend selected for this run.
pub fn backend() -> Backend {
    match std::env::var("TEST_DATABASE").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Ok("") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("TEST_DATABASE={other:?}: use sqlite or postgres"),
    }
}

/// The URL of the PostgreSQL server's maintenance database.
pub fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

async fn connect_admin() -> Result<PgConnection, String> {
    let connecting = PgConnection::connect(&admin_url());
    match tokio::time::timeout(Duration::from_secs(5), connecting).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err("no answer within 5 s".to_owned()),
    }
}

/// Whether a PostgreSQL-only test should run: true when the server answers;
/// otherwise it says clearly that `test` is skipped and why, except under CI
/// (`CI=true`), where PostgreSQL is required and its absence fails the test.
pub async fn available_or_skip(test: &str) -> bool {
    match connect_admin().await {
        Ok(_) => true,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL at {} is required under CI: {why}", admin_url())
        }
        Err(why) => {
            // Straight to stderr, past the test harness's output capture, so
            // that the skip shows in an ordinary `cargo test` run.
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED {test}: PostgreSQL at {} is not reachable ({why}); \
                 start it or set TEST_POSTGRES_URL",
                admin_url()
            );
            false
        }
    }
}

/// The PostgreSQL server's address.
pub fn server_addr() -> std::net::SocketAddr {
    use std::net::ToSocketAddrs;
    let url = url::Url::parse(&admin_url()).expect("TEST_POSTGRES_URL is a URL");
    (
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432),
    )
        .to_socket_addrs()
        .expect("PostgreSQL address resolves")
        .next()
        .expect("PostgreSQL address")
}

/// A database created for one test and dropped when this is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    /// Its URL.
    pub url: String,
}

impl TestDatabase {
    /// Creates a database with a unique name.
    pub async fn create() -> Self {
        let mut admin = connect_admin()
            .await
            .unwrap_or_else(|why| panic!("PostgreSQL at {}: {why}", admin_url()));
        let name = format!("mfa_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create test database");
        let mut url = url::Url::parse(&admin_url()).expect("TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        Self {
            name,
            url: url.to_string(),
        }
    }

    /// Its URL when reached through `proxy` (e.g. a [`crate::tcp_proxy::TcpProxy`]).
    pub fn url_through(&self, proxy: std::net::SocketAddr) -> String {
        let mut url = url::Url::parse(&self.url).expect("database URL");
        url.set_host(Some(&proxy.ip().to_string())).expect("host");
        url.set_port(Some(proxy.port())).expect("port");
        url.to_string()
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every row of every table in it, as text.
    pub async fn dump(&self) -> String {
        let mut connection = PgConnection::connect(&self.url)
            .await
            .expect("test database connection");
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'")
                .fetch_all(&mut connection)
                .await
                .expect("table list");
        let mut dump = String::new();
        for table in tables {
            let rows: Vec<String> =
                sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t"))
                    .fetch_all(&mut connection)
                    .await
                    .expect("table rows");
            for row in rows {
                dump.push_str(&row);
                dump.push('\n');
            }
        }
        dump
    }

    /// A direct connection, for what a test does to the database itself.
    pub async fn connect_admin(&self) -> PgConnection {
        connect_admin().await.expect("admin connection")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside the test's runtime, which cannot block on itself:
        // a short-lived thread with its own runtime drops the database,
        // closing whatever connections a server left open.
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async {
                    let mut admin = connect_admin().await?;
                    admin
                        .execute(statement.as_str())
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<_, String>(())
                })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!("could not drop test database {}: {error}", self.name);
        }
    }
}
