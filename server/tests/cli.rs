//! The `mfa-server` command as an operator uses it: migrate, create a tenant
//! and keys, serve (with `--dev` on an empty database), stop on SIGTERM.

use mfa_proto::v1::{portal_service_client::PortalServiceClient, GetUserStatusRequest};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

fn mfa_server(dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mfa-server"));
    command
        .env("MFA_DATA_DIR", dir)
        .env("MFA_LISTEN", "127.0.0.1:0")
        .env("MFA_METRICS_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn");
    command
}

fn run(command: &mut Command) -> Output {
    command.output().expect("mfa-server runs")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .trim()
        .to_owned()
}

/// Starts `serve`, returning the process and every stdout line up to the
/// "listening" line (which names the bound address).
fn serve(dir: &std::path::Path, dev: bool) -> (Served, Vec<String>, String) {
    serve_with(mfa_server(dir), dev)
}

/// [`serve`] with a command prepared by the caller (environment, stderr).
fn serve_with(mut command: Command, dev: bool) -> (Served, Vec<String>, String) {
    command.arg("serve").stdout(Stdio::piped());
    if dev {
        command.arg("--dev");
    }
    let mut child = command.spawn().expect("serve starts");
    let mut lines = Vec::new();
    let listening = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
        .find_map(|line| match line.strip_prefix("mfa-server listening on ") {
            Some(rest) => Some(rest.split(' ').next().unwrap_or_default().to_owned()),
            None => {
                lines.push(line.trim().to_owned());
                None
            }
        });
    match listening {
        Some(addr) => (Served(Some(child)), lines, addr),
        None => {
            let status = child.wait();
            panic!("serve exited early ({status:?}): {lines:?}");
        }
    }
}

/// A `serve` process, killed if a test fails before stopping it.
struct Served(Option<Child>);

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn stop(mut served: Served) {
    let child = served.0.take().expect("running");
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "serve exits cleanly on SIGTERM: {:?}",
        output.status
    );
}

async fn status_with(addr: &str, key: &str) -> Result<(), tonic::Status> {
    let mut client = PortalServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut request = tonic::Request::new(GetUserStatusRequest {
        user_id: "someone".into(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {key}").parse().unwrap());
    client.get_user_status(request).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_provisions_a_tenant_and_serves_it() {
    let dir = tempfile::tempdir().unwrap();
    let migrated = stdout(&run(mfa_server(dir.path()).arg("migrate")));
    assert!(migrated.contains("migrations applied"), "{migrated}");
    assert!(dir.path().join("mfa.db").exists());

    let tenant = stdout(&run(mfa_server(dir.path()).args([
        "tenant",
        "create",
        "--name",
        "Acme (External)",
        "--digits",
        "3",
    ])));
    assert_eq!(tenant.len(), 36, "a UUID: {tenant}");
    let created =
        run(mfa_server(dir.path())
            .args(["api-key", "create", "--tenant", &tenant, "--role", "portal"]));
    let key = stdout(&created);
    assert!(key.starts_with("mfak_"), "{key}");
    assert!(String::from_utf8_lossy(&created.stderr).contains("only time"));

    let bad_digits =
        run(mfa_server(dir.path()).args(["tenant", "create", "--name", "X", "--digits", "9"]));
    assert!(!bad_digits.status.success());
    assert!(String::from_utf8_lossy(&bad_digits.stderr).contains("between 2 and 6"));
    let unknown = run(mfa_server(dir.path()).args([
        "api-key",
        "create",
        "--tenant",
        "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a",
        "--role",
        "admin",
    ]));
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("tenant not found"));

    // `--dev` leaves a database that already has tenants alone.
    let (child, lines, addr) = serve(dir.path(), true);
    assert!(!lines.iter().any(|l| l.contains("portal key")), "{lines:?}");
    status_with(&addr, &key)
        .await
        .expect("the created key works");
    let wrong = status_with(&addr, "mfak_wrong").await.unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    stop(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_and_revokes_api_keys() {
    let dir = tempfile::tempdir().unwrap();
    let api_key = |args: &[&str]| run(mfa_server(dir.path()).arg("api-key").args(args));
    let tenant = stdout(&run(
        mfa_server(dir.path()).args(["tenant", "create", "--name", "Acme"])
    ));
    let create = |role: &str| {
        let created = api_key(&["create", "--tenant", &tenant, "--role", role]);
        let stderr = String::from_utf8_lossy(&created.stderr).into_owned();
        let id = stderr
            .split("key id ")
            .nth(1)
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("no key id in {stderr}"))
            .to_owned();
        (id, stdout(&created))
    };
    let (portal_id, portal_key) = create("portal");
    let (admin_id, admin_key) = create("admin");
    let row = |listing: &str, id: &str| {
        listing
            .lines()
            .find(|line| line.starts_with(id))
            .unwrap_or_else(|| panic!("{id} is not listed: {listing}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let mut outputs = Vec::new();

    let listed = api_key(&["list", "--tenant", &tenant]);
    let listing = stdout(&listed);
    let portal_row = row(&listing, &portal_id);
    assert_eq!(
        (&*portal_row[1], &*portal_row[3]),
        ("portal", "-"),
        "{listing}"
    );
    assert_eq!(row(&listing, &admin_id)[1], "admin");
    outputs.push(listed);

    // A server that checks the key on every call refuses it once revoked.
    let mut command = mfa_server(dir.path());
    command.env("MFA_API_KEY_CACHE_TTL", "0s");
    let (child, _, addr) = serve_with(command, false);
    status_with(&addr, &portal_key)
        .await
        .expect("the key works before it is revoked");
    let revoked = api_key(&["revoke", &portal_id]);
    let message = stdout(&revoked);
    assert!(
        message.contains(&format!("revoked API key {portal_id}")),
        "{message}"
    );
    outputs.push(revoked);
    let refused = status_with(&addr, &portal_key).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    stop(child);

    // Revoking again says so; the listing shows when it was revoked, and
    // when the running server last saw each key.
    let again = api_key(&["revoke", &portal_id]);
    assert!(stdout(&again).contains("already revoked"), "{again:?}");
    outputs.push(again);
    let listed = api_key(&["list", "--tenant", &tenant]);
    let listing = stdout(&listed);
    assert_eq!(
        listing
            .lines()
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["ID", "ROLE", "CREATED", "REVOKED", "LAST_USED", "TENANT"],
        "{listing}"
    );
    let portal_row = row(&listing, &portal_id);
    assert!(portal_row[3].ends_with('Z'), "a revocation time: {listing}");
    assert!(portal_row[4].ends_with('Z'), "a last use: {listing}");
    assert_eq!(portal_row[5], tenant, "{listing}");
    let admin_row = row(&listing, &admin_id);
    assert_eq!((&*admin_row[3], &*admin_row[4]), ("-", "-"), "never used");
    outputs.push(listed);

    // Without --tenant, every tenant's keys.
    let other = stdout(&run(
        mfa_server(dir.path()).args(["tenant", "create", "--name", "Other"])
    ));
    let (other_id, other_key) = {
        let created = api_key(&["create", "--tenant", &other, "--role", "admin"]);
        let stderr = String::from_utf8_lossy(&created.stderr).into_owned();
        let id = stderr
            .split("key id ")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        (id, stdout(&created))
    };
    let listed = api_key(&["list"]);
    let listing = stdout(&listed);
    assert_eq!(row(&listing, &other_id)[5], other, "{listing}");
    assert_eq!(row(&listing, &portal_id)[5], tenant, "{listing}");
    assert!(
        !stdout(&api_key(&["list", "--tenant", &tenant])).contains(&other_id),
        "--tenant lists that tenant's keys only"
    );
    outputs.push(listed);

    // An unknown id, and a key pasted instead of its id, are errors.
    let unknown = api_key(&["revoke", "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("API key not found"));
    let pasted = api_key(&["revoke", &admin_key]);
    assert!(!pasted.status.success());
    assert!(String::from_utf8_lossy(&pasted.stderr).contains("not the key itself"));
    outputs.extend([unknown, pasted]);

    for output in &outputs {
        for text in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(text);
            assert!(
                !text.contains(&portal_key)
                    && !text.contains(&admin_key)
                    && !text.contains(&other_key),
                "a key is printed"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_dev_on_an_empty_database_prints_working_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (child, lines, addr) = serve(dir.path(), true);
    let key_of = |label: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(label))
            .map(|k| k.trim().to_owned())
            .unwrap_or_else(|| panic!("no {label} in {lines:?}"))
    };
    let portal_key = key_of("portal key:");
    let admin_key = key_of("admin key:");
    status_with(&addr, &portal_key)
        .await
        .expect("the portal key works");
    // A valid key, of the other role.
    assert_eq!(
        status_with(&addr, &admin_key).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
    stop(child);
    let key_file = dir.path().join("server-identity.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the server key is private");
    }
    assert_eq!(std::fs::read(&key_file).unwrap().len(), 32);
}

/// Every string in a JSON value (the service keeps numbers as strings).
fn leaves(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => map.values().for_each(|v| leaves(v, out)),
        serde_json::Value::Array(items) => items.iter().for_each(|v| leaves(v, out)),
        serde_json::Value::String(s) => out.push(s.clone()),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_of_a_full_flow_carry_ids_and_no_secret() {
    use mfa_sdk::{
        portal::RelyingParty, Authenticator, DeviceInfo, EnrollmentUri, MemoryKeyStore,
        PushPlatform, SignInContext,
    };
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("server.log");
    let mut command = mfa_server(dir.path());
    command
        .env("MFA_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stderr(std::fs::File::create(&log_path).unwrap());
    let (child, lines, addr) = serve_with(command, true);
    let key_of = |label: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(label))
            .map(|k| k.trim().to_owned())
            .unwrap()
    };
    let (portal_key, admin_key) = (key_of("portal key:"), key_of("admin key:"));
    let url = format!("http://{addr}");
    let portal = RelyingParty::connect(&url, &portal_key).await.unwrap();

    let begun = portal.begin_enrollment("u", "u@example.jp").await.unwrap();
    let uri = EnrollmentUri::parse(&begun.qr_uri).unwrap();
    let mut wrong = uri.clone();
    wrong.activation_code = "ABCDEFGHJK".into();
    let info = |token: &str| DeviceInfo {
        name: "Pixel".into(),
        push_platform: PushPlatform::Fcm,
        push_token: token.into(),
    };
    assert!(
        Authenticator::enroll(&wrong, info("t"), &MemoryKeyStore::new())
            .await
            .is_err()
    );
    let push_token = "fcm-token-that-must-stay-private";
    let (mut phone, verification) =
        Authenticator::enroll(&uri, info(push_token), &MemoryKeyStore::new())
            .await
            .unwrap();
    let mut watch = portal.watch_enrollment(&begun.enrollment_id).await.unwrap();
    let verification_number = loop {
        let enrollment = watch.message().await.unwrap().unwrap().enrollment.unwrap();
        if !enrollment.verification_number.is_empty() {
            break enrollment.verification_number;
        }
    };
    phone
        .approve(&verification, &verification_number)
        .await
        .unwrap();
    let challenge = portal
        .start_sign_in("u", SignInContext::default())
        .await
        .unwrap();
    let pending = phone.pending_challenges().await.unwrap().remove(0);
    phone.approve(&pending, &challenge.number).await.unwrap();
    // Offline codes (on under --dev): the right code, then it again, then a wrong one.
    let offline_code = phone
        .account()
        .offline_code()
        .expect("codes under --dev")
        .code;
    portal
        .verify_offline_code("u", &offline_code, "203.0.113.5")
        .await
        .unwrap();
    let wrong_code = format!(
        "{:06}",
        (offline_code.parse::<u32>().unwrap() + 1) % 1_000_000
    );
    for code in [&offline_code, &wrong_code] {
        assert!(portal.verify_offline_code("u", code, "").await.is_err());
    }
    let account = serde_json::to_value(phone.account()).unwrap();
    let offline_secret = account["offline_code_secret"].as_str().unwrap().to_owned();
    let stranger = RelyingParty::connect(&url, "mfak_wrong").await.unwrap();
    assert!(stranger
        .start_sign_in("u", SignInContext::default())
        .await
        .is_err());
    stop(child);

    let log = std::fs::read_to_string(&log_path).unwrap();
    let events: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
        .collect();
    let message = |event: &serde_json::Value| {
        event["fields"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let created = events
        .iter()
        .find(|e| message(e) == "challenge created")
        .expect("a line about the created challenge");
    assert_eq!(
        created["fields"]["challenge_id"],
        challenge.challenge_id.as_str()
    );
    let request_id = created["span"]["request_id"].as_str().unwrap_or_default();
    assert_eq!(
        request_id.len(),
        36,
        "a request id on lines inside a call: {created}"
    );
    assert!(events.iter().any(|e| message(e) == "challenge ended"
        && e["fields"]["challenge_id"] == challenge.challenge_id.as_str()));
    for event in events
        .iter()
        .filter(|e| message(e).starts_with("challenge "))
    {
        assert!(event["fields"]["challenge_id"].is_string(), "{event}");
    }
    assert!(events
        .iter()
        .any(|e| message(e) == "failed activation attempt"));
    assert!(events.iter().any(|e| message(e) == "offline code accepted"));
    assert!(events.iter().any(|e| message(e) == "offline code refused"));

    let code = &uri.activation_code;
    let secrets = [
        portal_key.as_str(),
        admin_key.as_str(),
        code.as_str(),
        begun.manual_code.as_str(),
        push_token,
        offline_secret.as_str(),
    ];
    for secret in secrets {
        assert!(!log.contains(secret), "the log holds a secret");
    }
    // Numbers are short, so look for them as whole values, not substrings.
    for event in &events {
        let mut values = Vec::new();
        leaves(event, &mut values);
        for number in [
            &verification_number,
            &challenge.number,
            &offline_code,
            &wrong_code,
        ] {
            assert!(!values.contains(number), "a number is logged: {event}");
        }
    }
}

/// A pod of a Kubernetes Service named `mfa` gets `MFA_PORT`,
/// `MFA_SERVICE_HOST` and the like; an operator may have exported
/// `MFA_PORTAL_KEY` for the SDK's example. The server serves anyway, names
/// them in one warning (never their values), and reads its file from
/// `MFA_CONFIG`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_mfa_variables_do_not_stop_the_server_and_config_show_names_sources() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mfa.toml");
    std::fs::write(&file, "challenge_ttl = \"45s\"\n").unwrap();
    let foreign = [
        ("MFA_PORT", "tcp://10.96.0.12:50051"),
        ("MFA_PORT_50051_TCP", "tcp://10.96.0.12:50051"),
        ("MFA_PORT_50051_TCP_ADDR", "10.96.0.12"),
        ("MFA_SERVICE_HOST", "10.96.0.12"),
        ("MFA_SERVICE_PORT", "50051"),
        ("MFA_PORTAL_KEY", "mfak_exported-for-the-sdk-example"),
    ];
    let mut command = mfa_server(dir.path());
    command.envs(foreign).env("MFA_CONFIG", &file);

    let shown = run(command.args(["config", "show"]));
    let text = stdout(&shown);
    let line = |key: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key}: {text}"))
            .to_owned()
    };
    assert!(line("challenge_ttl").contains("\"45s\""), "{text}");
    assert!(
        line("challenge_ttl").ends_with(&format!("# file {}", file.display())),
        "{text}"
    );
    assert!(
        line("listen").ends_with("# environment MFA_LISTEN"),
        "{text}"
    );
    assert!(line("clock_skew").ends_with("# default"), "{text}");
    let warning = String::from_utf8_lossy(&shown.stderr).into_owned();
    for (name, value) in foreign {
        assert!(warning.contains(name), "{name} named: {warning}");
        // (A bare port number is in the variables' names too.)
        if value.parse::<u16>().is_err() {
            assert!(!warning.contains(value), "value of {name} shown: {warning}");
            assert!(!text.contains(value), "value of {name} shown: {text}");
        }
    }

    let mut command = mfa_server(dir.path());
    command
        .envs(foreign)
        .env("MFA_CONFIG", &file)
        .env("MFA_API_KEY_CACHE_TTL", "0s");
    let (served, lines, addr) = serve_with(command, true);
    let key = lines
        .iter()
        .find_map(|l| l.strip_prefix("portal key: "))
        .unwrap_or_else(|| panic!("no portal key: {lines:?}"))
        .trim()
        .to_owned();
    status_with(&addr, &key).await.expect("the server serves");
    stop(served);
}

/// The failure message of a command that must fail.
fn failure(output: &Output) -> String {
    assert!(!output.status.success(), "succeeded: {output:?}");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `tenant list`, `show` and `update` on the database of a running server:
/// the server uses the new settings within its `tenant_cache_ttl`; refused
/// updates say why and change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_lists_shows_and_updates_tenants_beside_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    // The operator's commands read the configuration the server runs with.
    let configured = || {
        let mut command = mfa_server(dir.path());
        command.env("MFA_TENANT_CACHE_TTL", "1s");
        command
    };
    let tenant_command = |args: &[&str]| run(configured().arg("tenant").args(args));
    let acme = stdout(&tenant_command(&[
        "create",
        "--name",
        "Acme (External)",
        "--digits",
        "3",
    ]));
    let other = stdout(&tenant_command(&["create", "--name", "Other"]));
    let key =
        stdout(&run(mfa_server(dir.path()).args([
            "api-key", "create", "--tenant", &acme, "--role", "portal",
        ])));

    let listing = stdout(&tenant_command(&["list"]));
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        [
            "ID",
            "DIGITS",
            "CHALLENGE_TTL",
            "ENROLLMENT_TTL",
            "CREATED",
            "NAME"
        ],
        "{listing}"
    );
    let row = |line: &str| {
        line.split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (first, second) = (row(lines[1]), row(lines[2]));
    assert_eq!(
        (&*first[0], &*first[1], &*first[2], &*first[3]),
        (acme.as_str(), "3", "default", "default"),
        "{listing}"
    );
    assert!(lines[1].ends_with("  Acme (External)"), "{listing}");
    assert_eq!((&*second[0], &*second[1]), (other.as_str(), "2"));

    let (child, _, addr) = serve_with(configured(), false);
    let portal = mfa_sdk::portal::RelyingParty::connect(&format!("http://{addr}"), &key)
        .await
        .unwrap();
    // How long the activation code of a new enrollment lives, as the running
    // server decides it (give or take the call's own time).
    let code_lifetime = || async {
        let before = std::time::SystemTime::now();
        let begun = portal.begin_enrollment("u", "u@example.jp").await.unwrap();
        let expires = begun.expire_time.unwrap();
        let expires = std::time::UNIX_EPOCH
            + std::time::Duration::new(expires.seconds as u64, expires.nanos as u32);
        expires.duration_since(before).unwrap().as_secs()
    };
    assert!(
        (595..=600).contains(&code_lifetime().await),
        "the default 10m"
    );

    let updated = stdout(&tenant_command(&[
        "update",
        &acme,
        "--enrollment-ttl",
        "2h",
        "--name",
        "Acme Ltd",
    ]));
    let changed = std::time::Instant::now();
    assert!(
        updated.contains("enrollment ttl:     2h (this tenant's)"),
        "{updated}"
    );
    assert!(
        updated.contains("challenge ttl:      2m (the server's challenge_ttl)"),
        "{updated}"
    );
    assert!(
        updated.contains("within 1s (tenant_cache_ttl)"),
        "{updated}"
    );
    // The running server cached the tenant; it must read it again once its
    // cache entry is a second old, not later.
    loop {
        let lifetime = code_lifetime().await;
        if (7195..=7200).contains(&lifetime) {
            break;
        }
        assert!(
            changed.elapsed() < std::time::Duration::from_secs(3),
            "the running server still gives codes of {lifetime}s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let off = stdout(&tenant_command(&[
        "update",
        &acme,
        "--offline-codes",
        "off",
    ]));
    assert!(off.contains("offline codes:      off"), "{off}");
    let show = || stdout(&tenant_command(&["show", &acme]));
    let shown = show();
    for line in [
        "offline codes:      off".to_owned(),
        format!("id:                 {acme}"),
        "name:               Acme Ltd".to_owned(),
        "digits:             3".to_owned(),
        "enrollment ttl:     2h (this tenant's)".to_owned(),
        "users:              1".to_owned(),
        "active devices:     0".to_owned(),
        "pending challenges: 0".to_owned(),
    ] {
        assert!(shown.lines().any(|l| l == line), "{line:?} in:\n{shown}");
    }

    let unknown = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
    for (args, message) in [
        (vec!["update", &acme, "--digits", "9"], "between 2 and 6"),
        (
            vec!["update", &acme, "--challenge-ttl", "5s"],
            "challenge TTL must be between 30s and 10m (not 5s)",
        ),
        (
            vec!["update", &acme, "--enrollment-ttl", "2d", "--digits", "4"],
            "enrollment TTL must be between 1m and 1day (not 2days)",
        ),
        (
            vec!["update", &acme, "--default-ttls", "--challenge-ttl", "1m"],
            "cannot be used with",
        ),
        (
            vec!["update", &acme],
            "required arguments were not provided",
        ),
        (vec!["update", unknown, "--digits", "4"], "tenant not found"),
        (vec!["show", unknown], "tenant not found"),
        (vec!["show", "acme"], "tenant must be a UUID"),
        (
            vec!["update", &acme, "--offline-codes", "maybe"],
            "give on or off",
        ),
    ] {
        let error = failure(&tenant_command(&args));
        assert!(error.contains(message), "{args:?}: {error}");
    }
    assert_eq!(show(), shown, "refused updates change nothing");

    let reset = stdout(&tenant_command(&["update", &acme, "--default-ttls"]));
    assert!(
        reset.contains("enrollment ttl:     10m (the server's enrollment_ttl)"),
        "{reset}"
    );
    stop(child);
}

/// `user delete` on the SQLite file of a running server: the server refuses
/// the deleted user's phone at once, the deletion is audited as the
/// command's, and deleting again (or a user who never was) succeeds with
/// nothing to delete; bad input is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_deletes_a_user_beside_a_running_server() {
    use mfa_proto::v1::{admin_service_client::AdminServiceClient, ListAuditEventsRequest};
    use mfa_sdk::{
        portal::{BearerAuth, RelyingParty},
        Authenticator, DeviceInfo, EnrollmentUri, MemoryKeyStore, PushPlatform,
    };
    let dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| run(mfa_server(dir.path()).args(args));
    let tenant = stdout(&cli(&["tenant", "create", "--name", "Acme"]));
    let key = |role| {
        stdout(&cli(&[
            "api-key", "create", "--tenant", &tenant, "--role", role,
        ]))
    };
    let (portal_key, admin_key) = (key("portal"), key("admin"));
    let (child, _, addr) = serve(dir.path(), false);
    let url = format!("http://{addr}");
    let portal = RelyingParty::connect(&url, &portal_key).await.unwrap();

    let begun = portal.begin_enrollment("u", "u@example.jp").await.unwrap();
    let info = DeviceInfo {
        name: "Pixel".into(),
        push_platform: PushPlatform::None,
        push_token: String::new(),
    };
    let (mut phone, verification) = Authenticator::enroll(
        &EnrollmentUri::parse(&begun.qr_uri).unwrap(),
        info,
        &MemoryKeyStore::new(),
    )
    .await
    .unwrap();
    let mut watch = portal.watch_enrollment(&begun.enrollment_id).await.unwrap();
    let number = loop {
        let enrollment = watch.message().await.unwrap().unwrap().enrollment.unwrap();
        if !enrollment.verification_number.is_empty() {
            break enrollment.verification_number;
        }
    };
    phone.approve(&verification, &number).await.unwrap();
    phone.pending_challenges().await.expect("enrolled");

    let user = |args: &[&str]| run(mfa_server(dir.path()).arg("user").args(args));
    let deleted = stdout(&user(&["delete", "--tenant", &tenant, "--user", "u"]));
    assert_eq!(
        deleted,
        format!(
            "deleted user \"u\" of tenant {tenant}: 1 devices, 1 challenges (0 pending, \
             cancelled), 1 enrollments (0 open, cancelled); {} audit events anonymised",
            deleted
                .rsplit("; ")
                .next()
                .and_then(|s| s.split(' ').next())
                .unwrap()
        )
    );
    let refused = phone.pending_challenges().await.unwrap_err();
    assert!(refused.is_device_unknown(), "{refused:?}");
    assert!(portal.user_status("u").await.unwrap().devices.is_empty());

    let channel = tonic::transport::Channel::from_shared(url)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin =
        AdminServiceClient::with_interceptor(channel, BearerAuth::new(&admin_key).unwrap());
    let events = admin
        .list_audit_events(ListAuditEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events[0].event_type, "user.deleted");
    assert!(
        events[0].detail.ends_with("; by mfa-server user delete"),
        "{:?}",
        events[0]
    );
    assert!(events.iter().all(|e| e.user_id.is_empty()), "{events:?}");
    stop(child);

    for user_id in ["u", "never-enrolled"] {
        let again = stdout(&user(&["delete", "--tenant", &tenant, "--user", user_id]));
        assert_eq!(
            again,
            format!("no user {user_id:?} in tenant {tenant}: nothing to delete")
        );
    }
    let unknown = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
    for (args, message) in [
        (
            vec!["delete", "--tenant", unknown, "--user", "u"],
            "tenant not found",
        ),
        (
            vec!["delete", "--tenant", "acme", "--user", "u"],
            "tenant must be a UUID",
        ),
        (
            vec!["delete", "--tenant", &tenant, "--user", ""],
            "user_id is required",
        ),
        (vec!["delete", "--tenant", &tenant], "--user <USER>"),
    ] {
        let error = failure(&user(&args));
        assert!(error.contains(message), "{args:?}: {error}");
    }
}

#[test]
fn the_version_is_the_workspace_version() {
    let dir = tempfile::tempdir().unwrap();
    let printed = stdout(&run(mfa_server(dir.path()).arg("--version")));
    assert_eq!(printed, format!("mfa-server {}", env!("CARGO_PKG_VERSION")));
    assert!(
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../CHANGELOG.md"))
            .unwrap()
            .contains("## [Unreleased]"),
        "the changelog has a place for the next changes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_from_the_configured_metrics_listener() {
    let dir = tempfile::tempdir().unwrap();
    // As in the container image: the metrics listener on every address,
    // which `health` reaches through loopback.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .unwrap()
        .port();
    let metrics_listen = format!("0.0.0.0:{port}");
    let health = || {
        run(mfa_server(dir.path())
            .env("MFA_METRICS_LISTEN", &metrics_listen)
            .arg("health"))
    };
    let mut command = mfa_server(dir.path());
    command.env("MFA_METRICS_LISTEN", &metrics_listen);
    let (served, _, _) = serve_with(command, false);
    // The first health check runs as the server starts; until it has, the
    // state is NOT_SERVING, so ask until it answers SERVING.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let serving = loop {
        let output = health();
        if output.status.success() || std::time::Instant::now() > deadline {
            break output;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    let printed = stdout(&serving);
    assert_eq!(printed.lines().next(), Some("SERVING"), "{printed}");
    assert!(printed.contains(&format!("version: {}", env!("CARGO_PKG_VERSION"))));
    stop(served);

    let stopped = health();
    assert!(!stopped.status.success(), "no server: health fails");
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert!(
        stderr.contains(&format!("http://127.0.0.1:{port}/healthz")),
        "{stderr}"
    );
}
