//! The operator's Prometheus metrics, on its own registry (the gateway has
//! another): reconciles, agents by phase, time to ready, suspends and
//! resumes, leadership.

use std::collections::HashMap;

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::api::crd::Phase;
use crate::metrics::{register, render_registry};

/// How a reconcile ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReconcileOutcome {
    Ok,
    Error,
}

impl ReconcileOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

pub struct OperatorMetrics {
    registry: Registry,
    reconciles: IntCounterVec,
    reconcile_seconds: Histogram,
    agents: IntGaugeVec,
    time_to_ready: HistogramVec,
    suspends: IntCounterVec,
    resumes: IntCounter,
    login_refreshes: IntCounterVec,
    pub leader: IntGauge,
}

/// How a refresh of a shared ChatGPT login ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Ok,
    /// The token endpoint refused it: someone must log in again.
    Refused,
    /// The endpoint could not be reached, or the rotated login not stored.
    Failed,
}

impl RefreshOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }
}

impl OperatorMetrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("codex_mcp_operator".into()), None)
            .expect("a valid metric prefix");
        let reconciles = register(
            &registry,
            IntCounterVec::new(
                Opts::new("reconciles_total", "Reconciles of CodexAgents by outcome"),
                &["outcome"],
            ),
        );
        let reconcile_seconds = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new("reconcile_duration_seconds", "Duration of one reconcile")
                    .buckets(vec![
                        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    ]),
            ),
        );
        let agents = register(
            &registry,
            IntGaugeVec::new(Opts::new("agents", "CodexAgents by phase"), &["phase"]),
        );
        let time_to_ready = register(
            &registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "time_to_ready_seconds",
                    "Time from an agent's creation or resume until its pod is ready",
                )
                .buckets(vec![
                    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0,
                ]),
                &["trigger"],
            ),
        );
        let suspends = register(
            &registry,
            IntCounterVec::new(
                Opts::new("suspends_total", "Agents suspended, by reason"),
                &["reason"],
            ),
        );
        let resumes = register(
            &registry,
            IntCounter::new("resumes_total", "Agents resumed"),
        );
        let login_refreshes = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "login_refreshes_total",
                    "Refreshes of shared ChatGPT logins, by result",
                ),
                &["result"],
            ),
        );
        let leader = register(
            &registry,
            IntGauge::new(
                "leader",
                "1 while this replica holds the lease and reconciles",
            ),
        );
        // Present from the start, so dashboards see zeros rather than gaps.
        for phase in Phase::ALL {
            agents.with_label_values(&[phase.as_str()]).set(0);
        }
        for outcome in [
            RefreshOutcome::Ok,
            RefreshOutcome::Refused,
            RefreshOutcome::Failed,
        ] {
            login_refreshes.with_label_values(&[outcome.as_str()]);
        }
        Self {
            registry,
            reconciles,
            reconcile_seconds,
            agents,
            time_to_ready,
            suspends,
            resumes,
            login_refreshes,
            leader,
        }
    }

    pub fn login_refreshed(&self, outcome: RefreshOutcome) {
        self.login_refreshes
            .with_label_values(&[outcome.as_str()])
            .inc();
    }

    pub fn reconciled(&self, outcome: ReconcileOutcome, seconds: f64) {
        self.reconciles.with_label_values(&[outcome.as_str()]).inc();
        self.reconcile_seconds.observe(seconds);
    }

    pub fn ready_after(&self, trigger: &str, seconds: f64) {
        self.time_to_ready
            .with_label_values(&[trigger])
            .observe(seconds);
    }

    /// `reason` is a condition reason constant (bounded).
    pub fn suspended(&self, reason: &str) {
        self.suspends.with_label_values(&[reason]).inc();
    }

    pub fn resumed(&self) {
        self.resumes.inc();
    }

    /// Replaces the per-phase counts (agents without a phase yet count as
    /// Pending).
    pub fn set_agents(&self, phases: impl IntoIterator<Item = Option<Phase>>) {
        let mut counts: HashMap<Phase, i64> = Phase::ALL.iter().map(|p| (*p, 0)).collect();
        for phase in phases {
            *counts.entry(phase.unwrap_or(Phase::Pending)).or_default() += 1;
        }
        for (phase, n) in counts {
            self.agents.with_label_values(&[phase.as_str()]).set(n);
        }
    }

    pub fn render(&self) -> String {
        render_registry(&self.registry)
    }
}

impl Default for OperatorMetrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series() {
        let m = OperatorMetrics::new();
        m.reconciled(ReconcileOutcome::Ok, 0.02);
        m.ready_after("created", 4.0);
        m.suspended("IdleTimeout");
        m.resumed();
        m.set_agents([Some(Phase::Ready), Some(Phase::Ready), None]);
        m.login_refreshed(RefreshOutcome::Ok);
        let text = m.render();
        for needle in [
            r#"codex_mcp_operator_reconciles_total{outcome="ok"} 1"#,
            "codex_mcp_operator_reconcile_duration_seconds_count 1",
            r#"codex_mcp_operator_agents{phase="Ready"} 2"#,
            r#"codex_mcp_operator_agents{phase="Pending"} 1"#,
            r#"codex_mcp_operator_agents{phase="Suspended"} 0"#,
            r#"codex_mcp_operator_time_to_ready_seconds_count{trigger="created"} 1"#,
            r#"codex_mcp_operator_suspends_total{reason="IdleTimeout"} 1"#,
            "codex_mcp_operator_resumes_total 1",
            "codex_mcp_operator_leader 0",
            r#"codex_mcp_operator_login_refreshes_total{result="ok"} 1"#,
            r#"codex_mcp_operator_login_refreshes_total{result="refused"} 0"#,
        ] {
            assert!(text.contains(needle), "missing {needle} in\n{text}");
        }
    }
}
