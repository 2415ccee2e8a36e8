//! `mfa-server stats`: a short latency table read from a running server's
//! metrics endpoint, for an operator without Grafana.
//!
//! The endpoint is fetched once, parsed with a Prometheus text-format parser,
//! and the histograms are summarised with the same estimate Prometheus's
//! `histogram_quantile` makes (linear interpolation inside the bucket that
//! holds the rank). One scrape holds totals since the server started, so the
//! table describes the whole uptime, not the last few minutes: for a recent
//! window, use the dashboard.

use crate::error_text::with_causes;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use prometheus_parse::{Sample, Scrape, Value};
use std::{collections::BTreeMap, fmt, time::Duration};

/// How long the whole fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// A metrics page larger than this is refused rather than held in memory.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Why the table could not be made.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error("{0:?} is not a metrics URL: {1}")]
    Url(String, String),
    #[error("could not fetch {0}: {1}")]
    Fetch(String, String),
    #[error("{0} answered {1}")]
    Status(String, http::StatusCode),
    #[error("{0} did not answer within {1:?}")]
    Timeout(String, Duration),
    #[error("could not parse the metrics from {0}: {1}")]
    Parse(String, std::io::Error),
    #[error("{0} serves no mfa_ metrics: is it mfa-server's `metrics_listen` address?")]
    NotMfaServer(String),
}

/// Fetches the metrics at `url` (plain `http://`, like the endpoint) and
/// returns the table, ready to print.
pub async fn report(url: &str) -> Result<String, StatsError> {
    let text = fetch(url).await?;
    let stats = Stats::parse(&text).map_err(|e| StatsError::Parse(url.to_owned(), e))?;
    if stats.is_empty() {
        return Err(StatsError::NotMfaServer(url.to_owned()));
    }
    Ok(format!(
        "mfa-server stats from {url} (totals since the server started)\n\n{stats}"
    ))
}

/// Fetches the body of `url` with one HTTP/1.1 GET (a success status only).
pub async fn fetch(url: &str) -> Result<String, StatsError> {
    let bad_url = |why: &str| StatsError::Url(url.to_owned(), why.to_owned());
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| bad_url(&e.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad_url(
            "expected http://HOST:PORT/metrics (the endpoint is plain HTTP)",
        ));
    }
    let request = http::Request::get(uri)
        .header(http::header::ACCEPT, "text/plain;version=0.0.4")
        .body(Empty::<Bytes>::new())
        .map_err(|e| bad_url(&e.to_string()))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let fetch_error = |e: &dyn std::error::Error| StatsError::Fetch(url.to_owned(), with_causes(e));
    let exchange = async {
        let response = client.request(request).await.map_err(|e| fetch_error(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(StatsError::Status(url.to_owned(), status));
        }
        let body = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| fetch_error(&*e))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|e| fetch_error(&e))
    };
    tokio::time::timeout(FETCH_TIMEOUT, exchange)
        .await
        .map_err(|_| StatsError::Timeout(url.to_owned(), FETCH_TIMEOUT))?
}

/// Cumulative histogram buckets: (upper bound, observations at or below it),
/// sorted by bound, the last one `+Inf`.
pub type Buckets = Vec<(f64, f64)>;

/// Prometheus's `histogram_quantile(q, …)` over one set of cumulative buckets.
///
/// Finds the bucket that holds the rank `q × count` and interpolates linearly
/// between its lower and upper bound (the first bucket starts at 0). A rank in
/// the `+Inf` bucket gives the largest finite bound, as Prometheus does. `None`
/// when there are no observations or no `+Inf` bucket.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    estimate(q, buckets).map(Estimate::value)
}

/// A quantile estimate, telling whether it fell past the largest finite bound.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Estimate {
    Within(f64),
    /// The rank is in the `+Inf` bucket: the quantile is at least this bound.
    Above(f64),
}

impl Estimate {
    fn value(self) -> f64 {
        match self {
            Estimate::Within(v) | Estimate::Above(v) => v,
        }
    }
}

fn estimate(q: f64, buckets: &[(f64, f64)]) -> Option<Estimate> {
    if !(0.0..=1.0).contains(&q) || buckets.len() < 2 {
        return None;
    }
    let (last_bound, total) = *buckets.last()?;
    if last_bound != f64::INFINITY || total <= 0.0 {
        return None;
    }
    // Counts from a scrape taken while observations land can be out of order
    // by a little; Prometheus makes them monotonic the same way.
    let mut counts = Vec::with_capacity(buckets.len());
    let mut max = 0.0_f64;
    for &(_, count) in buckets {
        max = max.max(count);
        counts.push(max);
    }
    let mut rank = q * total;
    let b = counts[..counts.len() - 1]
        .iter()
        .position(|&count| count >= rank)
        .unwrap_or(counts.len() - 1);
    if b == buckets.len() - 1 {
        return Some(Estimate::Above(buckets[b - 1].0));
    }
    let end = buckets[b].0;
    if b == 0 && end <= 0.0 {
        return Some(Estimate::Within(end));
    }
    let (start, mut count) = if b == 0 {
        (0.0, counts[0])
    } else {
        rank -= counts[b - 1];
        (buckets[b - 1].0, counts[b] - counts[b - 1])
    };
    if count <= 0.0 {
        count = 1.0;
    }
    Some(Estimate::Within(start + (end - start) * (rank / count)))
}

/// What the table shows, taken from one scrape.
#[derive(Debug, Default)]
pub struct Stats {
    /// By (service, method): (requests, non-OK responses).
    requests: BTreeMap<Vec<String>, (f64, f64)>,
    grpc_latency: BTreeMap<Vec<String>, Buckets>,
    answer: BTreeMap<Vec<String>, Buckets>,
    push_accept: BTreeMap<Vec<String>, Buckets>,
    store: BTreeMap<Vec<String>, Buckets>,
    pending: Option<f64>,
    serving: Option<f64>,
}

impl Stats {
    /// Reads the Prometheus text format.
    pub fn parse(text: &str) -> std::io::Result<Stats> {
        let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))?;
        let mut stats = Stats::default();
        for sample in &scrape.samples {
            match sample.metric.as_str() {
                "mfa_grpc_requests_total" => {
                    let entry = stats
                        .requests
                        .entry(key(sample, &["service", "method"]))
                        .or_default();
                    let value = scalar(&sample.value);
                    entry.0 += value;
                    if sample.labels.get("code") != Some("OK") {
                        entry.1 += value;
                    }
                }
                "mfa_grpc_request_duration_seconds" => {
                    add_histogram(&mut stats.grpc_latency, sample, &["service", "method"])
                }
                "mfa_challenge_answer_seconds" => {
                    add_histogram(&mut stats.answer, sample, &["tenant", "outcome"])
                }
                "mfa_push_accept_seconds" => {
                    add_histogram(&mut stats.push_accept, sample, &["provider"])
                }
                "mfa_store_operation_seconds" => {
                    add_histogram(&mut stats.store, sample, &["operation"])
                }
                "mfa_challenges_pending" => {
                    *stats.pending.get_or_insert(0.0) += scalar(&sample.value)
                }
                "mfa_health_serving" => {
                    // Several series would mean several processes: any one
                    // not serving is what the operator needs to see.
                    let value = scalar(&sample.value);
                    stats.serving = Some(stats.serving.map_or(value, |v| v.min(value)));
                }
                _ => {}
            }
        }
        Ok(stats)
    }

    /// What happened between `earlier` and this scrape of the same server:
    /// counts and histogram buckets subtracted, gauges as they are now.
    pub fn since(&self, earlier: &Stats) -> Stats {
        fn minus(
            now: &BTreeMap<Vec<String>, Buckets>,
            then: &BTreeMap<Vec<String>, Buckets>,
        ) -> BTreeMap<Vec<String>, Buckets> {
            now.iter()
                .map(|(key, buckets)| {
                    let before = then.get(key);
                    let window = buckets
                        .iter()
                        .map(|&(bound, count)| {
                            let old = before
                                .and_then(|b| b.iter().find(|(b, _)| *b == bound))
                                .map_or(0.0, |&(_, c)| c);
                            (bound, count - old)
                        })
                        .collect();
                    (key.clone(), window)
                })
                .filter(|(_, buckets): &(_, Buckets)| observations(buckets) > 0.0)
                .collect()
        }
        Stats {
            requests: self
                .requests
                .iter()
                .map(|(key, &(n, failed))| {
                    let (n0, failed0) = earlier.requests.get(key).copied().unwrap_or_default();
                    (key.clone(), (n - n0, failed - failed0))
                })
                .filter(|(_, (n, _))| *n > 0.0)
                .collect(),
            grpc_latency: minus(&self.grpc_latency, &earlier.grpc_latency),
            answer: minus(&self.answer, &earlier.answer),
            push_accept: minus(&self.push_accept, &earlier.push_accept),
            store: minus(&self.store, &earlier.store),
            pending: self.pending,
            serving: self.serving,
        }
    }

    /// The `q` quantile of the server's handling time, in seconds, per gRPC
    /// method (`Service/Method`).
    pub fn call_quantiles(&self, q: f64) -> Vec<(String, f64)> {
        self.grpc_latency
            .iter()
            .filter_map(|(key, buckets)| {
                let name = format!("{}/{}", short_service(&key[0]), key[1]);
                histogram_quantile(q, buckets).map(|v| (name, v))
            })
            .collect()
    }

    /// True when the scrape held none of mfa-server's metrics.
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
            && self.grpc_latency.is_empty()
            && self.answer.is_empty()
            && self.push_accept.is_empty()
            && self.store.is_empty()
            && self.pending.is_none()
            && self.serving.is_none()
    }
}

fn key(sample: &Sample, labels: &[&str]) -> Vec<String> {
    labels
        .iter()
        .map(|name| sample.labels.get(name).unwrap_or("").to_owned())
        .collect()
}

fn scalar(value: &Value) -> f64 {
    match value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(_) | Value::Summary(_) => 0.0,
    }
}

/// Adds a histogram's buckets to the one kept for its key labels, summing
/// series that differ only in other labels (as `sum by (…)` does).
fn add_histogram(into: &mut BTreeMap<Vec<String>, Buckets>, sample: &Sample, labels: &[&str]) {
    let Value::Histogram(counts) = &sample.value else {
        return;
    };
    let buckets = into.entry(key(sample, labels)).or_default();
    for count in counts {
        match buckets
            .iter_mut()
            .find(|(bound, _)| *bound == count.less_than)
        {
            Some((_, total)) => *total += count.count,
            None => buckets.push((count.less_than, count.count)),
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
}

fn observations(buckets: &[(f64, f64)]) -> f64 {
    buckets.last().map_or(0.0, |&(_, count)| count)
}

/// A quantile for the table: `-` without observations, `>1s` past the
/// largest finite bucket.
fn quantile_cell(q: f64, buckets: &[(f64, f64)]) -> String {
    match estimate(q, buckets) {
        None => "-".to_owned(),
        Some(Estimate::Within(v)) => seconds(v),
        Some(Estimate::Above(v)) => format!(">{}", seconds(v)),
    }
}

/// `0.0042` → `4.2ms`, `12.5` → `12.5s`.
fn seconds(value: f64) -> String {
    if value < 0.001 {
        format!("{:.0}µs", value * 1e6)
    } else if value < 1.0 {
        let ms = value * 1e3;
        if ms < 10.0 {
            format!("{ms:.2}ms")
        } else {
            format!("{ms:.1}ms")
        }
    } else if value < 100.0 {
        format!("{value:.1}s")
    } else {
        format!("{value:.0}s")
    }
}

fn count(value: f64) -> String {
    format!("{value:.0}")
}

/// `mfa.v1.PortalService` → `PortalService`.
fn short_service(service: &str) -> &str {
    service.rsplit('.').next().unwrap_or(service)
}

/// A plain-text table: the first column left-aligned, the others right.
struct Table {
    title: &'static str,
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(title: &'static str, header: &[&'static str]) -> Self {
        Self {
            title,
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        if self.rows.is_empty() {
            return writeln!(f, "  (nothing recorded yet)");
        }
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.header.iter().map(|h| h.to_string()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            write!(f, " ")?;
            for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
                let pad = width - cell.chars().count();
                if i == 0 {
                    write!(f, " {cell}{}", " ".repeat(pad))?;
                } else {
                    write!(f, "  {}{cell}", " ".repeat(pad))?;
                }
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let no_buckets = Buckets::new();

        let mut grpc = Table::new(
            "gRPC requests (errors: any code but OK; latency to response headers)",
            &["method", "requests", "errors", "p50", "p90", "p99"],
        );
        for (labels, &(requests, errors)) in &self.requests {
            if requests <= 0.0 {
                continue;
            }
            let buckets = self.grpc_latency.get(labels).unwrap_or(&no_buckets);
            grpc.rows.push(vec![
                format!("{}/{}", short_service(&labels[0]), labels[1]),
                count(requests),
                count(errors),
                quantile_cell(0.5, buckets),
                quantile_cell(0.9, buckets),
                quantile_cell(0.99, buckets),
            ]);
        }

        let mut answer = Table::new(
            "Time from challenge creation to the person's answer",
            &["tenant / outcome", "answers", "p50", "p90", "p99"],
        );
        for (labels, buckets) in &self.answer {
            answer.rows.push(vec![
                format!("{} / {}", labels[0], labels[1]),
                count(observations(buckets)),
                quantile_cell(0.5, buckets),
                quantile_cell(0.9, buckets),
                quantile_cell(0.99, buckets),
            ]);
        }

        let mut push = Table::new(
            "Time from challenge creation to the push provider accepting it",
            &["provider", "pushes", "p50", "p99"],
        );
        for (labels, buckets) in &self.push_accept {
            push.rows.push(vec![
                labels[0].clone(),
                count(observations(buckets)),
                quantile_cell(0.5, buckets),
                quantile_cell(0.99, buckets),
            ]);
        }

        let mut store = Table::new("Store operations", &["operation", "calls", "p99"]);
        for (labels, buckets) in &self.store {
            store.rows.push(vec![
                labels[0].clone(),
                count(observations(buckets)),
                quantile_cell(0.99, buckets),
            ]);
        }

        write!(f, "{grpc}\n{answer}\n{push}\n{store}\n")?;
        match self.pending {
            Some(pending) => writeln!(f, "Pending challenges: {}", count(pending))?,
            None => writeln!(f, "Pending challenges: unknown")?,
        }
        let health = match self.serving {
            Some(v) if v >= 1.0 => "SERVING",
            Some(_) => "NOT_SERVING",
            None => "unknown",
        };
        writeln!(f, "Health: {health}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scrape as the server renders it: two methods with traffic, one of
    /// them with errors, and every summarised histogram.
    const SAMPLE: &str = r#"# HELP mfa_grpc_requests_total gRPC requests by service, method and status code
# TYPE mfa_grpc_requests_total counter
mfa_grpc_requests_total{service="mfa.v1.PortalService",method="CreateChallenge",code="OK"} 95
mfa_grpc_requests_total{service="mfa.v1.PortalService",method="CreateChallenge",code="ResourceExhausted"} 5
mfa_grpc_requests_total{service="mfa.v1.DeviceService",method="RespondToChallenge",code="OK"} 40
mfa_grpc_requests_total{service="mfa.v1.AdminService",method="ListDevices",code="OK"} 0

# HELP mfa_grpc_request_duration_seconds gRPC request latency (to response headers)
# TYPE mfa_grpc_request_duration_seconds histogram
mfa_grpc_request_duration_seconds_bucket{service="mfa.v1.PortalService",method="CreateChallenge",le="0.001"} 10
mfa_grpc_request_duration_seconds_bucket{service="mfa.v1.PortalService",method="CreateChallenge",le="0.0025"} 50
mfa_grpc_request_duration_seconds_bucket{service="mfa.v1.PortalService",method="CreateChallenge",le="0.005"} 90
mfa_grpc_request_duration_seconds_bucket{service="mfa.v1.PortalService",method="CreateChallenge",le="0.01"} 100
mfa_grpc_request_duration_seconds_bucket{service="mfa.v1.PortalService",method="CreateChallenge",le="1"} 100
mfa_grpc_request_duration_seconds_bucket{service="mfa.v1.PortalService",method="CreateChallenge",le="+Inf"} 100
mfa_grpc_request_duration_seconds_sum{service="mfa.v1.PortalService",method="CreateChallenge"} 0.31
mfa_grpc_request_duration_seconds_count{service="mfa.v1.PortalService",method="CreateChallenge"} 100
mfa_grpc_request_duration_seconds_bucket{service="mfa.v1.DeviceService",method="RespondToChallenge",le="0.001"} 0
mfa_grpc_request_duration_seconds_bucket{service="mfa.v1.DeviceService",method="RespondToChallenge",le="0.0025"} 0
mfa_grpc_request_duration_seconds_bucket{service="mfa.v1.DeviceService",method="RespondToChallenge",le="0.005"} 20
mfa_grpc_request_duration_seconds_bucket{service="mfa.v1.DeviceService",method="RespondToChallenge",le="0.01"} 30
mfa_grpc_request_duration_seconds_bucket{service="mfa.v1.DeviceService",method="RespondToChallenge",le="1"} 38
mfa_grpc_request_duration_seconds_bucket{service="mfa.v1.DeviceService",method="RespondToChallenge",le="+Inf"} 40
mfa_grpc_request_duration_seconds_sum{service="mfa.v1.DeviceService",method="RespondToChallenge"} 4.2
mfa_grpc_request_duration_seconds_count{service="mfa.v1.DeviceService",method="RespondToChallenge"} 40

# HELP mfa_challenge_answer_seconds Time from challenge creation to the person's answer
# TYPE mfa_challenge_answer_seconds histogram
mfa_challenge_answer_seconds_bucket{tenant="7c0e2b1a-5d8e-4c55-9a53-0f6f1c2d3e4f",outcome="approved",le="2"} 0
mfa_challenge_answer_seconds_bucket{tenant="7c0e2b1a-5d8e-4c55-9a53-0f6f1c2d3e4f",outcome="approved",le="5"} 10
mfa_challenge_answer_seconds_bucket{tenant="7c0e2b1a-5d8e-4c55-9a53-0f6f1c2d3e4f",outcome="approved",le="10"} 30
mfa_challenge_answer_seconds_bucket{tenant="7c0e2b1a-5d8e-4c55-9a53-0f6f1c2d3e4f",outcome="approved",le="30"} 38
mfa_challenge_answer_seconds_bucket{tenant="7c0e2b1a-5d8e-4c55-9a53-0f6f1c2d3e4f",outcome="approved",le="120"} 40
mfa_challenge_answer_seconds_bucket{tenant="7c0e2b1a-5d8e-4c55-9a53-0f6f1c2d3e4f",outcome="approved",le="+Inf"} 40
mfa_challenge_answer_seconds_sum{tenant="7c0e2b1a-5d8e-4c55-9a53-0f6f1c2d3e4f",outcome="approved"} 420
mfa_challenge_answer_seconds_count{tenant="7c0e2b1a-5d8e-4c55-9a53-0f6f1c2d3e4f",outcome="approved"} 40

# HELP mfa_push_accept_seconds Time from challenge creation to the push provider accepting the notification
# TYPE mfa_push_accept_seconds histogram
mfa_push_accept_seconds_bucket{provider="none",le="0.005"} 30
mfa_push_accept_seconds_bucket{provider="none",le="0.01"} 40
mfa_push_accept_seconds_bucket{provider="none",le="+Inf"} 40
mfa_push_accept_seconds_sum{provider="none"} 0.1
mfa_push_accept_seconds_count{provider="none"} 40

# HELP mfa_store_operation_seconds Store operation latency
# TYPE mfa_store_operation_seconds histogram
mfa_store_operation_seconds_bucket{operation="end_challenge",le="0.0005"} 50
mfa_store_operation_seconds_bucket{operation="end_challenge",le="0.001"} 90
mfa_store_operation_seconds_bucket{operation="end_challenge",le="0.0025"} 100
mfa_store_operation_seconds_bucket{operation="end_challenge",le="+Inf"} 100
mfa_store_operation_seconds_sum{operation="end_challenge"} 0.06
mfa_store_operation_seconds_count{operation="end_challenge"} 100

# HELP mfa_challenges_pending Challenges waiting for an answer
# TYPE mfa_challenges_pending gauge
mfa_challenges_pending 3
# HELP mfa_health_serving 1 while the service is serving, 0 otherwise
# TYPE mfa_health_serving gauge
mfa_health_serving 1
"#;

    #[test]
    fn since_keeps_only_what_happened_between_two_scrapes() {
        let earlier = Stats::parse(SAMPLE).unwrap();
        // Ten more CreateChallenge calls, all in the 2.5–5 ms bucket.
        let later_text = SAMPLE
            .replace("code=\"OK\"} 95", "code=\"OK\"} 105")
            .replace("le=\"0.005\"} 90", "le=\"0.005\"} 100")
            .replace(
                "CreateChallenge\",le=\"0.01\"} 100",
                "CreateChallenge\",le=\"0.01\"} 110",
            )
            .replace(
                "CreateChallenge\",le=\"1\"} 100",
                "CreateChallenge\",le=\"1\"} 110",
            )
            .replace(
                "CreateChallenge\",le=\"+Inf\"} 100",
                "CreateChallenge\",le=\"+Inf\"} 110",
            );
        let window = Stats::parse(&later_text).unwrap().since(&earlier);
        assert_eq!(window.requests.len(), 1, "{:?}", window.requests);
        let calls = window.call_quantiles(0.99);
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].0, "PortalService/CreateChallenge");
        assert!((0.0025..=0.005).contains(&calls[0].1), "{calls:?}");
        assert!(window.store.is_empty());
        assert_eq!(window.pending, Some(3.0));
    }

    fn close(actual: Option<f64>, expected: f64) -> bool {
        actual.is_some_and(|a| (a - expected).abs() < 1e-9)
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_like_prometheus() {
        let buckets = vec![
            (0.001, 10.0),
            (0.0025, 50.0),
            (0.005, 90.0),
            (0.01, 100.0),
            (f64::INFINITY, 100.0),
        ];
        // Rank 50 is the top of the (0.001, 0.0025] bucket.
        assert!(close(histogram_quantile(0.5, &buckets), 0.0025));
        // Rank 90 is the top of the (0.0025, 0.005] bucket.
        assert!(close(histogram_quantile(0.9, &buckets), 0.005));
        // Rank 99: 9 of the 10 observations in (0.005, 0.01].
        assert!(close(histogram_quantile(0.99, &buckets), 0.0095));
        // Rank 5: half way through the first bucket, which starts at 0.
        assert!(close(histogram_quantile(0.05, &buckets), 0.0005));
        // Rank 30: half way through (0.001, 0.0025].
        assert!(close(histogram_quantile(0.3, &buckets), 0.00175));
    }

    #[test]
    fn a_rank_in_the_inf_bucket_gives_the_largest_finite_bound() {
        let buckets = vec![(0.5, 1.0), (1.0, 2.0), (f64::INFINITY, 10.0)];
        assert_eq!(histogram_quantile(0.99, &buckets), Some(1.0));
        assert_eq!(quantile_cell(0.99, &buckets), ">1.0s");
    }

    #[test]
    fn no_observations_or_no_inf_bucket_gives_nothing() {
        assert_eq!(
            histogram_quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]),
            None
        );
        assert_eq!(histogram_quantile(0.5, &[(1.0, 3.0), (2.0, 4.0)]), None);
        assert_eq!(quantile_cell(0.5, &[]), "-");
    }

    #[test]
    fn parses_a_scrape_and_estimates_from_its_buckets() {
        let stats = Stats::parse(SAMPLE).unwrap();
        let create = vec![
            "mfa.v1.PortalService".to_owned(),
            "CreateChallenge".to_owned(),
        ];
        assert_eq!(stats.requests[&create], (100.0, 5.0));
        let latency = &stats.grpc_latency[&create];
        assert!(close(histogram_quantile(0.5, latency), 0.0025));
        assert!(close(histogram_quantile(0.99, latency), 0.0095));

        let respond = vec![
            "mfa.v1.DeviceService".to_owned(),
            "RespondToChallenge".to_owned(),
        ];
        // Rank 20 of 40 is the top of (0.0025, 0.005], rank 36 is 6/8 of the
        // way through (0.01, 1], and rank 39.6 is in +Inf.
        let latency = &stats.grpc_latency[&respond];
        assert!(close(histogram_quantile(0.5, latency), 0.005));
        assert!(close(histogram_quantile(0.9, latency), 0.01 + 0.99 * 0.75));
        assert_eq!(estimate(0.99, latency), Some(Estimate::Above(1.0)));

        let answer = stats.answer.values().next().unwrap();
        // Rank 20 of 40: 10 of the 20 answers in (5, 10] → 7.5 s.
        assert!(close(histogram_quantile(0.5, answer), 7.5));
        let store = &stats.store[&vec!["end_challenge".to_owned()]];
        assert!(close(histogram_quantile(0.5, store), 0.0005));
        assert_eq!(stats.pending, Some(3.0));
        assert_eq!(stats.serving, Some(1.0));
    }

    #[test]
    fn the_table_lists_methods_with_traffic() {
        let table = Stats::parse(SAMPLE).unwrap().to_string();
        assert!(table.contains("PortalService/CreateChallenge"), "{table}");
        assert!(
            table.contains("DeviceService/RespondToChallenge"),
            "{table}"
        );
        assert!(!table.contains("ListDevices"), "{table}");
        let create = table
            .lines()
            .find(|line| line.contains("CreateChallenge"))
            .unwrap();
        let cells: Vec<&str> = create.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "PortalService/CreateChallenge",
                "100",
                "5",
                "2.50ms",
                "5.00ms",
                "9.50ms"
            ]
        );
        assert!(
            table.contains("7c0e2b1a-5d8e-4c55-9a53-0f6f1c2d3e4f / approved"),
            "{table}"
        );
        assert!(table.contains("Pending challenges: 3"), "{table}");
        assert!(table.contains("Health: SERVING"), "{table}");
    }

    #[test]
    fn series_that_differ_in_other_labels_are_summed() {
        let text = "# TYPE mfa_store_operation_seconds histogram\n\
            mfa_store_operation_seconds_bucket{operation=\"get\",instance=\"a\",le=\"1\"} 1\n\
            mfa_store_operation_seconds_bucket{operation=\"get\",instance=\"a\",le=\"+Inf\"} 1\n\
            mfa_store_operation_seconds_bucket{operation=\"get\",instance=\"b\",le=\"1\"} 3\n\
            mfa_store_operation_seconds_bucket{operation=\"get\",instance=\"b\",le=\"+Inf\"} 3\n";
        let stats = Stats::parse(text).unwrap();
        assert_eq!(
            stats.store[&vec!["get".to_owned()]],
            vec![(1.0, 4.0), (f64::INFINITY, 4.0)]
        );
    }

    #[test]
    fn a_page_without_mfa_metrics_is_empty() {
        let stats = Stats::parse("# TYPE up gauge\nup 1\n").unwrap();
        assert!(stats.is_empty());
    }

    #[tokio::test]
    async fn refuses_urls_it_cannot_fetch() {
        assert!(matches!(
            report("https://127.0.0.1:9464/metrics").await,
            Err(StatsError::Url(..))
        ));
        assert!(matches!(
            report("not a url").await,
            Err(StatsError::Url(..))
        ));
    }
}
