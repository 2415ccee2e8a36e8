//! The container image, run as a container runtime runs it, on machines
//! where no container engine can pull images: the real `mfa-server` binary
//! (the one `cargo test` builds; the image holds the release build of the
//! same source) started the way `deploy/Dockerfile`'s last stage says — read
//! from that file, not restated here:
//!
//! - as its numeric `USER`, with no capabilities and no_new_privs;
//! - with its `ENV` and nothing but `MFA_*` variables an operator would add
//!   with `-e` (no `--config`, no configuration file);
//! - through its `ENTRYPOINT` and `CMD`, from its `WORKDIR`;
//! - in a root file system that is read-only except its `VOLUME` (or, for a
//!   replica on PostgreSQL, with nothing writable at all), built by
//!   `tests/run-as-image.sh` in mount and PID namespaces of its own;
//! - checked by its `HEALTHCHECK` command, as the engine would.
//!
//! An operator's first steps follow: create a tenant and a portal key with
//! the image (`docker run … tenant create`, `api-key create`), start it, wait
//! for its health check, enroll a phone with the SDK and approve a sign-in;
//! stop it with SIGTERM as `docker stop` does. The logs must not hold the
//! keys. Namespaces and mounts need root: without it the tests say they
//! are skipped (and fail under `CI=true`, which runs as root).

use mfa_proto::v1::{ChallengeState, SignInContext};
use mfa_sdk::{portal::RelyingParty, ConnectOptions};
use mfa_tests::{
    enroll_phone, haproxy::free_port, only_pending, phone_info, postgres, process::binary, within,
};
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// `PATH` as `debian:bookworm-slim`, the runtime stage's base, sets it.
const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// What `deploy/Dockerfile`'s last stage says about running the image.
#[derive(Debug)]
struct Image {
    uid: u32,
    gid: u32,
    env: BTreeMap<String, String>,
    workdir: String,
    volume: String,
    /// Where the binary is copied to.
    binary_path: String,
    entrypoint: Vec<String>,
    cmd: Vec<String>,
    healthcheck: Vec<String>,
}

impl Image {
    fn read() -> Self {
        let path = repository().join("deploy/Dockerfile");
        let text = std::fs::read_to_string(&path).expect("deploy/Dockerfile");
        // Instructions with their continuation lines joined, comments
        // dropped; only the last stage's.
        let mut instructions: Vec<(String, String)> = Vec::new();
        let mut current = String::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
                continue;
            }
            if let Some(start) = line.strip_suffix('\\') {
                current.push_str(start);
                current.push(' ');
                continue;
            }
            current.push_str(line);
            let (instruction, arguments) = current.split_once(' ').unwrap_or((&current, ""));
            let instruction = instruction.to_ascii_uppercase();
            if instruction == "FROM" {
                instructions.clear();
            }
            instructions.push((instruction, arguments.trim().to_owned()));
            current.clear();
        }
        let json = |arguments: &str| -> Vec<String> {
            serde_json::from_str(arguments)
                .unwrap_or_else(|e| panic!("{arguments}: not the exec form (a JSON array): {e}"))
        };
        let last = |name: &str| {
            instructions
                .iter()
                .rev()
                .find(|(instruction, _)| instruction == name)
                .map(|(_, arguments)| arguments.clone())
                .unwrap_or_else(|| panic!("deploy/Dockerfile's last stage has no {name}"))
        };
        let mut env = BTreeMap::new();
        for (_, arguments) in instructions.iter().filter(|(i, _)| i == "ENV") {
            for pair in arguments.split_whitespace() {
                let (name, value) = pair.split_once('=').expect("ENV NAME=value");
                assert!(!value.contains(['"', '\'']), "unquoted ENV values: {pair}");
                env.insert(name.to_owned(), value.to_owned());
            }
        }
        let user = last("USER");
        let (uid, gid) = user.split_once(':').expect("USER uid:gid");
        let binary_path = instructions
            .iter()
            .filter(|(i, _)| i == "COPY")
            .filter_map(|(_, arguments)| {
                let words: Vec<&str> = arguments.split_whitespace().collect();
                (words.len() >= 2 && words[words.len() - 2].ends_with("/mfa-server"))
                    .then(|| words[words.len() - 1].to_owned())
            })
            .next()
            .expect("a COPY of the mfa-server binary");
        let healthcheck = last("HEALTHCHECK");
        let (_, healthcheck) = healthcheck.split_once(" CMD ").expect("HEALTHCHECK … CMD");
        let volume = json(&last("VOLUME"));
        assert_eq!(volume.len(), 1, "one VOLUME: {volume:?}");
        Self {
            uid: uid.parse().expect("a numeric uid"),
            gid: gid.parse().expect("a numeric gid"),
            env,
            workdir: last("WORKDIR"),
            volume: volume[0].clone(),
            binary_path,
            entrypoint: json(&last("ENTRYPOINT")),
            cmd: json(&last("CMD")),
            healthcheck: json(healthcheck),
        }
    }
}

/// Whether these tests can run: root, and namespaces allowed. Otherwise says
/// that `test` is skipped, or fails under `CI=true`.
fn available_or_skip(test: &str) -> bool {
    let why = match Command::new("unshare")
        .args(["--mount", "--pid", "--fork", "true"])
        .output()
    {
        Ok(output) if output.status.success() => return true,
        Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        Err(e) => format!("unshare: {e}"),
    };
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test} needs mount and PID namespaces (root) under CI: {why}");
    }
    let _ = writeln!(
        std::io::stderr().lock(),
        "SKIPPED {test}: cannot make mount and PID namespaces (run as root): {why}"
    );
    false
}

/// One `docker run` of the image: its mounts, and the operator's `-e`.
struct Run<'a> {
    image: &'a Image,
    /// `HOST:IMAGE:ro|rw` mounts besides the binary.
    mounts: Vec<String>,
    /// `MFA_*` variables on top of the image's `ENV`.
    overrides: Vec<(String, String)>,
    /// Holds the root's mount point.
    scratch: tempfile::TempDir,
}

impl<'a> Run<'a> {
    fn new(image: &'a Image, mounts: Vec<String>, overrides: &[(&str, String)]) -> Self {
        for (name, _) in overrides {
            assert!(name.starts_with("MFA_"), "configuration only from MFA_*");
        }
        Self {
            image,
            mounts,
            overrides: overrides
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    /// The runtime's command line for `args` after the entry point (`None`:
    /// the image's `CMD`), or for `command` instead of the entry point.
    fn command(&self, command: Vec<String>) -> Command {
        let root = self.scratch.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        let mut run = Command::new("unshare");
        run.args(["--mount", "--pid", "--fork", "--kill-child"])
            .arg("sh")
            .arg(repository().join("tests/run-as-image.sh"))
            .arg(&root)
            .arg(format!("{}:{}", self.image.uid, self.image.gid))
            .arg(&self.image.workdir)
            .arg(format!(
                "{}:{}:ro",
                binary().display(),
                self.image.binary_path
            ))
            .args(&self.mounts)
            .arg("--")
            .args(command)
            // The container's environment and nothing else.
            .env_clear()
            .env("PATH", BASE_PATH)
            .envs(&self.image.env)
            .envs(self.overrides.iter().map(|(k, v)| (k, v)));
        run
    }

    fn entrypoint(&self, args: Option<&[&str]>) -> Command {
        let mut command = self.image.entrypoint.clone();
        match args {
            Some(args) => command.extend(args.iter().map(|a| (*a).to_owned())),
            None => command.extend(self.image.cmd.iter().cloned()),
        }
        self.command(command)
    }

    /// `docker run --rm IMAGE args…`: its output, which must be a success.
    fn output(&self, args: &[&str]) -> String {
        let output = self.entrypoint(Some(args)).output().expect("unshare runs");
        assert!(
            output.status.success(),
            "{args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }

    /// The image's `HEALTHCHECK` command, as `docker exec` would run it.
    fn healthcheck(&self) -> Output {
        self.command(self.image.healthcheck.clone())
            .output()
            .expect("unshare runs")
    }

    /// `docker run -d IMAGE`: returns once the server listens.
    fn start(&self) -> Container {
        let mut child = self
            .entrypoint(None)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare starts");
        let logs = Arc::new(Mutex::new(String::new()));
        {
            let logs = logs.clone();
            let mut stderr = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                let mut buffer = [0; 4096];
                while let Ok(n @ 1..) = stderr.read(&mut buffer) {
                    logs.lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            });
        }
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let listening = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.starts_with("mfa-server listening on "));
        std::thread::spawn(move || lines.for_each(drop));
        let mut container = Container { child, logs };
        if !listening {
            let status = container.child.wait().unwrap();
            panic!(
                "the image's server exited before listening ({status}): {}",
                container.logs()
            );
        }
        container
    }
}

/// A running "container": `unshare`, whose child is the server, PID 1 of
/// its namespace. Killed (with everything in it) when dropped.
struct Container {
    child: Child,
    logs: Arc<Mutex<String>>,
}

impl Container {
    fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// `docker stop`: SIGTERM to PID 1, which must exit cleanly.
    fn stop(mut self) {
        let unshare = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).unwrap();
        let server = children.split_whitespace().next().expect("the server runs");
        let status = Command::new("kill")
            .args(["-TERM", server])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(
            exit.success(),
            "SIGTERM: exits cleanly ({exit}): {}",
            self.logs()
        );
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The engine's health check: the image's HEALTHCHECK command, repeated
/// until it succeeds (the engine's start period) or 20 s have passed.
fn wait_until_healthy(run: &Run) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let output = run.healthcheck();
        if output.status.success() {
            let printed = String::from_utf8_lossy(&output.stdout).into_owned();
            assert_eq!(printed.lines().next(), Some("SERVING"), "{printed}");
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the health check never passed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The listeners on free ports, on every address as in the image (a
/// container's `-p` would map them; here the network is the host's), and
/// the URL that reaches the gRPC one.
fn listeners() -> (Vec<(&'static str, String)>, String) {
    let (grpc, metrics) = (free_port().port(), free_port().port());
    let url = format!("http://127.0.0.1:{grpc}");
    let overrides = vec![
        ("MFA_LISTEN", format!("0.0.0.0:{grpc}")),
        ("MFA_METRICS_LISTEN", format!("0.0.0.0:{metrics}")),
        ("MFA_PUBLIC_URL", url.clone()),
        // No TLS on the listener: a TLS-terminating balancer is in front.
        ("MFA_TLS__ALLOW_PLAINTEXT", "true".to_owned()),
    ];
    (overrides, url)
}

/// A portal enrolls a phone and the phone approves a sign-in.
async fn sign_in(url: &str, portal_key: &str) {
    let portal = RelyingParty::connect(url, portal_key)
        .await
        .expect("the portal connects");
    let mut phone = enroll_phone(
        &portal,
        "hanako",
        "hanako@example.jp",
        phone_info("Phone"),
        &ConnectOptions::default(),
    )
    .await;
    let challenge = portal
        .start_sign_in("hanako", SignInContext::default())
        .await
        .expect("challenge created");
    let pending = only_pending(&mut phone).await;
    assert_eq!(pending.challenge_id, challenge.challenge_id);
    let answer = phone.approve(&pending, &challenge.number).await.unwrap();
    assert_eq!(answer.state, ChallengeState::Approved);
    let outcome = within(portal.await_outcome(&challenge.challenge_id))
        .await
        .expect("outcome");
    assert_eq!(outcome.state(), ChallengeState::Approved);
}

/// A directory owned by the image's user, as a new volume is (Docker copies
/// the image directory's owner and mode into it).
fn volume_for(image: &Image) -> tempfile::TempDir {
    let volume = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(volume.path(), Some(image.uid), Some(image.gid)).unwrap();
    std::fs::set_permissions(volume.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    volume
}

#[test]
fn the_run_is_as_locked_down_as_the_image_says() {
    if !available_or_skip("the_run_is_as_locked_down_as_the_image_says") {
        return;
    }
    let image = Image::read();
    let volume = volume_for(&image);
    let run = Run::new(
        &image,
        vec![format!("{}:{}:rw", volume.path().display(), image.volume)],
        &[],
    );
    // `docker run --entrypoint /bin/sh`: who it is, and where it can write.
    let script = r#"
        echo "user $(id -u):$(id -g) groups $(id -G)"
        echo "dir $(pwd)"
        grep -E '^(CapEff|CapBnd|NoNewPrivs):' /proc/self/status
        for dir in / /tmp /etc /usr/local/bin /var /run /dev "$1"; do
            if (: >"$dir/.probe") 2>/dev/null; then echo "writable $dir"; rm "$dir/.probe"; fi
        done
    "#;
    let output = run
        .command(
            ["/bin/sh", "-c", script, "sh", &image.volume]
                .map(str::to_owned)
                .to_vec(),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{output:?}");
    let uid = image.uid;
    let gid = image.gid;
    assert!(uid != 0 && gid != 0);
    let expected = format!(
        "user {uid}:{gid} groups {gid}\ndir {}\n\
         CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t1\n\
         writable {}\n",
        image.workdir, image.volume
    );
    assert_eq!(stdout, expected, "only the volume is writable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_signs_in_on_its_volume_as_its_user() {
    if !available_or_skip("the_image_signs_in_on_its_volume_as_its_user") {
        return;
    }
    let image = Image::read();
    let volume = volume_for(&image);
    let (overrides, url) = listeners();
    let run = Run::new(
        &image,
        vec![format!("{}:{}:rw", volume.path().display(), image.volume)],
        &overrides,
    );

    // The operator's first steps, each a `docker run --rm` of the image.
    let tenant = run.output(&["tenant", "create", "--name", "Example"]);
    let portal_key = run.output(&["api-key", "create", "--tenant", &tenant, "--role", "portal"]);
    let admin_key = run.output(&["api-key", "create", "--tenant", &tenant, "--role", "admin"]);
    assert!(portal_key.starts_with("mfak_"), "a key: {portal_key}");

    let container = run.start();
    wait_until_healthy(&run);
    sign_in(&url, &portal_key).await;
    let logs = container.logs();
    container.stop();
    let failed = run.healthcheck();
    assert!(
        !failed.status.success(),
        "no server: the health check fails"
    );

    // Its data, in the volume, is its user's; the key readable by it alone.
    let mut names = Vec::new();
    for entry in std::fs::read_dir(volume.path()).unwrap() {
        let entry = entry.unwrap();
        let metadata = entry.metadata().unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert_eq!(
            (metadata.uid(), metadata.gid()),
            (image.uid, image.gid),
            "{name} is the image user's"
        );
        names.push(name);
    }
    assert!(names.contains(&"mfa.db".to_owned()), "{names:?}");
    let key = std::fs::metadata(volume.path().join("server-identity.key")).unwrap();
    assert_eq!((key.len(), key.mode() & 0o777), (32, 0o600));
    // The logs of the whole run name no key (the image logs JSON).
    assert!(logs.contains("\"level\""), "JSON logs: {logs}");
    for key in [&portal_key, &admin_key] {
        assert!(!logs.contains(key.as_str()), "a key in the logs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_the_image_on_postgresql_writes_no_file() {
    let test = "a_replica_of_the_image_on_postgresql_writes_no_file";
    if !available_or_skip(test) || !postgres::available_or_skip(test).await {
        return;
    }
    let image = Image::read();
    let database = postgres::TestDatabase::create().await;
    // The server key from a Secret: root's, readable by the image's group
    // (Kubernetes' fsGroup), mounted read-only. No volume: the image's data
    // directory stays on the read-only root.
    let secrets = tempfile::tempdir().unwrap();
    let key_file = secrets.path().join("server-identity.key");
    let key: [u8; 32] = rand::random();
    std::fs::write(&key_file, key).unwrap();
    std::os::unix::fs::chown(&key_file, Some(0), Some(image.gid)).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o440)).unwrap();
    let mount = "/etc/mfa/identity/server-identity.key";
    let (mut overrides, url) = listeners();
    overrides.push(("MFA_DATABASE_URL", database.url.clone()));
    overrides.push(("MFA_SERVER_KEY_FILE", mount.to_owned()));
    let run = Run::new(
        &image,
        vec![format!("{}:{mount}:ro", key_file.display())],
        &overrides,
    );

    let tenant = run.output(&["tenant", "create", "--name", "Example"]);
    let portal_key = run.output(&["api-key", "create", "--tenant", &tenant, "--role", "portal"]);
    let container = run.start();
    wait_until_healthy(&run);
    sign_in(&url, &portal_key).await;
    let logs = container.logs();
    container.stop();
    assert!(!logs.contains(&portal_key), "a key in the logs");
    // The key was used as given, not replaced.
    assert_eq!(std::fs::read(&key_file).unwrap(), key);
}
