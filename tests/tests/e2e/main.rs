//! End-to-end tests: the real server on loopback, a temporary SQLite file
//! (or, with `TEST_DATABASE=postgres`, a fresh PostgreSQL database per
//! test), and only gRPC between them and the test (through the SDK).

mod admin;
mod client_address;
mod device_keys;
mod enrollment;
mod fcm_credentials;
mod hostile;
mod http_api;
mod limits;
mod offline_codes;
mod persistence;
mod push;
mod push_proxy;
mod retention;
mod service;
mod sign_in;
mod tls;
