//! Both components' `/metrics` as Prometheus sees them: `promtool check
//! metrics` lints each exposition, a real `prometheus` scrapes a real
//! `codex-mcp serve` (real Codex CLI, fake model) and a real `codex-mcp
//! operator` (on the test cluster, `CODEX_MCP_TEST_KUBECONFIG`), and every
//! query of the Grafana dashboard is evaluated against what it scraped.

mod support;

// The operator tests' harness: CRD, agent image, operator processes.
#[allow(dead_code)]
#[path = "operator/harness.rs"]
mod harness;

use std::time::Duration;

use codex_mcp::api::crd::CodexAgent;
use harness::{agent, create, patch_spec, wait_phase, wait_ready, Operator, OperatorOptions};
use kube::api::Api;
use serde_json::{json, Value};
use support::cluster::{self, TestNamespace};
use support::fake_model::{FakeModel, Reply, INPUT_TOKENS};
use support::gateway::{Gateway, GatewayOptions};
use support::mcp_client::{McpClient, Transport};
use support::prometheus::{check_metrics, Job, Prometheus};

const GATEWAY_JOB: &str = "codex-mcp-gateway";
const OPERATOR_JOB: &str = "codex-mcp-operator";
const DASHBOARD: &str = "charts/codex-mcp/dashboards/codex-mcp.json";
/// How long Prometheus may take to show what the processes already expose.
const SCRAPE_WAIT: Duration = Duration::from_secs(30);

/// `host:port` of an `http://host:port` URL, as a scrape target.
fn target(url: &str) -> &str {
    url.trim_start_matches("http://").trim_end_matches('/')
}

/// Three chat runs: two ok on one agent, one failed (the model answers
/// HTTP 500) on another; with a client token, which `/metrics` does not need.
async fn gateway_traffic(gateway: &Gateway, model: &FakeModel, token: &str) {
    let client = |agent: &str| {
        McpClient::new(gateway.mcp_url(), Transport::Http)
            .bearer(token)
            .header("X-Codex-Agent", agent)
    };
    model.push(Reply::text("first"));
    let r = client("metrics-a")
        .call_tool("chat", json!({"message": "hello"}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
    model.push(Reply::HttpError(500, "upstream exploded".into()));
    let r = client("metrics-b")
        .call_tool("chat", json!({"message": "hi"}))
        .await;
    assert!(r.is_error(), "the model's 500 fails the run: {r}");
    model.push(Reply::text("second"));
    let r = client("metrics-a")
        .call_tool("chat", json!({"message": "again"}))
        .await;
    assert!(r.ok() && !r.is_error(), "{r}");
}

/// Two agents: one stays Ready, the other is suspended once Ready.
async fn operator_traffic(ns: &TestNamespace) {
    let agents: Api<CodexAgent> = ns.api();
    create(&agents, &agent("kept", json!({}))).await;
    create(&agents, &agent("paused", json!({}))).await;
    wait_ready(&agents, "kept").await;
    wait_ready(&agents, "paused").await;
    patch_spec(&agents, "paused", json!({"suspended": true})).await;
    wait_phase(&agents, "paused", "Suspended").await;
}

async fn get_metrics(url: &str) -> String {
    let resp = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap_or_else(|e| panic!("GET {url}/metrics: {e}"));
    assert_eq!(resp.status(), 200, "/metrics needs no token");
    resp.text().await.expect("the /metrics body")
}

fn assert_lint_clean(what: &str, body: &str) {
    let (code, printed) = check_metrics(body);
    assert!(
        code == Some(0) && printed.trim().is_empty(),
        "promtool check metrics on the {what}'s /metrics: exit {code:?}\n{printed}\n--- body ---\n{body}"
    );
}

/// Waits until `promql` has exactly one sample satisfying `ok`.
async fn wait_value(prom: &Prometheus, promql: &str, ok: impl Fn(f64) -> bool) -> f64 {
    let result = prom
        .wait_for(promql, SCRAPE_WAIT, |r| {
            r.len() == 1 && sample(&r[0]).is_some_and(&ok)
        })
        .await;
    sample(&result[0]).unwrap()
}

/// `name{job="JOB",LABELS}`.
fn selector(job: &str, name: &str, labels: &str) -> String {
    let sep = if labels.is_empty() { "" } else { "," };
    format!(r#"{name}{{job="{job}"{sep}{labels}}}"#)
}

fn sample(series: &Value) -> Option<f64> {
    series["value"][1].as_str()?.parse().ok()
}

/// Every `expr` of every panel (rows' nested panels included), with its title.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or_default();
            for t in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    out.push((title.to_owned(), expr.to_owned()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The non-comment lines of the ```promql blocks of a Markdown text.
fn promql_examples(markdown: &str) -> Vec<String> {
    let mut inside = false;
    let mut out = Vec::new();
    for line in markdown.lines() {
        match line.trim() {
            "```promql" => inside = true,
            "```" => inside = false,
            l if inside && !l.is_empty() && !l.starts_with('#') => out.push(l.to_owned()),
            _ => {}
        }
    }
    out
}

#[tokio::test]
async fn prometheus_scrapes_both_components_and_the_dashboard_queries_work() {
    support::kubectl::install_crd().await;
    let ns = TestNamespace::create("metrics-prom").await;
    let mut operator = Operator::start(ns.name(), OperatorOptions::named("op-metrics")).await;

    let dir = tempfile::tempdir().unwrap();
    let token = format!("tok-metrics-{}", uuid::Uuid::new_v4().simple());
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{token}\n")).unwrap();
    let model = FakeModel::start().await;
    let mut options = GatewayOptions::new(&dir.path().join("data"), &model);
    options.auth_tokens = Some(tokens);
    let gateway = Gateway::start(options);

    let prom = Prometheus::start(&[
        Job {
            name: GATEWAY_JOB,
            target: target(&gateway.url),
        },
        Job {
            name: OPERATOR_JOB,
            target: target(&operator.url),
        },
    ])
    .await;
    // Scraped without credentials, although the gateway requires a token for MCP.
    for job in [GATEWAY_JOB, OPERATOR_JOB] {
        wait_value(&prom, &format!(r#"up{{job="{job}"}}"#), |v| v == 1.0).await;
    }

    // The traffic happens while Prometheus scrapes, so rates see it.
    tokio::join!(
        gateway_traffic(&gateway, &model, &token),
        operator_traffic(&ns)
    );

    // (a) Both expositions, now with counters and histograms filled, pass lint.
    let gateway_body = get_metrics(&gateway.url).await;
    let operator_body = get_metrics(&operator.url).await;
    assert_lint_clean("gateway", &gateway_body);
    assert_lint_clean("operator", &operator_body);

    // (b) Prometheus has each job's series, with the values the traffic implies.
    let gw = |name: &str, labels: &str| selector(GATEWAY_JOB, name, labels);
    let runs = |outcome: &str| {
        gw(
            "codex_mcp_runs_total",
            &format!(r#"tool="chat",outcome="{outcome}""#),
        )
    };
    wait_value(&prom, &runs("ok"), |v| v == 2.0).await;
    wait_value(&prom, &runs("failed"), |v| v == 1.0).await;
    let durations = gw("codex_mcp_run_duration_seconds_count", r#"tool="chat""#);
    wait_value(&prom, &durations, |v| v == 3.0).await;
    let total = gw("codex_mcp_run_duration_seconds_sum", r#"tool="chat""#);
    let total = wait_value(&prom, &total, |v| v > 0.0).await;
    assert!(total < 300.0, "three quick runs took {total} s in all");
    // Each ok run used one model reply's tokens; the failed one none.
    let input = gw("codex_mcp_tokens_total", r#"direction="input""#);
    wait_value(&prom, &input, |v| v == 2.0 * INPUT_TOKENS as f64).await;
    // Prometheus's own scrapes are counted.
    let scrapes = gw(
        "codex_mcp_http_requests_total",
        r#"route="/metrics",status="200""#,
    );
    wait_value(&prom, &scrapes, |v| v >= 2.0).await;
    for gauge in ["codex_mcp_runs_in_progress", "codex_mcp_queue_depth"] {
        wait_value(&prom, &gw(gauge, ""), |v| v == 0.0).await;
    }
    wait_value(&prom, &gw("codex_mcp_active_agents", ""), |v| v == 2.0).await;

    let op = |name: &str, labels: &str| selector(OPERATOR_JOB, name, labels);
    wait_value(&prom, &op("codex_mcp_operator_leader", ""), |v| v == 1.0).await;
    // At least one reconcile per agent and per change of its pod or spec.
    let reconciles = op("codex_mcp_operator_reconciles_total", r#"outcome="ok""#);
    wait_value(&prom, &reconciles, |v| v >= 4.0).await;
    let durations = op("codex_mcp_operator_reconcile_duration_seconds_count", "");
    wait_value(&prom, &durations, |v| v >= 4.0).await;
    for (phase, n) in [("Ready", 1.0), ("Suspended", 1.0), ("Failed", 0.0)] {
        let agents = op("codex_mcp_operator_agents", &format!(r#"phase="{phase}""#));
        wait_value(&prom, &agents, |v| v == n).await;
    }
    let ready = op(
        "codex_mcp_operator_time_to_ready_seconds_count",
        r#"trigger="created""#,
    );
    wait_value(&prom, &ready, |v| v == 2.0).await;
    let suspends = op("codex_mcp_operator_suspends_total", r#"reason="Requested""#);
    wait_value(&prom, &suspends, |v| v == 1.0).await;
    // The last series to appear: let it collect a few samples, so that range
    // queries over it have two points or more.
    wait_value(&prom, &format!("count_over_time({suspends}[1m])"), |v| {
        v >= 3.0
    })
    .await;

    // (c) Every dashboard query parses, evaluates, and (the traffic above
    // feeds every metric) returns data. Grafana's interval variables are
    // replaced the way Grafana would for a short time range.
    let path = cluster::repo_root().join(DASHBOARD);
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("the dashboard"))
            .expect("the dashboard is JSON");
    let variables = dashboard["templating"]["list"].as_array().cloned();
    assert!(
        variables
            .unwrap_or_default()
            .iter()
            .any(|v| v["name"] == "datasource" && v["type"] == "datasource"),
        "the data source is a template variable"
    );
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 15, "{queries:?}");
    let mut empty = Vec::new();
    for (title, expr) in &queries {
        let promql = expr
            .replace("$__rate_interval", "15s")
            .replace("$__range", "10m");
        assert!(!promql.contains('$'), "{title}: unknown variable in {expr}");
        let answer = prom.query(&promql).await;
        assert_eq!(answer["status"], "success", "{title}: {promql}: {answer}");
        if answer["data"]["result"]
            .as_array()
            .is_none_or(|r| r.is_empty())
        {
            empty.push(format!("{title}: {promql}"));
        }
    }
    assert!(
        empty.is_empty(),
        "queries without data:\n{}",
        empty.join("\n")
    );

    // The README's example queries are valid PromQL too.
    let readme = std::fs::read_to_string(cluster::repo_root().join("README.md")).unwrap();
    let examples = promql_examples(&readme);
    assert!(!examples.is_empty(), "README.md has no promql block");
    for promql in examples {
        let answer = prom.query(&promql).await;
        assert_eq!(answer["status"], "success", "README: {promql}: {answer}");
    }

    drop(prom);
    drop(gateway);
    assert_eq!(operator.stop().await, Some(0), "{}", operator.log());
    ns.cleanup().await;
}
