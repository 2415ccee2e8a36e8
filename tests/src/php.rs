//! The example PHP portal (`examples/php-portal/`) under PHP's built-in web
//! server, `php -S`, with Debian's php-cli and php-curl; and a cookie-keeping
//! HTTP client to use it as a browser would, without one.

use crate::{haproxy::free_port, http_api::HttpApi};
use http::{Method, StatusCode};
use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex},
    time::Duration,
};

/// The example's directory.
pub fn example_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/php-portal")
}

/// Whether `php` with the curl extension is installed; if not, says that
/// `test` is skipped, or fails under `CI=true` (where `.ci/run` installs
/// php-cli and php-curl).
pub fn available_or_skip(test: &str) -> bool {
    let has_curl = Command::new("php").arg("-m").output().is_ok_and(|out| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l == "curl")
    });
    crate::installed_or_skip(test, has_curl, "php-cli php-curl")
}

/// `php -S` serving the example portal, stopped when dropped.
pub struct PhpPortal {
    child: Child,
    /// Where the portal's pages are.
    pub addr: SocketAddr,
    /// What PHP wrote to its log so far (for failure messages).
    log: Arc<Mutex<String>>,
    /// PHP's session files.
    _sessions: tempfile::TempDir,
}

impl PhpPortal {
    /// Starts the portal against the HTTP/JSON API at `api_url` with
    /// `portal_key`, and returns once it listens.
    pub fn start(api_url: &str, portal_key: &str) -> Self {
        let addr = free_port();
        let sessions = tempfile::tempdir().expect("session directory");
        let mut child = Command::new("php")
            .arg("-d")
            .arg(format!("session.save_path={}", sessions.path().display()))
            .arg("-S")
            .arg(addr.to_string())
            .arg("index.php")
            .current_dir(example_dir())
            .env("MFA_HTTP_URL", api_url)
            .env("MFA_PORTAL_KEY", portal_key)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("php starts");
        // PHP says when it listens, then logs each request; the log is read
        // to its end so that PHP never blocks on a full pipe.
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (started_tx, started) = mpsc::channel();
        let shared = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("started") {
                    let _ = started_tx.send(());
                }
                let mut log = shared.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let portal = Self {
            child,
            addr,
            log,
            _sessions: sessions,
        };
        started
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("php -S did not start:\n{}", portal.log()));
        portal
    }

    /// PHP's log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// A new browser-like client of the portal.
    pub fn browser(&self) -> Browser {
        Browser {
            http: HttpApi::new(&format!("http://{}", self.addr), None),
            cookie: Arc::new(Mutex::new(None)),
        }
    }
}

impl Drop for PhpPortal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that keeps the portal's session cookie, as a browser does.
#[derive(Clone)]
pub struct Browser {
    http: HttpApi,
    cookie: Arc<Mutex<Option<String>>>,
}

/// A page: its status and HTML.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub html: String,
}

impl Page {
    /// The text inside the element with `id` (panics, showing the page, if
    /// there is none).
    pub fn text(&self, id: &str) -> String {
        let start = self.open_tag(id);
        let body = &self.html[start..];
        let inner = &body[body.find('>').expect("tag end") + 1..];
        let end = inner.find('<').expect("element end");
        inner[..end].to_owned()
    }

    /// The value of `attribute` of the element with `id`.
    pub fn attribute(&self, id: &str, attribute: &str) -> String {
        let start = self.open_tag(id);
        let tag = &self.html[start..start + self.html[start..].find('>').expect("tag end")];
        let marker = format!("{attribute}=\"");
        let value = &tag[tag
            .find(&marker)
            .unwrap_or_else(|| panic!("no {attribute} on #{id}: {tag}"))
            + marker.len()..];
        value[..value.find('"').expect("attribute end")].to_owned()
    }

    fn open_tag(&self, id: &str) -> usize {
        let marker = format!("id=\"{id}\"");
        let at = self
            .html
            .find(&marker)
            .unwrap_or_else(|| panic!("no #{id} in:\n{}", self.html));
        self.html[..at].rfind('<').expect("tag start")
    }
}

impl Browser {
    /// GETs `path`.
    pub async fn get(&self, path: &str) -> Page {
        self.request(Method::GET, path, None).await
    }

    /// POSTs a form (`name`, `value` pairs) to `path`.
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        self.request(
            Method::POST,
            path,
            Some(("application/x-www-form-urlencoded", body.into_bytes())),
        )
        .await
    }

    async fn request(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Page {
        let cookie = self.cookie.lock().unwrap().clone();
        let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("cookie", c.as_str())).collect();
        let response = self.http.send(method, path, body, &headers).await;
        for set in response.headers().get_all(http::header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            *self.cookie.lock().unwrap() = Some(pair);
        }
        let status = response.status();
        let bytes = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        Page {
            status,
            html: String::from_utf8(bytes.to_vec()).expect("UTF-8 page"),
        }
    }
}
