//! A plain HTTP/1.1 client for the HTTP/JSON API: what a portal in any
//! language does with its HTTP library, and no more.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::TokioExecutor,
};
use serde_json::Value;

/// The API at `base` (`http://127.0.0.1:PORT`) with an optional key.
#[derive(Clone)]
pub struct HttpApi {
    base: String,
    key: Option<String>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// An answer read to its end.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    /// The body as JSON (panics, naming the body, if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// `error.reason` of a JSON error, after checking the error's shape:
    /// its `status` is the HTTP status and the content type JSON.
    pub fn reason(&self) -> String {
        let body = self.json();
        let error = &body["error"];
        assert_eq!(
            error["status"].as_u64(),
            Some(u64::from(self.status.as_u16())),
            "{body}"
        );
        assert_eq!(
            self.headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/json"),
            "{body}"
        );
        for field in ["code", "reason", "message"] {
            assert!(error[field].is_string(), "{field} in {body}");
        }
        assert!(error["metadata"].is_object(), "{body}");
        error["reason"].as_str().unwrap().to_owned()
    }
}

impl HttpApi {
    /// The API at `base`, calling with `key` (a portal key, usually).
    pub fn new(base: &str, key: Option<&str>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            key: key.map(str::to_owned),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// The same API with another key (or none).
    pub fn with_key(&self, key: Option<&str>) -> Self {
        Self {
            key: key.map(str::to_owned),
            ..self.clone()
        }
    }

    /// Sends a request, with `body` as `content-type: application/json`
    /// when there is one.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| ("application/json", serde_json::to_vec(&b).unwrap()));
        self.raw(method, path, body).await
    }

    /// Sends a request with a body of any type and bytes.
    pub async fn raw(&self, method: Method, path: &str, body: Option<(&str, Vec<u8>)>) -> Answer {
        let response = self.send(method, path, body, &[]).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Sends a request and returns the response before reading its body
    /// (for server-sent events).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        headers: &[(&str, &str)],
    ) -> http::Response<hyper::body::Incoming> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(key) = &self.key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some((content_type, bytes)) => {
                request = request.header("content-type", content_type);
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        self.client
            .request(request.body(body).unwrap())
            .await
            .expect("the HTTP/JSON API answers")
    }

    /// GET `path`.
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    /// POST `body` to `path`.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }
}

/// Server-sent events read from a response body as they arrive.
pub struct Events {
    body: hyper::body::Incoming,
    buffer: String,
}

/// One event: its name and its data.
#[derive(Debug, Clone)]
pub struct Event {
    pub name: String,
    pub data: Value,
}

impl Events {
    /// Reads the events of `response` (which must be `text/event-stream`).
    pub fn of(response: http::Response<hyper::body::Incoming>) -> Self {
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response
                .headers()
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("text/event-stream")
        );
        Self {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), or `None` when the
    /// stream ended.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        name = value.trim().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push_str(value.trim_start());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Some(Event {
                    name,
                    data: serde_json::from_str(&data).expect("event data is JSON"),
                });
            }
            match self.body.frame().await {
                Some(frame) => {
                    if let Ok(data) = frame.expect("event stream frame").into_data() {
                        self.buffer.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
                None => return None,
            }
        }
    }
}
