//! FCM credentials as Google Cloud workloads have them. Each source gets an
//! access token that the FCM stand-in accepts for a real push: a service
//! account key or a person's credentials named by
//! `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's user credentials under
//! `CLOUDSDK_CONFIG` or `HOME`, and the metadata server (workload identity)
//! on loopback. Then the order `auto` takes, what start says when nothing
//! is found, forcing one source, and a metadata server that refuses. The
//! in-process servers are told their environment; one test runs the real
//! binary, which reads its own.

use super::push::{context, enroll, enroll_on, healthz, pushed};
use mfa_proto::v1::{PushDelivery, PushDeliveryState, PushPlatform};
use mfa_server::push::config::{FcmConfig, FcmCredentials, GoogleEnvironment, PushConfig};
use mfa_tests::{process::ServerProcess, push::*, *};
use std::path::PathBuf;

/// What Google's side looks like to the server: the FCM stand-in (messages
/// and token endpoint), a metadata server, and a directory for the files an
/// operator or gcloud would leave.
struct Google {
    fcm: FcmStandIn,
    metadata: MetadataStandIn,
    dir: tempfile::TempDir,
}

impl Google {
    async fn start() -> Self {
        let fcm = FcmStandIn::start().await;
        let metadata = MetadataStandIn::start(&fcm).await;
        Self {
            fcm,
            metadata,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// `[push]` with FCM alone: the Firebase project named, credentials
    /// found as `auto` finds them, every Google origin a stand-in, and
    /// `environment` what the server sees of its environment.
    fn push_config(&self, environment: GoogleEnvironment) -> PushConfig {
        PushConfig {
            fcm: Some(FcmConfig {
                project_id: Some(FCM_PROJECT.into()),
                origin: Some(self.fcm.origin()),
                oauth_origin: Some(self.fcm.origin()),
                metadata_origin: Some(self.metadata.origin()),
                environment: Some(environment),
                ..FcmConfig::default()
            }),
            ..quick_push_config()
        }
    }

    /// Writes `contents` at `relative` in the directory (folders made).
    fn write(&self, relative: &str, contents: &serde_json::Value) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents.to_string()).unwrap();
        path
    }

    /// A home directory, empty unless files are written into it.
    fn home(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// The message request of a delivery the stand-in accepted last.
    fn last_message(&self) -> Received {
        self.fcm.requests().pop().expect("a message reached FCM")
    }
}

/// A process environment with nothing but `HOME` (an empty one).
fn only_home(home: PathBuf) -> GoogleEnvironment {
    GoogleEnvironment {
        home: Some(home),
        ..GoogleEnvironment::default()
    }
}

/// Starts a server with `push`, enrolls user "u"'s Android phone and signs
/// in once: the server and the push's settled delivery.
async fn signed_in(push: PushConfig) -> (TestServer, PushDelivery) {
    let server = TestServer::start_with(|c| c.push = push).await;
    let portal = server.portal().await;
    enroll(&server, &portal, PushPlatform::Fcm).await;
    let delivery = pushed(&portal, "u").await;
    (server, delivery)
}

/// The message with which a server with `push` refuses to start.
async fn start_error(push: PushConfig) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut config = test_config(data.path());
    config.push = push;
    match mfa_server::start(&config).await {
        Ok(_) => panic!("started without usable FCM credentials"),
        Err(error) => error.to_string(),
    }
}

fn header(received: &Received, name: &str) -> Option<String> {
    received
        .headers
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn user_credentials_named_by_google_application_credentials() {
    let google = Google::start().await;
    let file = google.write(
        "adc/user.json",
        &FcmStandIn::user_credentials(Some("mfa-billing")),
    );
    let environment = GoogleEnvironment {
        application_credentials: Some(file),
        ..only_home(google.home("home"))
    };
    let (_server, pushed) = signed_in(google.push_config(environment)).await;
    assert_eq!(pushed.state(), PushDeliveryState::Sent, "{pushed:?}");
    let message = google.last_message();
    assert_eq!(message.bearer, "ya29.user-1");
    // FCM bills a person's requests to their quota project.
    assert_eq!(
        header(&message, "x-goog-user-project").as_deref(),
        Some("mfa-billing")
    );
    assert!(google.metadata.requests().is_empty(), "nobody asked it");
}

#[tokio::test]
async fn a_service_account_key_named_by_google_application_credentials_names_the_project() {
    let google = Google::start().await;
    let file = google.write("adc/key.json", &google.fcm.service_account_key());
    let mut push = google.push_config(GoogleEnvironment {
        application_credentials: Some(file),
        ..GoogleEnvironment::default()
    });
    push.fcm.as_mut().unwrap().project_id = None;
    let (_server, pushed) = signed_in(push).await;
    assert_eq!(pushed.state(), PushDeliveryState::Sent, "{pushed:?}");
    let message = google.last_message();
    assert_eq!(message.bearer, "ya29.stand-in-1");
    assert_eq!(
        message.path,
        format!("/v1/projects/{FCM_PROJECT}/messages:send")
    );
    assert_eq!(header(&message, "x-goog-user-project"), None);
}

#[tokio::test]
async fn gcloud_user_credentials_are_found_under_home_or_cloudsdk_config() {
    let google = Google::start().await;
    // `gcloud auth application-default login` on a workstation, without a
    // quota project: the Firebase project is billed.
    let home = google.home("home");
    google.write(
        "home/.config/gcloud/application_default_credentials.json",
        &FcmStandIn::user_credentials(None),
    );
    let (_server, pushed) = signed_in(google.push_config(only_home(home.clone()))).await;
    assert_eq!(pushed.state(), PushDeliveryState::Sent, "{pushed:?}");
    let message = google.last_message();
    assert!(message.bearer.starts_with("ya29.user-"), "{message:?}");
    assert_eq!(
        header(&message, "x-goog-user-project").as_deref(),
        Some(FCM_PROJECT)
    );

    // CLOUDSDK_CONFIG moves gcloud's directory: its file is the one read.
    let config_dir = google.home("gcloud-config");
    google.write(
        "gcloud-config/application_default_credentials.json",
        &FcmStandIn::user_credentials(Some("other-billing")),
    );
    let environment = GoogleEnvironment {
        cloudsdk_config: Some(config_dir),
        ..only_home(home)
    };
    let (_server, pushed) = signed_in(google.push_config(environment)).await;
    assert_eq!(pushed.state(), PushDeliveryState::Sent, "{pushed:?}");
    assert_eq!(
        header(&google.last_message(), "x-goog-user-project").as_deref(),
        Some("other-billing")
    );
    assert!(google.metadata.requests().is_empty());
}

#[tokio::test]
async fn the_metadata_server_gives_the_workload_its_token() {
    let google = Google::start().await;
    let push = google.push_config(only_home(google.home("home")));
    let server = TestServer::start_with(|c| c.push = push).await;
    // Found at start by asking for the workload's service account, with the
    // header the metadata server requires.
    let asked = google.metadata.requests();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        asked[0].path,
        "/computeMetadata/v1/instance/service-accounts/default/"
    );
    assert_eq!(asked[0].headers["metadata-flavor"], "Google");

    let portal = server.portal().await;
    enroll(&server, &portal, PushPlatform::Fcm).await;
    for _ in 0..2 {
        let pushed = pushed(&portal, "u").await;
        assert_eq!(pushed.state(), PushDeliveryState::Sent, "{pushed:?}");
        assert_eq!(google.last_message().bearer, "ya29.metadata-1");
    }
    // One token for both pushes, for FCM's scope.
    let asked = google.metadata.requests();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(
        asked[1].path,
        "/computeMetadata/v1/instance/service-accounts/default/token"
    );
    assert_eq!(
        asked[1].query,
        "scopes=https://www.googleapis.com/auth/firebase.messaging"
    );
    assert_eq!(asked[1].headers["metadata-flavor"], "Google");

    // A token FCM no longer takes (401) is forgotten once and replaced.
    google.fcm.revoke_tokens();
    let pushed = pushed(&portal, "u").await;
    assert_eq!(
        (pushed.state(), pushed.attempts),
        (PushDeliveryState::Sent, 1),
        "{pushed:?}"
    );
    let messages = google.fcm.requests();
    let bearers: Vec<&str> = messages[2..].iter().map(|m| m.bearer.as_str()).collect();
    assert_eq!(bearers, ["ya29.metadata-1", "ya29.metadata-2"]);
}

#[tokio::test]
async fn auto_takes_the_first_source_found() {
    let google = Google::start().await;
    // gcloud's file comes before the metadata server, which is not asked.
    let home = google.home("home");
    google.write(
        "home/.config/gcloud/application_default_credentials.json",
        &FcmStandIn::user_credentials(None),
    );
    let (_server, pushed) = signed_in(google.push_config(only_home(home.clone()))).await;
    assert_eq!(pushed.state(), PushDeliveryState::Sent, "{pushed:?}");
    assert_eq!(google.last_message().bearer, "ya29.user-1");
    assert!(google.metadata.requests().is_empty());

    // GOOGLE_APPLICATION_CREDENTIALS comes before gcloud's file.
    let key = google.write("adc/key.json", &google.fcm.service_account_key());
    let environment = GoogleEnvironment {
        application_credentials: Some(key),
        ..only_home(home.clone())
    };
    let (_server, pushed) = signed_in(google.push_config(environment)).await;
    assert_eq!(pushed.state(), PushDeliveryState::Sent, "{pushed:?}");
    assert_eq!(google.last_message().bearer, "ya29.stand-in-2");

    // service_account_file comes first of all.
    let user = google.write("adc/user.json", &FcmStandIn::user_credentials(None));
    let mut push = google.push_config(GoogleEnvironment {
        application_credentials: Some(user),
        ..only_home(home)
    });
    let fcm = push.fcm.as_mut().unwrap();
    fcm.service_account_file = google.fcm.config(google.dir.path()).service_account_file;
    let (_server, pushed) = signed_in(push).await;
    assert_eq!(pushed.state(), PushDeliveryState::Sent, "{pushed:?}");
    assert_eq!(google.last_message().bearer, "ya29.stand-in-3");
    assert!(google.metadata.requests().is_empty());
}

#[tokio::test]
async fn without_credentials_the_server_stops_and_says_what_it_tried() {
    let google = Google::start().await;
    let home = google.home("empty-home");
    // No metadata server either: a port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut push = google.push_config(only_home(home.clone()));
    push.fcm.as_mut().unwrap().metadata_origin = Some(format!("http://{closed}"));
    let error = start_error(push).await;
    for tried in [
        "push: FCM: no credentials found; tried ".to_owned(),
        "push.fcm.service_account_file (not set)".to_owned(),
        "GOOGLE_APPLICATION_CREDENTIALS (not set)".to_owned(),
        format!(
            "{} (not found)",
            home.join(".config/gcloud/application_default_credentials.json")
                .display()
        ),
        format!("the metadata server at http://{closed} (connection: "),
    ] {
        assert!(error.contains(&tried), "{tried:?} not in {error}");
    }

    // A variable naming a missing file is an error of its own.
    let nowhere = google.dir.path().join("nowhere.json");
    let error = start_error(google.push_config(GoogleEnvironment {
        application_credentials: Some(nowhere.clone()),
        ..only_home(home.clone())
    }))
    .await;
    assert!(
        error.contains("GOOGLE_APPLICATION_CREDENTIALS file")
            && error.contains(&nowhere.display().to_string()),
        "{error}"
    );

    // A broken file is named, with what it lacks, and none of its secrets.
    let mut broken = FcmStandIn::user_credentials(None);
    broken.as_object_mut().unwrap().remove("refresh_token");
    let broken = google.write("adc/broken.json", &broken);
    let error = start_error(google.push_config(GoogleEnvironment {
        application_credentials: Some(broken),
        ..only_home(home.clone())
    }))
    .await;
    assert!(
        error.contains("GOOGLE_APPLICATION_CREDENTIALS file")
            && error.contains("broken.json: not user credentials (no refresh_token)"),
        "{error}"
    );
    assert!(!error.contains(FCM_USER_CLIENT_SECRET), "{error}");

    // Credentials of a kind not supported say so.
    let federated = google.write(
        "adc/federated.json",
        &serde_json::json!({"type": "external_account", "audience": "//iam.googleapis.com/x"}),
    );
    let error = start_error(google.push_config(GoogleEnvironment {
        application_credentials: Some(federated),
        ..only_home(home.clone())
    }))
    .await;
    assert!(
        error.contains("type \"external_account\" are not supported"),
        "{error}"
    );

    // A person's credentials do not say which Firebase project to use.
    let user = google.write("adc/user.json", &FcmStandIn::user_credentials(None));
    let mut push = google.push_config(GoogleEnvironment {
        application_credentials: Some(user),
        ..only_home(home)
    });
    push.fcm.as_mut().unwrap().project_id = None;
    let error = start_error(push).await;
    assert!(error.contains("push.fcm.project_id is required"), "{error}");
}

#[tokio::test]
async fn one_source_can_be_forced() {
    let google = Google::start().await;
    // gcloud's file is there, but the metadata server is asked for: it is
    // used without a probe.
    let home = google.home("home");
    google.write(
        "home/.config/gcloud/application_default_credentials.json",
        &FcmStandIn::user_credentials(None),
    );
    let mut push = google.push_config(only_home(home.clone()));
    push.fcm.as_mut().unwrap().credentials = FcmCredentials::MetadataServer;
    let server = TestServer::start_with(|c| c.push = push).await;
    assert!(google.metadata.requests().is_empty(), "no probe");
    let portal = server.portal().await;
    enroll(&server, &portal, PushPlatform::Fcm).await;
    let pushed = pushed(&portal, "u").await;
    assert_eq!(pushed.state(), PushDeliveryState::Sent, "{pushed:?}");
    assert_eq!(google.last_message().bearer, "ya29.metadata-1");

    // A key file beside another forced source contradicts it.
    let mut push = google.push_config(only_home(home));
    let fcm = push.fcm.as_mut().unwrap();
    fcm.credentials = FcmCredentials::ApplicationDefault;
    fcm.service_account_file = google.fcm.config(google.dir.path()).service_account_file;
    let error = start_error(push).await;
    assert!(error.contains("remove one of them"), "{error}");
}

#[tokio::test]
async fn a_metadata_server_that_refuses_is_our_set_up_and_keeps_the_token() {
    let google = Google::start().await;
    let push = google.push_config(only_home(google.home("home")));
    let server = TestServer::start_with(|c| c.push = push).await;
    let portal = server.portal().await;
    let android = enroll(&server, &portal, PushPlatform::Fcm).await;

    // The workload's service account may not have a token (on GKE: no
    // binding to a Google service account).
    google.metadata.refuse_tokens(Some(403));
    let challenge = portal.start_sign_in("u", context()).await.unwrap();
    let deliveries = settled_deliveries(&portal, &challenge.challenge_id, 1).await;
    let refused = delivery(&deliveries, &android.account().device_id);
    assert_eq!(
        (refused.state(), refused.attempts, refused.reason.as_str()),
        (PushDeliveryState::Failed, 1, "metadata server: HTTP 403"),
    );
    assert!(google.fcm.requests().is_empty(), "nothing reached FCM");
    assert_eq!(
        healthz(&server).await,
        "push fcm: misconfigured: metadata server: HTTP 403\n"
    );

    // Once the binding is made, the same phone is notified again.
    google.metadata.refuse_tokens(None);
    let pushed = pushed(&portal, "u").await;
    assert_eq!(pushed.state(), PushDeliveryState::Sent, "{pushed:?}");
    assert_eq!(healthz(&server).await, "push fcm: ok\n");
    let audit = server.audit_types("").await;
    assert!(
        !audit.iter().any(|e| e == "device.push_token_invalid"),
        "{audit:?}"
    );
}

/// The binary reads `GOOGLE_APPLICATION_CREDENTIALS` and `[push.fcm]` from
/// its own environment (`cargo build -p mfa-server` first when run alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_finds_credentials_named_in_its_environment() {
    let google = Google::start().await;
    let file = google.write(
        "adc/user.json",
        &FcmStandIn::user_credentials(Some("mfa-billing")),
    );
    let home = google.home("home");
    let data = tempfile::tempdir().unwrap();
    let (fcm, metadata) = (google.fcm.origin(), google.metadata.origin());
    let settings = [
        ("MFA_PUSH__FCM__PROJECT_ID", FCM_PROJECT),
        ("MFA_PUSH__FCM__ORIGIN", fcm.as_str()),
        ("MFA_PUSH__FCM__OAUTH_ORIGIN", fcm.as_str()),
        ("MFA_PUSH__FCM__METADATA_ORIGIN", metadata.as_str()),
        ("GOOGLE_APPLICATION_CREDENTIALS", file.to_str().unwrap()),
        ("CLOUDSDK_CONFIG", home.to_str().unwrap()),
        ("HOME", home.to_str().unwrap()),
    ];
    let server = tokio::task::block_in_place(|| ServerProcess::start(data.path(), None, &settings));
    let portal = server.portal().await;
    enroll_on(&portal, PushPlatform::Fcm).await;
    portal.start_sign_in("u", context()).await.unwrap();
    let message = within(google.fcm.wait_for(1)).await.remove(0);
    assert_eq!(message.bearer, "ya29.user-1");
    assert_eq!(
        header(&message, "x-goog-user-project").as_deref(),
        Some("mfa-billing")
    );
    assert!(google.metadata.requests().is_empty());
}
