//! What operators watch: Prometheus metrics and health on their own HTTP
//! listener, gRPC request metrics and request ids, and log set-up.

pub mod grpc;
pub mod health;
pub mod http;
pub mod logging;
pub mod metrics;
