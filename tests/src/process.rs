//! The real `mfa-server` binary in a child process, for tests that must kill
//! it as a crash would (SIGKILL: no shutdown, no flush, no checkpoint).
//!
//! The binary is the one Cargo built next to the test executable
//! (`target/<profile>/mfa-server`): `cargo test --workspace --all-targets`
//! (as `make test` runs it) builds it; a run of the test alone needs
//! `cargo build -p mfa-server` first.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

/// The keys `serve --dev` prints when it creates the development tenant.
#[derive(Debug, Clone)]
pub struct DevKeys {
    pub portal_key: String,
    pub admin_key: String,
}

/// A running `mfa-server serve --dev`, killed when dropped.
pub struct ServerProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The gRPC listener's address.
    pub addr: std::net::SocketAddr,
    /// The address of `/metrics` and `/healthz`.
    pub metrics_addr: std::net::SocketAddr,
    /// The development tenant's keys, on the first start of an empty database.
    pub keys: Option<DevKeys>,
}

/// `target/<profile>/mfa-server`, beside the directory of the test executable.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable under target/<profile>/deps");
    let binary = profile_dir.join(format!("mfa-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p mfa-server` \
         (`cargo test --workspace --all-targets` builds it too)",
        binary.display()
    );
    binary
}

impl ServerProcess {
    /// Starts `serve --dev` on `data_dir` (and `database_url` when given,
    /// else the SQLite file in `data_dir`) on an ephemeral loopback port,
    /// with `settings` as further variables (`MFA_*` settings, or others it
    /// reads, such as `GOOGLE_APPLICATION_CREDENTIALS`), and returns once it
    /// listens.
    pub fn start(data_dir: &Path, database_url: Option<&str>, settings: &[(&str, &str)]) -> Self {
        Self::start_logging(data_dir, database_url, settings, Stdio::inherit())
    }

    /// As [`ServerProcess::start`], with its log (stderr; errors only unless
    /// `settings` set `RUST_LOG`) written to `log`.
    pub fn start_logging(
        data_dir: &Path,
        database_url: Option<&str>,
        settings: &[(&str, &str)],
        log: impl Into<Stdio>,
    ) -> Self {
        let mut command = Command::new(binary());
        command
            .args(["serve", "--dev"])
            .env("MFA_DATA_DIR", data_dir)
            .env("MFA_LISTEN", "127.0.0.1:0")
            .env("MFA_METRICS_LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "error")
            .envs(settings.iter().copied())
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(url) = database_url {
            command.env("MFA_DATABASE_URL", url);
        }
        let mut child = command.spawn().expect("mfa-server starts");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let (mut portal_key, mut admin_key, mut url, mut metrics) = (None, None, None, None);
        for line in lines.by_ref().map_while(Result::ok) {
            let line = line.trim();
            if let Some(key) = line.strip_prefix("portal key:") {
                portal_key = Some(key.trim().to_owned());
            } else if let Some(key) = line.strip_prefix("admin key:") {
                admin_key = Some(key.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("metrics and health on http://") {
                metrics = rest.split('/').next().and_then(|addr| addr.parse().ok());
            } else if let Some(rest) = line.strip_prefix("mfa-server listening on ") {
                url = rest.split(' ').next().map(str::to_owned);
                break;
            }
        }
        // Keep the pipe drained, so that the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let Some((addr, metrics_addr)) = url.and_then(|addr| addr.parse().ok()).zip(metrics) else {
            let status = child.wait().expect("exit status");
            panic!("mfa-server exited before listening: {status}")
        };
        let keys = match (portal_key, admin_key) {
            (Some(portal_key), Some(admin_key)) => Some(DevKeys {
                portal_key,
                admin_key,
            }),
            _ => None,
        };
        Self {
            child,
            url: format!("http://{addr}"),
            addr,
            metrics_addr,
            keys,
        }
    }

    /// A portal of the development tenant (the first start's keys).
    pub async fn portal(&self) -> mfa_sdk::portal::RelyingParty {
        let keys = self.keys.as_ref().expect("the development tenant's keys");
        mfa_sdk::portal::RelyingParty::connect(&self.url, &keys.portal_key)
            .await
            .expect("portal connects")
    }

    /// Stops it as an operator or an orchestrator does (SIGTERM: calls in
    /// flight finish, watches end with UNAVAILABLE) and waits for it to exit.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM delivered");
        let exit = self.child.wait().expect("reaped");
        assert!(
            exit.success(),
            "mfa-server exits cleanly on SIGTERM: {exit}"
        );
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL, as a crash or the kernel's OOM killer would,
    /// and reaps it.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL delivered");
        self.child.wait().expect("reaped");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
