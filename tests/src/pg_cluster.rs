//! A throwaway PostgreSQL cluster of the test's own, made with Debian's
//! `initdb` and `postgres` (`/usr/lib/postgresql/<version>/bin`) in a
//! temporary directory on a free loopback port, so that TLS settings can be
//! tried without touching the machine's cluster. It is stopped and removed
//! when dropped.
//!
//! PostgreSQL refuses to run as root: when the tests do, the cluster's
//! processes run as the `postgres` user, which owns the directory.

use sqlx::{postgres::PgConnectOptions, ConnectOptions, Executor};
use std::{
    io::Write,
    os::unix::{fs::MetadataExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// How long a new cluster may take to accept connections.
const STARTUP: Duration = Duration::from_secs(60);

/// A certificate authority made for one test, with what it issued.
pub struct Ca {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

/// A certificate and its private key, both PEM.
pub struct KeyPair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl Ca {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Self {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).expect("CA certificate");
        Self { key, cert }
    }

    /// Its certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `names` (host names or IP addresses).
    pub fn server(&self, names: &[&str]) -> KeyPair {
        self.issue(
            names.iter().map(|n| n.to_string()).collect(),
            "PostgreSQL test server",
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate whose common name is `user`, as PostgreSQL's
    /// `cert` authentication matches it against the user name.
    pub fn client(&self, user: &str) -> KeyPair {
        self.issue(Vec::new(), user, rcgen::ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn issue(
        &self,
        names: Vec<String>,
        common_name: &str,
        usage: rcgen::ExtendedKeyUsagePurpose,
    ) -> KeyPair {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(names).expect("certificate params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = vec![usage];
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("certificate");
        KeyPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// The TLS a cluster offers: its certificate, and the CA whose client
/// certificates it accepts.
pub struct ServerTls<'a> {
    pub server: &'a KeyPair,
    pub client_ca: &'a Ca,
}

/// A running throwaway cluster.
pub struct PgCluster {
    child: Child,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// Its binaries and the user they run as.
    tools: Tools,
    dir: tempfile::TempDir,
}

/// How the cluster's programs are run: from Debian's directory, as the
/// `postgres` user when we are root (`None`: as ourselves).
struct Tools {
    bin: PathBuf,
    as_user: Option<(u32, u32)>,
}

impl Tools {
    fn command(&self, program: &str, dir: &Path) -> Command {
        let mut command = Command::new(self.bin.join(program));
        if let Some((uid, gid)) = self.as_user {
            command.uid(uid).gid(gid);
        }
        // Our working directory may be closed to the postgres user.
        command
            .current_dir(dir)
            .env("LC_ALL", "C")
            .env_remove("PGDATA");
        command
    }
}

/// The directory of Debian's PostgreSQL server binaries (the newest
/// version installed).
fn binaries() -> Result<PathBuf, String> {
    let root = Path::new("/usr/lib/postgresql");
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
        .map_err(|e| format!("{}: {e}", root.display()))?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").exists() && bin.join("postgres").exists()).then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| format!("no initdb and postgres under {}/*/bin", root.display()))
}

/// Whether a test that runs its own cluster can: true when the server
/// binaries are installed; otherwise it says clearly that `test` is skipped
/// and why, except under CI (`CI=true`), where their absence fails the test.
pub fn available_or_skip(test: &str) -> bool {
    match binaries() {
        Ok(_) => true,
        Err(why) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("PostgreSQL's server binaries are required under CI: {why}")
        }
        Err(why) => {
            // Straight to stderr, past the test harness's output capture.
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED {test}: PostgreSQL's server binaries are not installed ({why}); \
                 install Debian's postgresql package"
            );
            false
        }
    }
}

/// The `postgres` user's uid and gid, from the password file.
fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres") && fields.len() > 3)
                .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
                .flatten()
        })
        .expect("a postgres user to run the cluster as (tests run as root)")
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

impl PgCluster {
    /// Creates and starts a cluster, with TLS when `tls` is given (`ssl = on`)
    /// and without otherwise (`ssl = off`), and returns once it accepts
    /// connections. Authentication: `trust` from 127.0.0.1, except for the
    /// role `cert_user`, which must come over TLS with a client certificate
    /// signed by the client CA (`cert`).
    pub async fn start(tls: Option<ServerTls<'_>>, cert_user: &str) -> Self {
        let bin = binaries().expect("PostgreSQL server binaries");
        let dir = tempfile::tempdir().expect("temporary directory");
        // Who runs the cluster: ourselves, unless we are root.
        let as_user = (std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(0)
            == 0)
            .then(postgres_user);
        let own = |path: &Path| {
            if let Some((uid, gid)) = as_user {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
            }
        };
        own(dir.path());
        let data = dir.path().join("data");
        let tools = Tools { bin, as_user };
        let command = |program: &str| tools.command(program, dir.path());
        let initdb = command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("initdb runs");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let hba = format!(
            "local all all trust\n\
             hostnossl all {cert_user} 127.0.0.1/32 reject\n\
             hostssl all {cert_user} 127.0.0.1/32 cert\n\
             host all all 127.0.0.1/32 trust\n"
        );
        std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");

        let mut settings = vec![
            "listen_addresses=127.0.0.1".to_owned(),
            format!("unix_socket_directories={}", dir.path().display()),
            "fsync=off".to_owned(),
            "max_connections=60".to_owned(),
            "shared_buffers=16MB".to_owned(),
        ];
        match tls {
            Some(tls) => {
                let files = dir.path().join("tls");
                std::fs::create_dir(&files).expect("tls directory");
                own(&files);
                for (name, contents) in [
                    ("server.pem", &tls.server.cert_pem),
                    ("server.key", &tls.server.key_pem),
                    ("client-ca.pem", &tls.client_ca.pem()),
                ] {
                    let path = files.join(name);
                    std::fs::write(&path, contents).expect("TLS file");
                    // PostgreSQL refuses a key that others can read.
                    std::fs::set_permissions(
                        &path,
                        std::os::unix::fs::PermissionsExt::from_mode(0o600),
                    )
                    .expect("chmod");
                    own(&path);
                }
                settings.extend([
                    "ssl=on".to_owned(),
                    format!("ssl_cert_file={}", files.join("server.pem").display()),
                    format!("ssl_key_file={}", files.join("server.key").display()),
                    format!("ssl_ca_file={}", files.join("client-ca.pem").display()),
                ]);
            }
            None => settings.push("ssl=off".to_owned()),
        }

        let port = free_port();
        let log = std::fs::File::create(dir.path().join("postgres.log")).expect("log file");
        let mut postgres = command("postgres");
        postgres
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string());
        for setting in &settings {
            postgres.arg("-c").arg(setting);
        }
        let child = postgres
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        let mut cluster = Self {
            child,
            port,
            tools,
            dir,
        };
        cluster.wait_until_ready().await;
        cluster
            .execute(&format!("CREATE ROLE {cert_user} LOGIN"))
            .await;
        cluster
    }

    /// Polls until a connection succeeds; fails with the server's log if
    /// it exits or takes longer than [`STARTUP`].
    async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + STARTUP;
        loop {
            let error = match self.admin_options().connect().await {
                Ok(_) => return,
                Err(error) => error,
            };
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("postgres exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within {STARTUP:?} ({error}):\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default()
    }

    /// The superuser's connection options over the Unix socket, where TLS
    /// plays no part.
    fn admin_options(&self) -> PgConnectOptions {
        PgConnectOptions::new_without_pgpass()
            .socket(self.dir.path())
            .port(self.port)
            .username("postgres")
            .database("postgres")
            .ssl_mode(sqlx::postgres::PgSslMode::Disable)
    }

    /// A connection as the superuser to `database`, for what a test does
    /// to the database itself.
    pub async fn connect(&self, database: &str) -> sqlx::PgConnection {
        self.admin_options()
            .database(database)
            .connect()
            .await
            .expect("admin connection")
    }

    /// Runs `sql` as the superuser.
    pub async fn execute(&self, sql: &str) {
        let mut connection = self.connect("postgres").await;
        connection.execute(sql).await.expect("statement runs");
    }

    /// The rows of `sql` (one text column) as the superuser.
    pub async fn query(&self, sql: &str) -> Vec<String> {
        let mut connection = self.connect("postgres").await;
        sqlx::query_scalar(sql)
            .fetch_all(&mut connection)
            .await
            .expect("query runs")
    }

    /// Creates a database owned by `owner`; returns its name.
    pub async fn create_database(&self, owner: &str) -> String {
        let name = format!("mfa_tls_{}", uuid::Uuid::new_v4().simple());
        self.execute(&format!("CREATE DATABASE {name} OWNER {owner}"))
            .await;
        name
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Immediate shutdown (SIGQUIT): the postmaster takes its backends
        // with it; `-w` returns once they are gone. The directory goes with
        // `dir`.
        let stopped = self
            .tools
            .command("pg_ctl", self.dir.path())
            .arg("stop")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}
