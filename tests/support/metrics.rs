//! Reading what the library records: a Prometheus recorder installed once per test process,
//! and an exposition read whole by a Prometheus text-format parser. A test names its runtime
//! (`Runtime::named`) so its figures are its own whatever else the process records.

use std::collections::HashMap;

/// The Prometheus recorder of this test process, installed once.
pub fn recorder() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .install_recorder()
            .expect("the recorder installs")
    })
}

/// A Prometheus exposition, parsed.
pub struct Scrape {
    pub scrape: prometheus_parse::Scrape,
    pub body: String,
}

impl Scrape {
    /// `body`, a Prometheus text exposition, read whole by a text-format parser.
    pub fn parse(body: String) -> Scrape {
        let scrape = prometheus_parse::Scrape::parse(body.lines().map(|line| Ok(line.to_string())))
            .expect("the exposition parses");
        Scrape { scrape, body }
    }

    /// The value of the one sample named `metric` with exactly these `labels` (0 when there
    /// is none: a counter never incremented may be left out).
    pub fn value(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: HashMap<&str, &str> = labels.iter().copied().collect();
        let matching: Vec<_> = self
            .scrape
            .samples
            .iter()
            .filter(|sample| sample.metric == metric)
            .filter(|sample| {
                let mut names: Vec<_> = sample.labels.keys().map(String::as_str).collect();
                names.sort_unstable();
                let mut want: Vec<_> = wanted.keys().copied().collect();
                want.sort_unstable();
                names == want
                    && wanted
                        .iter()
                        .all(|(name, value)| sample.labels.get(name) == Some(*value))
            })
            .collect();
        assert!(
            matching.len() <= 1,
            "{metric}{labels:?} names several samples"
        );
        match matching.first().map(|sample| &sample.value) {
            None => 0.0,
            Some(
                prometheus_parse::Value::Counter(value)
                | prometheus_parse::Value::Gauge(value)
                | prometheus_parse::Value::Untyped(value),
            ) => *value,
            Some(other) => panic!("{metric} is {other:?}"),
        }
    }
}
