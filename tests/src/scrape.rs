//! Reading the server's `/metrics` with a Prometheus text-format parser.

use crate::TestServer;
use prometheus_parse::{Scrape, Value};

/// Scrapes the server's `/metrics`, failing on anything the parser rejects.
pub async fn scrape(server: &TestServer) -> Scrape {
    let url = format!("http://{}/metrics", server.metrics_addr());
    let text = mfa_server::stats::fetch(&url)
        .await
        .expect("metrics endpoint answers");
    Scrape::parse(text.lines().map(|line| Ok(line.to_owned()))).expect("valid text format")
}

/// The value of `metric` over samples that carry all of `labels`, summed;
/// histogram counts are read from the `_count` series.
pub fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            ref other => panic!("{metric} is not a scalar: {other:?}"),
        })
        .sum()
}
