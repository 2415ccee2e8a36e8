//! Every request message, decoded from arbitrary bytes by the server's codec
//! and through the server's real handlers on a SQLite file: bytes that do
//! not decode, and decoded values that the handlers reject, must be refused
//! with a client error, never a panic or a server fault.

use mfa_proto::codec::decode_request;
use mfa_proto::v1::{
    admin_service_server::AdminService, device_service_server::DeviceService,
    portal_service_server::PortalService,
};
use mfa_server::{
    api::{AdminApi, DeviceApi, PortalApi},
    model::Role,
};
use prost::{Message, Name};
use std::sync::OnceLock;
use tonic::{Code, Request, Response, Status};

/// A server's handlers on a temporary database, with a tenant's keys.
struct Harness {
    runtime: tokio::runtime::Runtime,
    portal: PortalApi,
    device: DeviceApi,
    admin: AdminApi,
    portal_key: String,
    admin_key: String,
    _dir: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let dir = tempfile::tempdir().expect("temporary directory");
        // Every call comes from the same (unknown) address and user ids
        // repeat: without these limits raised, the throttles would answer
        // before the decoding the fuzzer should explore.
        let offline_code_key = dir.path().join("offline-code.key");
        mfa_server::offline_code_key::OfflineCodeKey::create_if_missing(&offline_code_key)
            .expect("offline-code key");
        let config = mfa_server::Config {
            data_dir: dir.path().to_path_buf(),
            offline_code_key_file: Some(offline_code_key),
            activation_failure_limit: u32::MAX,
            signature_failure_limit: u32::MAX,
            offline_code_failure_limit: u32::MAX,
            challenge_limit: u32::MAX,
            watch_streams_per_tenant: u32::MAX,
            ..mfa_server::Config::default()
        };
        let (service, portal_key, admin_key) = runtime.block_on(async {
            let service = mfa_server::server::build_service(&config, "http://127.0.0.1:1".into())
                .await
                .expect("service");
            let tenant = service.create_tenant("Fuzz", 2).await.expect("tenant");
            let portal = service.create_api_key(&tenant.id, Role::Portal).await;
            let admin = service.create_api_key(&tenant.id, Role::Admin).await;
            (
                service,
                portal.expect("key").secret,
                admin.expect("key").secret,
            )
        });
        Harness {
            runtime,
            portal: PortalApi::new(service.clone()),
            device: DeviceApi::new(service.clone()),
            admin: AdminApi::new(service),
            portal_key,
            admin_key,
            _dir: dir,
        }
    })
}

/// Decodes `data[1..]` as the request message that `data[0]` selects and
/// calls its handler.
pub fn request_decoding(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let h = harness();
    let code = h.runtime.block_on(async {
        match selector % 22 {
            0 => code(h.device.complete_enrollment(plain(body)?).await),
            1 => code(h.device.list_pending_challenges(plain(body)?).await),
            2 => code(h.device.respond_to_challenge(plain(body)?).await),
            3 => code(h.device.update_push_token(plain(body)?).await),
            4 => code(h.device.remove_device(plain(body)?).await),
            5 => code(
                h.portal
                    .begin_enrollment(with_key(decode(body)?, &h.portal_key))
                    .await,
            ),
            6 => code(
                h.portal
                    .watch_enrollment(with_key(decode(body)?, &h.portal_key))
                    .await,
            ),
            7 => code(
                h.portal
                    .create_challenge(with_key(decode(body)?, &h.portal_key))
                    .await,
            ),
            8 => code(
                h.portal
                    .get_challenge(with_key(decode(body)?, &h.portal_key))
                    .await,
            ),
            9 => code(
                h.portal
                    .watch_challenge(with_key(decode(body)?, &h.portal_key))
                    .await,
            ),
            10 => code(
                h.portal
                    .cancel_challenge(with_key(decode(body)?, &h.portal_key))
                    .await,
            ),
            11 => code(
                h.portal
                    .get_user_status(with_key(decode(body)?, &h.portal_key))
                    .await,
            ),
            12 => code(
                h.portal
                    .record_terms_acceptance(with_key(decode(body)?, &h.portal_key))
                    .await,
            ),
            13 => code(
                h.admin
                    .list_devices(with_key(decode(body)?, &h.admin_key))
                    .await,
            ),
            14 => code(
                h.admin
                    .revoke_device(with_key(decode(body)?, &h.admin_key))
                    .await,
            ),
            15 => code(
                h.admin
                    .reset_user_methods(with_key(decode(body)?, &h.admin_key))
                    .await,
            ),
            16 => code(
                h.admin
                    .unblock_user(with_key(decode(body)?, &h.admin_key))
                    .await,
            ),
            17 => code(
                h.admin
                    .list_audit_events(with_key(decode(body)?, &h.admin_key))
                    .await,
            ),
            18 => code(
                h.admin
                    .delete_user(with_key(decode(body)?, &h.admin_key))
                    .await,
            ),
            19 => code(
                h.portal
                    .verify_offline_code(with_key(decode(body)?, &h.portal_key))
                    .await,
            ),
            20 => code(
                h.admin
                    .get_tenant_settings(with_key(decode(body)?, &h.admin_key))
                    .await,
            ),
            _ => code(
                h.admin
                    .update_tenant_settings(with_key(decode(body)?, &h.admin_key))
                    .await,
            ),
        }
    });
    if let Some(code) = code {
        assert!(
            !matches!(
                code,
                Code::Internal | Code::Unknown | Code::Unavailable | Code::DataLoss
            ),
            "a request was answered {code:?}"
        );
    }
}

/// The message in `body`, decoded as the server's codec decodes it; `None`
/// when the bytes are not one, once it is checked that the server refuses
/// them as the caller's error, before any handler runs.
fn decode<T: Message + Name + Default>(body: &[u8]) -> Option<T> {
    match decode_request(body) {
        Ok(message) => Some(message),
        Err(status) => {
            assert_eq!(
                status.code(),
                Code::InvalidArgument,
                "an undecodable body was answered {status:?}"
            );
            None
        }
    }
}

fn plain<T: Message + Name + Default>(body: &[u8]) -> Option<Request<T>> {
    decode(body).map(Request::new)
}

fn with_key<T>(message: T, key: &str) -> Request<T> {
    let mut request = Request::new(message);
    let value = format!("Bearer {key}").parse().expect("keys are ASCII");
    request.metadata_mut().insert("authorization", value);
    request
}

fn code<T>(result: Result<Response<T>, Status>) -> Option<Code> {
    Some(result.map_or_else(|status| status.code(), |_| Code::Ok))
}
