//! Aggregating the phases and formatting the figures.

use std::time::SystemTime;

use crate::phases::Errors;
use crate::process::CpuUsage;

#[derive(Default)]
pub(crate) struct Tally {
    pub(crate) closed_ok: u64,
    pub(crate) closed_secs: f64,
    pub(crate) closed_cpu: CpuUsage,
    pub(crate) rounds_rps: Vec<f64>,
    pub(crate) open_ok: u64,
    pub(crate) open_secs: f64,
    pub(crate) open_cpu: CpuUsage,
    pub(crate) latencies_ns: Vec<u64>,
    pub(crate) service_ns: Vec<u64>,
    pub(crate) pacer_lag_ns: Vec<u64>,
    pub(crate) errors: Errors,
    pub(crate) check: String,
}

impl Tally {
    pub(crate) fn rps(&self) -> f64 {
        if self.closed_secs > 0.0 {
            self.closed_ok as f64 / self.closed_secs
        } else {
            0.0
        }
    }
}

pub(crate) fn cpu_per_1k(ticks: u64, ok: u64, hz: f64) -> f64 {
    if ok == 0 {
        return f64::NAN;
    }
    ticks as f64 / hz / ok as f64 * 1000.0
}

/// The value at quantile `q` of sorted samples (nearest rank).
pub(crate) fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) fn fmt_ns(ns: u64) -> String {
    let us = ns as f64 / 1000.0;
    if us >= 1_000_000.0 {
        format!("{:.2} s", us / 1_000_000.0)
    } else if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

pub(crate) fn fmt_count(v: f64) -> String {
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

pub(crate) fn fmt_mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

pub(crate) fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "MISS" }
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
pub(crate) fn today_utc() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

pub(crate) fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores (nproc), {model}, {:.0} GiB, Linux {}",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

/// Cores other processes used in the measured phases: mean, most, and whether that is quiet.
pub(crate) fn other_load(others: &[f64]) -> (f64, f64, bool) {
    let mean = others.iter().sum::<f64>() / others.len().max(1) as f64;
    let most = others.iter().copied().fold(0.0, f64::max);
    (mean, most, mean <= 0.15 && most <= 0.5)
}
