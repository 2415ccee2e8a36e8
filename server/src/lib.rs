//! `mfa-server`: a push-notification MFA approval service with number matching.
//!
//! A tour, in the order a request travels:
//! - [`api`] decodes gRPC requests (`mfa.v1`), authenticates API keys, and
//!   encodes answers; watch streams follow [`events`]. [`http`] is the
//!   portal service's HTTP/JSON face, over the same operations.
//!   [`client_address`] tells who called, behind a load balancer too.
//! - [`domain`] holds the rules: enrollment, challenges, device proofs,
//!   administration, audit.
//! - [`store`] keeps state behind a narrow trait; [`store::SqliteStore`] is the
//!   embedded default, [`store::PostgresStore`] serves several replicas, whose
//!   changes reach every replica's [`events`] through [`store::ChangeFeed`].
//! - [`push`] delivers notifications through APNs and FCM in the background;
//!   [`sweeper`] expires what is due.
//! - [`oidc`] is a second face for browsers: an OpenID Connect provider
//!   whose hosted page runs the same challenges.
//! - [`server`] wires them together, behind [`tls`]; [`config`] reads the
//!   settings; [`identity`] and [`offline_code_key`] hold the server's keys.

pub mod api;
pub mod client_address;
pub mod config;
pub mod domain;
pub mod error_text;
pub mod events;
pub mod http;
pub mod identity;
mod key_file;
pub mod model;
pub mod offline_code_key;
pub mod oidc;
pub mod push;
pub mod server;
pub mod stats;
pub mod store;
pub mod sweeper;
pub mod telemetry;
pub mod tls;

pub use config::Config;

/// The running version (the workspace's), as `--version`, `/healthz` and
/// `mfa_build_info` show it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub use server::{start, RunningServer};
