//! Prometheus text exposition of the metric families the README lists, through prometheus-client's encoder.
//!
//! A scrape copies the atomics into an owned [`Scrape`] (the only lock taken is
//! the registry's version list), registers it as a [`Collector`] and encodes it.
//!
//! The output is the Prometheus text format 0.0.4 (what `promtool check
//! metrics` and every scraper accept): counter families are declared under
//! their full `_total` name, and there is no OpenMetrics `# EOF`. That is why
//! counters are encoded by [`Total`] rather than prometheus-client's counter,
//! which would declare `http_requests` and emit `http_requests_total` samples,
//! a pairing the 0.0.4 parser reads as an untyped family.
use super::histogram::{HistogramCounts, BOUNDS_SECS, BUCKETS, FINITE_BUCKETS};
use super::Registry as Versions;
use super::VersionStats;
use crate::{Phase, Role};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering::Relaxed;

/// `Content-Type` of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// An endpoint's health as exported: `(role, endpoint label, healthy)`.
pub type EndpointHealth = (Role, String, bool);

/// Encodes every exported family (`http_requests_total`, `http_request_duration_seconds`,
/// `canary_weight`, `canary_phase`, `canary_aborts_total`, `upstream_endpoint_healthy`):
/// per-version figures and the controller's gauges from `versions`, endpoint
/// health from the caller.
pub fn encode(versions: &Versions, endpoints: Vec<EndpointHealth>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape::read(versions, endpoints)));
    let mut out = String::with_capacity(64 * 1024);
    // Writing into a String cannot fail; an error here would be a bug in an
    // encoder, and a partial body is still better than a panic on scrape.
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
    out
}

/// A consistent-enough copy of everything exported, owned so it can be a `Collector`.
#[derive(Debug)]
pub struct Scrape {
    versions: Vec<VersionScrape>,
    weight_percent: f64,
    phase: usize,
    aborts: u64,
    endpoints: Vec<EndpointHealth>,
}

#[derive(Debug)]
struct VersionScrape {
    role: Role,
    version: String,
    /// `(method, status, count)`.
    statuses: Vec<(&'static str, u16, u64)>,
    latency: HistogramCounts,
}

impl Scrape {
    pub fn read(versions: &Versions, mut endpoints: Vec<EndpointHealth>) -> Scrape {
        // A listed-twice endpoint must not become a duplicate series.
        let mut seen = std::collections::HashSet::new();
        endpoints.retain(|(r, l, _)| seen.insert((*r, l.clone())));
        let g = &versions.gauges;
        Scrape {
            versions: versions
                .all()
                .iter()
                .map(|s| VersionScrape::read(s))
                .collect(),
            weight_percent: g.weight_bp.load(Relaxed) as f64 / 100.0,
            phase: g.phase.load(Relaxed) as usize,
            aborts: g.aborts.load(Relaxed),
            endpoints,
        }
    }
}

impl VersionScrape {
    fn read(s: &VersionStats) -> Self {
        VersionScrape {
            role: s.role,
            version: s.version.to_string(),
            statuses: s.status_counts(),
            latency: s.all_latency(),
        }
    }
}

/// A counter value declared under its full `_total` name (see the module doc).
struct Total(u64);

impl EncodeMetric for Total {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// Our own atomic buckets, exported as a classic histogram with `le` in seconds.
struct Latency<'a>(&'a HistogramCounts);

impl EncodeMetric for Latency<'_> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = Vec::with_capacity(BUCKETS);
        for (i, &count) in self.0.buckets.iter().enumerate() {
            let le = if i < FINITE_BUCKETS {
                BOUNDS_SECS[i]
            } else {
                f64::INFINITY
            };
            buckets.push((le, count));
        }
        let sum = self.0.sum_ns as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, self.0.count(), &buckets, None)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// A gauge value.
struct Gauge(f64);

impl EncodeMetric for Gauge {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0)
    }
    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    series: impl IntoIterator<Item = (Vec<(&'static str, String)>, M)>,
    metric_type: MetricType,
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, value) in series {
        value.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A family of one unlabelled series (no `{}` after the name).
fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: M,
) -> Result<(), std::fmt::Error> {
    let metric_type = value.metric_type();
    value.encode(encoder.encode_descriptor(name, help, None, metric_type)?)
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let vlabels = |v: &VersionScrape| {
            vec![
                ("role", v.role.as_str().to_string()),
                ("version", v.version.clone()),
            ]
        };
        family(
            &mut encoder,
            "http_requests_total",
            "Proxied requests by version, method and the status the client saw.",
            self.versions.iter().flat_map(|v| {
                v.statuses.iter().map(move |&(method, status, n)| {
                    let mut l = vlabels(v);
                    l.push(("method", method.to_string()));
                    l.push(("status", status.to_string()));
                    (l, Total(n))
                })
            }),
            MetricType::Counter,
        )?;
        family(
            &mut encoder,
            "http_request_duration_seconds",
            "Time from request arrival to the end of the response body.",
            self.versions
                .iter()
                .map(|v| (vlabels(v), Latency(&v.latency))),
            MetricType::Histogram,
        )?;
        single(
            &mut encoder,
            "canary_weight",
            "Percent of weighted traffic routed to the canary.",
            Gauge(self.weight_percent),
        )?;
        family(
            &mut encoder,
            "canary_phase",
            "Rollout phase: 1 for the current one.",
            Phase::ALL.iter().enumerate().map(|(i, p)| {
                let on = if i == self.phase { 1.0 } else { 0.0 };
                (vec![("phase", p.as_str().to_string())], Gauge(on))
            }),
            MetricType::Gauge,
        )?;
        single(
            &mut encoder,
            "canary_aborts_total",
            "Canary aborts (weight dropped to 0) since start.",
            Total(self.aborts),
        )?;
        family(
            &mut encoder,
            "upstream_endpoint_healthy",
            "1 while the endpoint passes its health checks.",
            self.endpoints.iter().map(|(role, label, healthy)| {
                let l = vec![
                    ("role", role.as_str().to_string()),
                    ("endpoint", label.clone()),
                ];
                (l, Gauge(if *healthy { 1.0 } else { 0.0 }))
            }),
            MetricType::Gauge,
        )
    }
}
