//! Prometheus metrics. Every label set is known in advance, so each family is an array of
//! atomics indexed by its label set: recording is lock-free and allocation-free, one relaxed
//! atomic add per counter. Each family renders itself in the text exposition format, so adding
//! one is a field, a `LabelSet` and a line in [`Metrics::render`].

use std::fmt::Write as _;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hyper::StatusCode;

use crate::admission::Decision;
use crate::harden::Control;
use crate::namespaces::LookupSource;
use crate::pss::CheckId;

use super::tls::ReloadOutcome;

/// The admission endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/mutate`
    Mutate,
    /// `/validate`
    Validate,
}

impl Endpoint {
    const ALL: [Endpoint; 2] = [Endpoint::Mutate, Endpoint::Validate];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Mutate => "mutate",
            Endpoint::Validate => "validate",
        }
    }
}

/// What a certificate reload that changed something did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReloadResult {
    Success,
    Failure,
}

impl ReloadResult {
    const ALL: [ReloadResult; 2] = [ReloadResult::Success, ReloadResult::Failure];

    fn as_str(self) -> &'static str {
        match self {
            ReloadResult::Success => "success",
            ReloadResult::Failure => "failure",
        }
    }
}

/// The HTTP statuses counted as transport errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ErrorStatus(u16);

impl ErrorStatus {
    const ALL: [ErrorStatus; 7] = [
        ErrorStatus(400),
        ErrorStatus(404),
        ErrorStatus(405),
        ErrorStatus(408),
        ErrorStatus(413),
        ErrorStatus(415),
        ErrorStatus(503),
    ];
}

/// The labels of one series of a family, and every one of them, known in advance.
trait LabelSet: Copy + PartialEq + Sized + 'static {
    /// Every label set of the family, in exposition order (for rendering: it allocates).
    fn all() -> Vec<Self>;
    /// How many there are.
    fn count() -> usize;
    /// Its position in [`LabelSet::all`]; `None` for a value the family does not count.
    fn index(self) -> Option<usize>;
    /// Writes `name="value"` pairs, comma-separated.
    fn write(self, out: &mut String);
}

/// Implements [`LabelSet`] for a type with one label, from its `ALL` array and its value.
macro_rules! one_label {
    ($type:ty, $key:literal, |$v:ident| $value:expr) => {
        impl LabelSet for $type {
            fn all() -> Vec<Self> {
                <$type>::ALL.to_vec()
            }

            fn count() -> usize {
                <$type>::ALL.len()
            }

            fn index(self) -> Option<usize> {
                <$type>::ALL.iter().position(|x| *x == self)
            }

            fn write(self, out: &mut String) {
                let $v = self;
                let _ = write!(out, concat!($key, "=\"{}\""), $value);
            }
        }
    };
}

one_label!(Endpoint, "endpoint", |v| v.as_str());
one_label!(Decision, "decision", |v| v.as_str());
one_label!(Control, "control", |v| v.as_str());
one_label!(CheckId, "check", |v| v.as_str());
one_label!(LookupSource, "source", |v| v.as_str());
one_label!(ReloadResult, "result", |v| v.as_str());
one_label!(ErrorStatus, "status", |v| v.0);

/// Two labels: every pair, the first label varying slowest.
impl<A: LabelSet, B: LabelSet> LabelSet for (A, B) {
    fn all() -> Vec<Self> {
        let second = B::all();
        A::all()
            .into_iter()
            .flat_map(|a| second.iter().map(move |b| (a, *b)))
            .collect()
    }

    fn count() -> usize {
        A::count() * B::count()
    }

    fn index(self) -> Option<usize> {
        Some(self.0.index()? * B::count() + self.1.index()?)
    }

    fn write(self, out: &mut String) {
        self.0.write(out);
        out.push(',');
        self.1.write(out);
    }
}

/// The `# HELP` and `# TYPE` lines of a family.
fn write_header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Writes one series, `name{labels} value`.
fn write_series<L: LabelSet>(
    out: &mut String,
    name: &str,
    labels: L,
    value: impl std::fmt::Display,
) {
    let _ = write!(out, "{name}{{");
    labels.write(out);
    let _ = writeln!(out, "}} {value}");
}

/// A gauge without labels, rendered with its header.
pub fn write_gauge(out: &mut String, name: &str, help: &str, value: u64) {
    write_header(out, name, "gauge", help);
    let _ = writeln!(out, "{name} {value}");
}

/// The image lookups' counters and cache size.
pub fn write_image_lookups(out: &mut String, lookups: &crate::registry::ImageLookups) {
    let c = lookups.counters();
    let load = |n: &AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    let name = "pod_hardener_image_lookups_total";
    write_header(
        out,
        name,
        "counter",
        "Image lookups by result: found (config read), failed (reason sent as a warning), budget_exceeded (a review stopped waiting), busy (not started: images.maxConcurrentLookups in flight).",
    );
    for (result, value) in [
        ("found", load(&c.found)),
        ("failed", load(&c.failed)),
        ("budget_exceeded", load(&c.budget_exceeded)),
        ("busy", load(&c.rejected_busy)),
    ] {
        let _ = writeln!(out, "{name}{{result=\"{result}\"}} {value}");
    }
    let name = "pod_hardener_image_cache_requests_total";
    write_header(
        out,
        name,
        "counter",
        "Images a review asked for, by whether the cache answered.",
    );
    for (outcome, value) in [
        ("hit", load(&c.cache_hits)),
        ("miss", load(&c.cache_misses)),
    ] {
        let _ = writeln!(out, "{name}{{outcome=\"{outcome}\"}} {value}");
    }
    write_gauge(
        out,
        "pod_hardener_image_cache_entries",
        "Images whose lookup is cached, out of images.maxCachedImages.",
        u64::try_from(lookups.cached()).unwrap_or(u64::MAX),
    );
}

/// One counter per label set of `L`.
#[derive(Debug)]
struct Counters<L> {
    counts: Box<[AtomicU64]>,
    labels: PhantomData<L>,
}

impl<L: LabelSet> Default for Counters<L> {
    fn default() -> Self {
        Counters {
            counts: (0..L::count()).map(|_| AtomicU64::new(0)).collect(),
            labels: PhantomData,
        }
    }
}

impl<L: LabelSet> Counters<L> {
    fn inc(&self, labels: L) {
        if let Some(count) = labels.index().and_then(|i| self.counts.get(i)) {
            count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        write_header(out, name, "counter", help);
        for (labels, count) in L::all().into_iter().zip(self.counts.iter()) {
            write_series(out, name, labels, count.load(Ordering::Relaxed));
        }
    }
}

/// Latency histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// One histogram per label set of `L`.
#[derive(Debug)]
struct Histograms<L> {
    histograms: Box<[Histogram]>,
    labels: PhantomData<L>,
}

impl<L: LabelSet> Default for Histograms<L> {
    fn default() -> Self {
        Histograms {
            histograms: (0..L::count()).map(|_| Histogram::default()).collect(),
            labels: PhantomData,
        }
    }
}

impl<L: LabelSet> Histograms<L> {
    fn observe(&self, labels: L, d: Duration) {
        if let Some(h) = labels.index().and_then(|i| self.histograms.get(i)) {
            h.observe(d);
        }
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        write_header(out, name, "histogram", help);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (labels, h) in L::all().into_iter().zip(self.histograms.iter()) {
            let mut prefix = String::new();
            labels.write(&mut prefix);
            for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{prefix},le=\"{bound}\"}} {}",
                    get(bucket)
                );
            }
            let count = get(&h.count);
            let _ = writeln!(out, "{name}_bucket{{{prefix},le=\"+Inf\"}} {count}");
            let sum = get(&h.sum_micros) as f64 / 1e6;
            let _ = writeln!(out, "{name}_sum{{{prefix}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{prefix}}} {count}");
        }
    }
}

/// All metrics of the server.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Counters<(Endpoint, Decision)>,
    latency: Histograms<Endpoint>,
    changes: Counters<Control>,
    violations: Counters<CheckId>,
    reloads: Counters<ReloadResult>,
    lookups: Counters<LookupSource>,
    http_errors: Counters<ErrorStatus>,
    open_connections: AtomicU64,
}

impl Metrics {
    /// Records a decided admission request.
    pub fn record_admission(
        &self,
        endpoint: Endpoint,
        decision: Decision,
        changes: &[Control],
        violations: &[CheckId],
        took: Duration,
    ) {
        self.requests.inc((endpoint, decision));
        self.latency.observe(endpoint, took);
        for c in changes {
            self.changes.inc(*c);
        }
        for v in violations {
            self.violations.inc(*v);
        }
    }

    /// Records a certificate reload attempt that changed or failed.
    pub fn record_reload(&self, outcome: ReloadOutcome) {
        match outcome {
            ReloadOutcome::Unchanged => {}
            ReloadOutcome::Reloaded => self.reloads.inc(ReloadResult::Success),
            ReloadOutcome::Failed => self.reloads.inc(ReloadResult::Failure),
        }
    }

    /// Records where a namespace policy came from.
    pub fn record_lookup(&self, source: LookupSource) {
        self.lookups.inc(source);
    }

    /// Records a transport error answered with `status` (statuses not counted are ignored).
    pub fn record_http_error(&self, status: StatusCode) {
        self.http_errors.inc(ErrorStatus(status.as_u16()));
    }

    /// Counts a connection opened.
    pub fn connection_opened(&self) {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection closed.
    pub fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        self.requests.render(
            &mut out,
            "pod_hardener_admission_requests_total",
            "Admission requests by endpoint and decision.",
        );
        self.latency.render(
            &mut out,
            "pod_hardener_admission_duration_seconds",
            "Time to decide an admission request, body read included.",
        );
        self.changes.render(
            &mut out,
            "pod_hardener_changes_total",
            "Pods changed (or, in shadow mode, that would be) by each hardening control.",
        );
        self.violations.render(
            &mut out,
            "pod_hardener_violations_total",
            "Pods denied at the enforce level, by failed check.",
        );
        self.reloads.render(
            &mut out,
            "pod_hardener_certificate_reloads_total",
            "Serving certificate reloads by result.",
        );
        self.lookups.render(
            &mut out,
            "pod_hardener_namespace_lookups_total",
            "Namespace policy lookups by source; fallback means the default policy was used because the namespace could not be read.",
        );
        self.http_errors.render(
            &mut out,
            "pod_hardener_http_errors_total",
            "Requests answered with an HTTP error status.",
        );
        write_gauge(
            &mut out,
            "pod_hardener_open_connections",
            "Open client connections.",
            self.open_connections.load(Ordering::Relaxed),
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_family_renders_every_label_set_with_its_count() {
        let m = Metrics::default();
        m.record_admission(
            Endpoint::Validate,
            Decision::ALL[1],
            &[Control::ALL[0]],
            &[CheckId::ALL[2]],
            Duration::from_millis(3),
        );
        m.record_http_error(StatusCode::SERVICE_UNAVAILABLE);
        m.record_http_error(StatusCode::IM_A_TEAPOT);
        m.record_reload(ReloadOutcome::Failed);
        m.connection_opened();
        let text = m.render();
        let validate = format!(
            "pod_hardener_admission_requests_total{{endpoint=\"validate\",decision=\"{}\"}} 1",
            Decision::ALL[1].as_str()
        );
        for line in [
            validate.as_str(),
            "pod_hardener_admission_duration_seconds_bucket{endpoint=\"validate\",le=\"0.0025\"} 0",
            "pod_hardener_admission_duration_seconds_bucket{endpoint=\"validate\",le=\"0.005\"} 1",
            "pod_hardener_admission_duration_seconds_count{endpoint=\"validate\"} 1",
            "pod_hardener_admission_duration_seconds_sum{endpoint=\"validate\"} 0.003",
            "pod_hardener_admission_duration_seconds_count{endpoint=\"mutate\"} 0",
            "pod_hardener_http_errors_total{status=\"503\"} 1",
            "pod_hardener_certificate_reloads_total{result=\"failure\"} 1",
            "pod_hardener_certificate_reloads_total{result=\"success\"} 0",
            "pod_hardener_open_connections 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        let series = |prefix: &str| {
            text.lines()
                .filter(|l| l.starts_with(prefix) && !l.starts_with('#'))
                .count()
        };
        assert_eq!(
            series("pod_hardener_admission_requests_total{"),
            Endpoint::ALL.len() * Decision::ALL.len()
        );
        assert_eq!(series("pod_hardener_changes_total{"), Control::ALL.len());
        assert_eq!(series("pod_hardener_violations_total{"), CheckId::ALL.len());
        assert_eq!(
            series("pod_hardener_http_errors_total{"),
            ErrorStatus::ALL.len(),
            "a status not counted (418) adds no series"
        );
        assert_eq!(text.matches("# TYPE ").count(), 8);
    }
}
