//! Push from behind a forward proxy: APNs, FCM and Google's token endpoint
//! reached by their real names through HTTP CONNECT tunnels, TLS checked
//! against those names inside the tunnels; the token endpoint's own CA;
//! basic authentication, and the proxy's refusals named in deliveries,
//! health and the log (never its password); `NO_PROXY`; and the keepalive
//! through a tunnel.

use crate::push::{
    assert_sent_on_the_second_attempt, context, enroll, enroll_on, healthz,
    pings_alone_notice_silence, push_after_the_path_goes_silent, pushed,
};
use mfa_proto::v1::{PushDeliveryState, PushPlatform};
use mfa_server::push::{
    config::{FcmCredentials, PushConfig},
    proxy::ProxyEnvironment,
};
use mfa_tests::{
    connect_proxy::ConnectProxy, process::ServerProcess, push::*, tcp_proxy::TcpProxy, *,
};

const APNS: &str = "api.sandbox.push.apple.com:443";
const FCM: &str = "fcm.googleapis.com:443";
const OAUTH: &str = "oauth2.googleapis.com:443";

/// Apple's and Google's services as seen from behind a proxy: stand-ins
/// with certificates for the real names (APNs and FCM messages from one
/// CA, Google's token endpoint from another), which the proxy routes those
/// names to; nothing else reaches them by those names.
struct BehindProxy {
    proxy: ConnectProxy,
    apns: ApnsStandIn,
    fcm: FcmStandIn,
    /// The providers at their default origins, through `proxy`; the
    /// messaging CA in `ca_file`s, the token endpoint's in `token_ca_file`.
    config: PushConfig,
    dir: tempfile::TempDir,
}

impl BehindProxy {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let push_ca = TestCa::for_names(&["api.sandbox.push.apple.com", "fcm.googleapis.com"]);
        let token_ca = TestCa::for_names(&["oauth2.googleapis.com"]);
        let (push_ca_file, token_ca_file) = (
            dir.path().join("push-ca.pem"),
            dir.path().join("oauth-ca.pem"),
        );
        push_ca.write(&push_ca_file);
        token_ca.write(&token_ca_file);
        let apns = ApnsStandIn::start(&push_ca).await;
        let fcm = FcmStandIn::start_as_google(&push_ca, &token_ca).await;
        let proxy = ConnectProxy::start().await;
        proxy.route(APNS, apns.addr);
        proxy.route(FCM, fcm.addr);
        proxy.route(OAUTH, fcm.token_addr);
        let mut apns_config = apns.config(dir.path(), &push_ca_file);
        apns_config.origin = None;
        let mut fcm_config = fcm.config(dir.path());
        fcm_config.origin = None;
        fcm_config.ca_file = Some(push_ca_file);
        fcm_config.token_ca_file = Some(token_ca_file);
        let config = PushConfig {
            apns: Some(apns_config),
            fcm: Some(fcm_config),
            proxy: Some(proxy.url()),
            ..quick_push_config()
        };
        Self {
            proxy,
            apns,
            fcm,
            config,
            dir,
        }
    }

    /// A server with `config`, as `adjust` leaves it.
    async fn server(&self, adjust: impl FnOnce(&mut PushConfig)) -> TestServer {
        let mut config = self.config.clone();
        adjust(&mut config);
        TestServer::start_with(|c| c.push = config).await
    }
}

#[tokio::test]
async fn apns_fcm_and_the_token_endpoint_are_reached_by_name_through_the_proxy() {
    let google = BehindProxy::start().await;
    let server = google.server(|_| {}).await;
    let portal = server.portal().await;
    let iphone = enroll(&server, &portal, PushPlatform::Apns).await;
    let android = enroll(&server, &portal, PushPlatform::Fcm).await;
    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &challenge.challenge_id, 2).await;
    for phone in [&iphone, &android] {
        let d = delivery(&deliveries, &phone.account().device_id);
        assert_eq!(d.state(), PushDeliveryState::Sent, "{d:?}");
    }
    assert_eq!(google.apns.requests().len(), 1);
    let message = google.fcm.requests().remove(0);
    assert_eq!(
        message.bearer, "ya29.stand-in-1",
        "a token of the endpoint's"
    );
    // One tunnel to each origin, by name: the token endpoint's certificate
    // was checked against its own CA, the others' against the messaging one.
    assert_eq!(google.proxy.targets(), [APNS, FCM, OAUTH]);
    assert!(
        google
            .proxy
            .connects()
            .iter()
            .all(|c| c.answer == 200 && c.credentials.is_none()),
        "{:?}",
        google.proxy.connects()
    );
}

#[tokio::test]
async fn the_token_endpoint_trusts_token_ca_file_alone_else_ca_file_too() {
    // A configuration written before token_ca_file: one CA for both.
    let google = BehindProxy::start().await;
    let single_ca = TestCa::for_names(&["fcm.googleapis.com", "oauth2.googleapis.com"]);
    let ca_file = google.dir.path().join("single-ca.pem");
    single_ca.write(&ca_file);
    let fcm = FcmStandIn::start_as_google(&single_ca, &single_ca).await;
    google.proxy.route(FCM, fcm.addr);
    google.proxy.route(OAUTH, fcm.token_addr);
    let server = google
        .server(|c| {
            c.apns = None;
            let config = c.fcm.as_mut().unwrap();
            config.ca_file = Some(ca_file);
            config.token_ca_file = None;
        })
        .await;
    let portal = server.portal().await;
    enroll(&server, &portal, PushPlatform::Fcm).await;
    assert_eq!(pushed(&portal, "u").await.state(), PushDeliveryState::Sent);
    assert_eq!(fcm.requests()[0].bearer, "ya29.stand-in-1");
    drop(server);

    // With the token endpoint's CA given on its own, the messaging CA is no
    // longer trusted for it.
    let server = google
        .server(|c| {
            c.apns = None;
            let config = c.fcm.as_mut().unwrap();
            config.ca_file = Some(google.dir.path().join("single-ca.pem"));
            config.token_ca_file = Some(google.dir.path().join("oauth-ca.pem"));
        })
        .await;
    let portal = server.portal().await;
    enroll(&server, &portal, PushPlatform::Fcm).await;
    let refused = pushed(&portal, "u").await;
    assert_eq!(refused.state(), PushDeliveryState::Failed, "{refused:?}");
    assert!(refused.reason.contains("certificate"), "{refused:?}");
    assert_eq!(fcm.requests().len(), 1, "no message without a token");
}

#[tokio::test]
async fn the_metadata_server_is_reached_directly_whatever_the_proxy() {
    let google = BehindProxy::start().await;
    let metadata = MetadataStandIn::start(&google.fcm).await;
    let server = google
        .server(|c| {
            c.apns = None;
            let fcm = c.fcm.as_mut().unwrap();
            fcm.service_account_file = None;
            fcm.credentials = FcmCredentials::MetadataServer;
            fcm.project_id = Some(FCM_PROJECT.into());
            fcm.metadata_origin = Some(metadata.origin());
        })
        .await;
    let portal = server.portal().await;
    enroll(&server, &portal, PushPlatform::Fcm).await;
    assert_eq!(pushed(&portal, "u").await.state(), PushDeliveryState::Sent);
    assert_eq!(google.fcm.requests()[0].bearer, "ya29.metadata-1");
    assert_eq!(metadata.requests().len(), 1, "the token, asked directly");
    assert_eq!(google.proxy.targets(), [FCM], "only the messages tunneled");
}

#[tokio::test]
async fn wrong_proxy_credentials_are_a_misconfiguration_naming_the_407() {
    let google = BehindProxy::start().await;
    google.proxy.require("push", "right-pa55");
    let wrong = google.proxy.url_with("push", "wr0ng-s3cret");
    let server = google
        .server(|c| {
            c.fcm = None;
            c.proxy = Some(wrong);
        })
        .await;
    let portal = server.portal().await;
    let iphone = enroll(&server, &portal, PushPlatform::Apns).await;
    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &challenge.challenge_id, 1).await;
    let d = delivery(&deliveries, &iphone.account().device_id);
    let refusal = format!(
        "proxy {} refused the tunnel to {APNS}: 407 Proxy Authentication Required",
        google.proxy.addr
    );
    assert_eq!(
        (d.state(), d.attempts),
        (PushDeliveryState::Failed, 1),
        "{d:?}"
    );
    assert!(d.reason.starts_with(&refusal), "{d:?}");
    assert!(!d.reason.contains("wr0ng-s3cret"), "{d:?}");
    let health = healthz(&server).await;
    assert!(
        health.starts_with(&format!("push apns: misconfigured: {refusal}")),
        "{health}"
    );
    assert!(!health.contains("wr0ng-s3cret"), "{health}");
    assert!(google.apns.requests().is_empty(), "nothing got through");
    let connects = google.proxy.connects();
    assert_eq!(connects.len(), 1, "{connects:?}");
    assert_eq!(
        (connects[0].answer, connects[0].credentials.clone()),
        (407, Some(("push".into(), "wr0ng-s3cret".into())))
    );
    drop(server);

    // With the right password the same push goes through.
    let right = google.proxy.url_with("push", "right-pa55");
    let server = google
        .server(|c| {
            c.fcm = None;
            c.proxy = Some(right);
        })
        .await;
    let portal = server.portal().await;
    enroll(&server, &portal, PushPlatform::Apns).await;
    assert_eq!(pushed(&portal, "u").await.state(), PushDeliveryState::Sent);
    assert_eq!(google.apns.requests().len(), 1);
    assert_eq!(google.proxy.connects()[1].answer, 200);
}

#[tokio::test]
async fn a_proxy_that_forbids_or_cannot_reach_the_origin_is_named_in_the_delivery() {
    let google = BehindProxy::start().await;
    let server = google.server(|c| c.fcm = None).await;
    let portal = server.portal().await;
    enroll(&server, &portal, PushPlatform::Apns).await;
    let proxy = google.proxy.addr;

    // Its rules forbid the origin: our set-up to fix, not retried.
    google.proxy.refuse(Some(403));
    let forbidden = pushed(&portal, "u").await;
    assert_eq!(
        (
            forbidden.state(),
            forbidden.attempts,
            forbidden.reason.as_str()
        ),
        (
            PushDeliveryState::Failed,
            1,
            format!("proxy {proxy} refused the tunnel to {APNS}: 403 Forbidden").as_str()
        )
    );
    assert!(healthz(&server).await.contains("403 Forbidden"));

    // It cannot reach the origin for now: retried, then given up.
    google.proxy.refuse(Some(502));
    let unreachable = pushed(&portal, "u").await;
    assert_eq!(
        (unreachable.state(), unreachable.attempts),
        (PushDeliveryState::Failed, 4),
        "{unreachable:?}"
    );
    assert!(
        unreachable.reason.contains(&format!(
            "proxy {proxy} refused the tunnel to {APNS}: 502 Bad Gateway"
        )),
        "{unreachable:?}"
    );

    google.proxy.refuse(None);
    assert_eq!(pushed(&portal, "u").await.state(), PushDeliveryState::Sent);
    assert_eq!(healthz(&server).await, "push apns: ok\n");
    assert_eq!(google.apns.requests().len(), 1);
}

#[tokio::test]
async fn https_proxy_from_the_environment_is_used_except_for_no_proxy_origins() {
    // The usual stand-ins, on https://127.0.0.1:PORT.
    let dir = tempfile::tempdir().unwrap();
    let push = PushStandIns::start(dir.path()).await;
    let proxy = ConnectProxy::start().await;
    let start = |no_proxy: Option<&str>| {
        let mut config = push.config.clone();
        config.fcm = None;
        config.proxy_environment = Some(ProxyEnvironment {
            https_proxy: Some(("HTTPS_PROXY", proxy.url())),
            no_proxy: no_proxy.map(str::to_owned),
        });
        TestServer::start_with(|c| c.push = config)
    };
    let apns_target = push.apns.addr.to_string();

    let server = start(None).await;
    let portal = server.portal().await;
    enroll(&server, &portal, PushPlatform::Apns).await;
    assert_eq!(pushed(&portal, "u").await.state(), PushDeliveryState::Sent);
    assert_eq!(proxy.targets(), [apns_target]);
    drop(server);

    for no_proxy in ["127.0.0.1", "10.0.0.0/8, 127.0.0.0/8", "localhost,*"] {
        let server = start(Some(no_proxy)).await;
        let portal = server.portal().await;
        enroll(&server, &portal, PushPlatform::Apns).await;
        assert_eq!(pushed(&portal, "u").await.state(), PushDeliveryState::Sent);
        assert_eq!(proxy.connects().len(), 1, "{no_proxy}: direct");
    }
    assert_eq!(push.apns.requests().len(), 4);
}

#[tokio::test]
async fn a_silent_tunnel_is_replaced_after_an_unanswered_ping() {
    // The relay between the server and the proxy can go silent, as a NAT
    // that forgets the tunnel's connection does.
    let google = BehindProxy::start().await;
    let relay = TcpProxy::start(google.proxy.addr).await;
    let server = google
        .server(|c| {
            c.fcm = None;
            c.proxy = Some(format!("http://{}", relay.addr));
            pings_alone_notice_silence(c);
        })
        .await;
    let delivery = push_after_the_path_goes_silent(&server, &relay).await;
    assert_sent_on_the_second_attempt(&delivery);
    assert_eq!(google.apns.requests().len(), 2);
    let tunnels: Vec<String> = google
        .proxy
        .connects()
        .into_iter()
        .map(|c| c.target)
        .collect();
    assert_eq!(tunnels, [APNS, APNS], "a new tunnel for the new connection");
}

/// The binary takes `HTTPS_PROXY` from its environment, logs the proxy it
/// uses and every refusal with the password hidden (`cargo build -p
/// mfa-server` first when run alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_uses_https_proxy_and_never_logs_its_password() {
    let google = BehindProxy::start().await;
    google.proxy.require("push", "right-pa55");
    let apns = google.config.apns.clone().unwrap();
    let proxy_url = google.proxy.url_with("push", "wr0ng-s3cret");
    let data = tempfile::tempdir().unwrap();
    let log_path = data.path().join("server.log");
    let settings = [
        ("HTTPS_PROXY", proxy_url.as_str()),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
        ("RUST_LOG", "info"),
        ("MFA_PUSH__APNS__KEY_FILE", apns.key_file.to_str().unwrap()),
        ("MFA_PUSH__APNS__KEY_ID", APNS_KEY_ID),
        ("MFA_PUSH__APNS__TEAM_ID", APNS_TEAM_ID),
        ("MFA_PUSH__APNS__TOPIC", APNS_TOPIC),
        ("MFA_PUSH__APNS__ENVIRONMENT", "sandbox"),
        (
            "MFA_PUSH__APNS__CA_FILE",
            apns.ca_file.as_ref().unwrap().to_str().unwrap(),
        ),
        ("MFA_PUSH__MAX_ATTEMPTS", "1"),
    ];
    let log = std::fs::File::create(&log_path).unwrap();
    let server = tokio::task::block_in_place(|| {
        ServerProcess::start_logging(data.path(), None, &settings, log)
    });
    let portal = server.portal().await;
    enroll_on(&portal, PushPlatform::Apns).await;
    let refused = pushed(&portal, "u").await;
    assert_eq!(refused.state(), PushDeliveryState::Failed, "{refused:?}");
    assert!(refused.reason.contains("407"), "{refused:?}");
    assert_eq!(google.proxy.connects()[0].target, APNS);

    let log = std::fs::read_to_string(&log_path).unwrap();
    let proxy = google.proxy.addr;
    assert!(
        log.contains(&format!(
            "push: through the proxy http://push:***@{proxy} (HTTPS_PROXY)"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "proxy {proxy} refused the tunnel to {APNS}: 407 Proxy Authentication Required"
        )),
        "{log}"
    );
    assert!(!log.contains("wr0ng-s3cret"), "{log}");
    server.stop();
}
