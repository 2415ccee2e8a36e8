//! Transport security: TLS with a CA the test makes, client certificates for
//! portals and administrators, and no plaintext off loopback.

use mfa_proto::v1::{ChallengeState, ListDevicesRequest, SignInContext};
use mfa_sdk::{portal::RelyingParty, ConnectOptions};
use mfa_server::tls::TlsConfig;
use mfa_tests::{tls::TestPki, *};
use tonic::Code;

/// A server on TLS with `pki`'s certificate; with `require_client_cert`,
/// portal and admin calls also need a client certificate from `pki`.
async fn tls_server(pki: &TestPki, require_client_cert: bool) -> TestServer {
    let mut server = TestServer::start_with(|config| {
        let files = pki.write_server_files(&config.data_dir.join("tls"));
        config.tls = TlsConfig {
            cert_file: Some(files.cert_file),
            key_file: Some(files.key_file),
            client_ca_file: require_client_cert.then_some(files.ca_file),
            require_client_cert,
            allow_plaintext: false,
        };
    })
    .await;
    server.connect = ConnectOptions::new().ca_certificate_pem(pki.ca_pem());
    server
}

/// Whether `error` came from the connection (handshake refused, connection
/// closed) rather than from the service answering.
fn is_connection_failure(error: &mfa_sdk::Error) -> bool {
    matches!(error, mfa_sdk::Error::Transport(_))
        || matches!(
            error.code(),
            Some(Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled)
        )
}

fn with_client_cert(options: &ConnectOptions, pki: &TestPki, name: &str) -> ConnectOptions {
    let client = pki.client(name);
    options
        .clone()
        .client_identity_pem(client.cert_pem, client.key_pem)
}

#[tokio::test]
async fn enrollment_and_sign_in_work_over_tls() {
    let pki = TestPki::new("mfa test CA");
    let server = tls_server(&pki, false).await;
    assert!(
        server.url.starts_with("https://127.0.0.1:"),
        "{}",
        server.url
    );

    let portal = server.portal().await;
    let mut phone = server.enroll(&portal, "u", "u@example.jp").await;
    assert!(phone.account().server_url.starts_with("https://"));
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let pending = only_pending(&mut phone).await;
    let answer = phone.approve(&pending, &challenge.number).await.unwrap();
    assert_eq!(answer.state, ChallengeState::Approved);
    let outcome = within(portal.await_outcome(&challenge.challenge_id))
        .await
        .unwrap();
    assert_eq!(outcome.state(), ChallengeState::Approved);
}

#[tokio::test]
async fn a_client_that_trusts_another_ca_or_speaks_plaintext_is_refused() {
    let pki = TestPki::new("mfa test CA");
    let server = tls_server(&pki, false).await;
    let impostor_ca = TestPki::new("another CA");

    let other_ca = ConnectOptions::new().ca_certificate_pem(impostor_ca.ca_pem());
    let error = RelyingParty::connect_with(&server.url, &server.tenant.portal_key, &other_ca)
        .await
        .unwrap_err();
    assert!(matches!(error, mfa_sdk::Error::Transport(_)), "{error:?}");

    // The same port over plaintext HTTP/2 gets no answer from the service.
    let plaintext_url = server.url.replace("https://", "http://");
    let refused = match RelyingParty::connect(&plaintext_url, &server.tenant.portal_key).await {
        Err(error) => error,
        Ok(portal) => portal.user_status("u").await.unwrap_err(),
    };
    assert!(is_connection_failure(&refused), "{refused:?}");
}

#[tokio::test]
async fn mutual_tls_refuses_portal_and_admin_calls_without_a_client_certificate() {
    let pki = TestPki::new("mfa test CA");
    let mut server = tls_server(&pki, true).await;
    let ca_only = server.connect.clone();

    // Without a client certificate: the portal and admin services refuse,
    // even with a valid API key, and nothing is created.
    let bare_portal = server.portal().await;
    let error = bare_portal
        .begin_enrollment("u", "u@example.jp")
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(Code::Unauthenticated), "{error:?}");
    let status = server
        .admin()
        .await
        .list_devices(ListDevicesRequest {
            user_id: "u".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(error_info(&status).reason, "CLIENT_CERTIFICATE_REQUIRED");

    // A certificate from another CA fails the handshake.
    let stranger = TestPki::new("another CA");
    let forged = with_client_cert(&ca_only, &stranger, "portal.example.jp");
    let refused =
        match RelyingParty::connect_with(&server.url, &server.tenant.portal_key, &forged).await {
            Err(error) => error,
            Ok(portal) => portal.user_status("u").await.unwrap_err(),
        };
    assert!(is_connection_failure(&refused), "{refused:?}");

    // With the CA's client certificate the portal works; the phone needs
    // none, because its device key authenticates it.
    server.connect = with_client_cert(&ca_only, &pki, "portal.example.jp");
    let portal = server.portal().await;
    let status = portal.user_status("u").await.unwrap();
    assert!(status.devices.is_empty(), "nothing was enrolled before");
    let begun = portal.begin_enrollment("u", "u@example.jp").await.unwrap();
    let uri = mfa_sdk::EnrollmentUri::parse(&begun.qr_uri).unwrap();
    let (mut phone, verification) = mfa_sdk::Authenticator::enroll_with(
        &uri,
        phone_info("Phone without a client certificate"),
        &mfa_sdk::MemoryKeyStore::new(),
        &ca_only,
    )
    .await
    .unwrap();
    let number = verification_number(&portal, &begun.enrollment_id).await;
    let answer = phone.approve(&verification, &number).await.unwrap();
    assert_eq!(answer.state, ChallengeState::Approved);
    let devices = server
        .admin()
        .await
        .list_devices(ListDevicesRequest {
            user_id: "u".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .devices;
    assert_eq!(devices.len(), 1);
}

#[tokio::test]
async fn plaintext_on_a_non_loopback_address_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.listen = "0.0.0.0:0".parse().unwrap();
    let error = match mfa_server::start(&config).await {
        Ok(_) => panic!("a plaintext listener on 0.0.0.0 must not start"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("non-loopback"), "{error}");
    assert!(error.contains("cert_file"), "{error}");
    assert!(error.contains("tls.allow_plaintext"), "{error}");
}

/// GET `path` over TLS from `addr`, trusting only `pki`'s CA: the status
/// and body.
async fn https_get(pki: &TestPki, addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use http_body_util::BodyExt;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(pki.ca_pem().as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .expect("TLS handshake with the provider");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", addr.to_string())
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn the_openid_provider_serves_over_tls_with_the_same_certificate() {
    let pki = TestPki::new("oidc-tls");
    let server = TestServer::start_with(|config| {
        let files = pki.write_server_files(&config.data_dir.join("tls"));
        config.tls = TlsConfig {
            cert_file: Some(files.cert_file),
            key_file: Some(files.key_file),
            ..TlsConfig::default()
        };
        config.oidc.listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let (addr, issuer) = server.oidc().expect("the provider is on");
    assert_eq!(issuer, format!("https://{addr}"));
    let (status, body) = https_get(&pki, addr, "/.well-known/openid-configuration").await;
    assert_eq!(status, 200, "{body}");
    let metadata: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(metadata["issuer"], issuer);
    assert_eq!(metadata["jwks_uri"], format!("{issuer}/jwks"));
    let (status, body) = https_get(&pki, addr, "/jwks").await;
    assert_eq!(status, 200, "{body}");

    // Plaintext gets no answer from a TLS listener.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /jwks HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = within(plain.read_to_end(&mut answer)).await;
    assert!(!String::from_utf8_lossy(&answer).contains("\"keys\""));
}

#[tokio::test]
async fn the_openid_provider_refuses_plaintext_off_loopback_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.oidc.listen = Some("0.0.0.0:0".parse().unwrap());
    let error = mfa_server::start(&config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(error.contains("plaintext the OpenID provider"), "{error}");
}
