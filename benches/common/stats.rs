//! Figures of the benchmarks: percentiles of latencies in milliseconds.

use std::time::Instant;

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// Prints the p50 and p95 of `ms` under `name`, and answers them.
pub fn summary(name: &str, mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let (p50, p95) = (percentile(&ms, 0.5), percentile(&ms, 0.95));
    println!(
        "{name:<40} n={:<5} p50 {p50:>8.1} ms   p95 {p95:>8.1} ms",
        ms.len()
    );
    (p50, p95)
}

pub fn ms_since(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1000.0
}
