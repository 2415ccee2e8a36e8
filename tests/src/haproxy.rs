//! HAProxy (Debian's `haproxy`) in front of two replicas, run with the
//! configuration the README gives operators (`deploy/haproxy/haproxy.cfg`),
//! its addresses set through the environment as that file expects.

use std::{
    net::{SocketAddr, TcpListener},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The configuration file under test.
pub fn config_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/haproxy/haproxy.cfg")
}

/// The `haproxy` binary, if installed.
fn binary() -> Option<PathBuf> {
    [
        "/usr/sbin/haproxy",
        "/usr/bin/haproxy",
        "/usr/local/sbin/haproxy",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|path| path.exists())
}

/// Whether HAProxy is installed; if not, says that `test` is skipped, or
/// fails under `CI=true` (where `.ci/run` installs it).
pub fn available_or_skip(test: &str) -> bool {
    crate::installed_or_skip(test, binary().is_some(), "haproxy")
}

/// A free loopback port, for a listener that another process will open.
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// A running HAProxy, stopped when dropped.
pub struct Haproxy {
    child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
}

/// A replica as the balancer sees it: its gRPC and health (metrics) listeners.
#[derive(Debug, Clone, Copy)]
pub struct Backend {
    pub grpc: SocketAddr,
    pub health: SocketAddr,
}

impl Haproxy {
    /// Starts HAProxy on `addr` in front of `backends`, and returns once it
    /// accepts connections.
    pub fn start(addr: SocketAddr, backends: [Backend; 2]) -> Self {
        let binary = binary().expect("haproxy is installed (see available_or_skip)");
        let child = Command::new(binary)
            // -db: stay in the foreground, so that the test owns the process.
            .args(["-db", "-f"])
            .arg(config_file())
            .env("LB_BIND", addr.to_string())
            .env("REPLICA_1", backends[0].grpc.to_string())
            .env(
                "REPLICA_1_HEALTH_PORT",
                backends[0].health.port().to_string(),
            )
            .env("REPLICA_2", backends[1].grpc.to_string())
            .env(
                "REPLICA_2_HEALTH_PORT",
                backends[1].health.port().to_string(),
            )
            .stdout(Stdio::null())
            .spawn()
            .expect("haproxy starts");
        let mut haproxy = Self { child, addr };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = haproxy.child.try_wait() {
                panic!("haproxy exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        haproxy
    }

    /// `http://<addr>`, for the SDK.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
