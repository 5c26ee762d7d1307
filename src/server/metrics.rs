//! Prometheus metrics, kept in fixed arrays of atomics (every label set is known in advance, so
//! recording is lock-free and allocation-free) and rendered in the text exposition format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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

/// HTTP statuses counted as transport errors.
const ERROR_STATUSES: [u16; 7] = [400, 404, 405, 408, 413, 415, 503];

/// All metrics of the server.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [[AtomicU64; Decision::ALL.len()]; 2],
    latency: [Histogram; 2],
    changes: [AtomicU64; Control::ALL.len()],
    violations: [AtomicU64; CheckId::ALL.len()],
    reloads: [AtomicU64; 2],
    lookups: [AtomicU64; LookupSource::ALL.len()],
    http_errors: [AtomicU64; ERROR_STATUSES.len()],
    open_connections: AtomicU64,
}

fn index_of<T: PartialEq>(all: &[T], x: &T) -> usize {
    all.iter().position(|y| y == x).unwrap_or(0)
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
        let e = index_of(&Endpoint::ALL, &endpoint);
        self.requests[e][index_of(&Decision::ALL, &decision)].fetch_add(1, Ordering::Relaxed);
        self.latency[e].observe(took);
        for c in changes {
            self.changes[index_of(&Control::ALL, c)].fetch_add(1, Ordering::Relaxed);
        }
        for v in violations {
            self.violations[index_of(&CheckId::ALL, v)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records a certificate reload attempt that changed or failed.
    pub fn record_reload(&self, outcome: ReloadOutcome) {
        match outcome {
            ReloadOutcome::Unchanged => {}
            ReloadOutcome::Reloaded => {
                self.reloads[0].fetch_add(1, Ordering::Relaxed);
            }
            ReloadOutcome::Failed => {
                self.reloads[1].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Records where a namespace policy came from.
    pub fn record_lookup(&self, source: LookupSource) {
        self.lookups[index_of(&LookupSource::ALL, &source)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records a transport error answered with `status`.
    pub fn record_http_error(&self, status: u16) {
        if let Some(i) = ERROR_STATUSES.iter().position(|s| *s == status) {
            self.http_errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a connection opened (+1) or closed (-1).
    pub fn connection_opened(&self) {
        self.open_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// See [`Metrics::connection_opened`].
    pub fn connection_closed(&self) {
        self.open_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.push_str("# HELP pod_hardener_admission_requests_total Admission requests by endpoint and decision.\n");
        out.push_str("# TYPE pod_hardener_admission_requests_total counter\n");
        for (e, endpoint) in Endpoint::ALL.iter().enumerate() {
            for (d, decision) in Decision::ALL.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "pod_hardener_admission_requests_total{{endpoint=\"{}\",decision=\"{}\"}} {}",
                    endpoint.as_str(),
                    decision.as_str(),
                    get(&self.requests[e][d])
                );
            }
        }
        out.push_str("# HELP pod_hardener_admission_duration_seconds Time to decide an admission request, body read included.\n");
        out.push_str("# TYPE pod_hardener_admission_duration_seconds histogram\n");
        for (e, endpoint) in Endpoint::ALL.iter().enumerate() {
            let h = &self.latency[e];
            for (bound, bucket) in BUCKETS.iter().zip(&h.buckets) {
                let _ = writeln!(
                    out,
                    "pod_hardener_admission_duration_seconds_bucket{{endpoint=\"{}\",le=\"{bound}\"}} {}",
                    endpoint.as_str(),
                    get(bucket)
                );
            }
            let count = get(&h.count);
            let _ = writeln!(
                out,
                "pod_hardener_admission_duration_seconds_bucket{{endpoint=\"{}\",le=\"+Inf\"}} {count}",
                endpoint.as_str()
            );
            let _ = writeln!(
                out,
                "pod_hardener_admission_duration_seconds_sum{{endpoint=\"{}\"}} {}",
                endpoint.as_str(),
                get(&h.sum_micros) as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "pod_hardener_admission_duration_seconds_count{{endpoint=\"{}\"}} {count}",
                endpoint.as_str()
            );
        }
        out.push_str("# HELP pod_hardener_changes_total Pods changed (or, in shadow mode, that would be) by each hardening control.\n");
        out.push_str("# TYPE pod_hardener_changes_total counter\n");
        for (i, c) in Control::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "pod_hardener_changes_total{{control=\"{}\"}} {}",
                c.as_str(),
                get(&self.changes[i])
            );
        }
        out.push_str("# HELP pod_hardener_violations_total Pods denied at the enforce level, by failed check.\n");
        out.push_str("# TYPE pod_hardener_violations_total counter\n");
        for (i, c) in CheckId::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "pod_hardener_violations_total{{check=\"{}\"}} {}",
                c.as_str(),
                get(&self.violations[i])
            );
        }
        out.push_str("# HELP pod_hardener_certificate_reloads_total Serving certificate reloads by result.\n");
        out.push_str("# TYPE pod_hardener_certificate_reloads_total counter\n");
        let _ = writeln!(
            out,
            "pod_hardener_certificate_reloads_total{{result=\"success\"}} {}",
            get(&self.reloads[0])
        );
        let _ = writeln!(
            out,
            "pod_hardener_certificate_reloads_total{{result=\"failure\"}} {}",
            get(&self.reloads[1])
        );
        out.push_str("# HELP pod_hardener_namespace_lookups_total Namespace policy lookups by source; fallback means the default policy was used because the namespace could not be read.\n");
        out.push_str("# TYPE pod_hardener_namespace_lookups_total counter\n");
        for (i, s) in LookupSource::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "pod_hardener_namespace_lookups_total{{source=\"{}\"}} {}",
                s.as_str(),
                get(&self.lookups[i])
            );
        }
        out.push_str(
            "# HELP pod_hardener_http_errors_total Requests answered with an HTTP error status.\n",
        );
        out.push_str("# TYPE pod_hardener_http_errors_total counter\n");
        for (i, s) in ERROR_STATUSES.iter().enumerate() {
            let _ = writeln!(
                out,
                "pod_hardener_http_errors_total{{status=\"{s}\"}} {}",
                get(&self.http_errors[i])
            );
        }
        out.push_str("# HELP pod_hardener_open_connections Open client connections.\n");
        out.push_str("# TYPE pod_hardener_open_connections gauge\n");
        let _ = writeln!(
            out,
            "pod_hardener_open_connections {}",
            get(&self.open_connections)
        );
        out
    }
}
