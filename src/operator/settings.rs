//! The operator's settings: how it runs, and the defaults for fields a
//! CodexAgent leaves empty, each defined once here (the flags refer to
//! them), with the quantity arithmetic needed to combine them with a spec.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::login::LoginSettings;
use crate::api::crd::{CodexAgentSpec, PullPolicy, VolumePolicy, BYTES_PATTERN, CPU_PATTERN};
use crate::telemetry::LogSettings;

/// Where `/health`, `/ready` and `/metrics` are served unless told
/// (`CODEX_MCP_OPERATOR_LISTEN`).
pub const DEFAULT_METRICS_LISTEN: &str = "0.0.0.0:8211";
/// The agent image (holding `codex` and `codex-mcp`) of this release.
pub const DEFAULT_AGENT_IMAGE: &str = concat!("codex-mcp-agent:", env!("CARGO_PKG_VERSION"));
pub const DEFAULT_PULL_POLICY: PullPolicy = PullPolicy::IfNotPresent;
/// In the original server's notation (Docker's `--cpus`), as the flag is read.
pub const DEFAULT_CPU_LIMIT: &str = "4.0";
/// In the original server's Docker notation (2048 MiB), as the flag is read:
/// see [`memory_setting_to_quantity`].
pub const DEFAULT_MEMORY_LIMIT: &str = "2048m";
pub const DEFAULT_CPU_REQUEST: &str = "100m";
pub const DEFAULT_MEMORY_REQUEST: &str = "256Mi";
pub const DEFAULT_STORAGE_SIZE: &str = "10Gi";
pub const DEFAULT_SOURCE_MAX_SIZE: &str = "2Gi";
pub const DEFAULT_RESIZE_IN_PLACE: bool = true;

/// How the operator runs, from its flags.
#[derive(Debug, Clone)]
pub struct OperatorSettings {
    pub log: LogSettings,
    /// In-cluster configuration (or ~/.kube/config) when `None`.
    pub kubeconfig: Option<PathBuf>,
    /// The namespace watched; all when `None`.
    pub namespace: Option<String>,
    pub metrics_listen: SocketAddr,
    pub leader_elect: bool,
    pub lease: LeaseSettings,
    /// This replica's identity; the host name plus a random suffix when `None`.
    pub identity: Option<String>,
    pub defaults: Defaults,
    pub login: LoginSettings,
}

/// The leader-election Lease, before the operator knows where it runs.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    pub name: String,
    /// The watched namespace, else the operator's own, when `None`.
    pub namespace: Option<String>,
    pub duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// Defaults for what a spec leaves empty, from the operator's flags.
#[derive(Debug, Clone, PartialEq)]
pub struct Defaults {
    pub image: String,
    pub pull_policy: PullPolicy,
    pub cpu_limit: String,
    pub memory_limit: String,
    pub cpu_request: String,
    pub memory_request: String,
    pub idle_timeout_secs: i64,
    pub storage_size: String,
    pub storage_class: Option<String>,
    /// Apply resource changes to running pods in place; off, they replace
    /// the pod (for kubelets that cannot resize).
    pub resize_in_place: bool,
    /// Largest clone of a `spec.source` repository.
    pub source_max_size: String,
}

impl Default for Defaults {
    /// What the operator uses when no flag is set, read as the flags are.
    fn default() -> Self {
        Self {
            image: DEFAULT_AGENT_IMAGE.into(),
            pull_policy: DEFAULT_PULL_POLICY,
            cpu_limit: DEFAULT_CPU_LIMIT.into(),
            memory_limit: memory_setting_to_quantity(DEFAULT_MEMORY_LIMIT),
            cpu_request: DEFAULT_CPU_REQUEST.into(),
            memory_request: DEFAULT_MEMORY_REQUEST.into(),
            idle_timeout_secs: i64::try_from(crate::agent::DEFAULT_SESSION_TIMEOUT_SECS)
                .unwrap_or(i64::MAX),
            storage_size: DEFAULT_STORAGE_SIZE.into(),
            storage_class: None,
            resize_in_place: DEFAULT_RESIZE_IN_PLACE,
            source_max_size: DEFAULT_SOURCE_MAX_SIZE.into(),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    #[error("{setting} {value:?} is not a CPU quantity (e.g. 4, 0.5, 500m)")]
    Cpu {
        setting: &'static str,
        value: String,
    },
    #[error("{setting} {value:?} is not a byte quantity (e.g. 2048Mi, 10Gi)")]
    Bytes {
        setting: &'static str,
        value: String,
    },
    #[error("{setting} must not be negative")]
    Negative { setting: &'static str },
}

/// Why a spec cannot be turned into a pod, for the status message.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SpecError {
    #[error("the {resource} request {request} exceeds its limit {limit}")]
    RequestAboveLimit {
        resource: &'static str,
        request: String,
        limit: String,
    },
    #[error("the name {0:?} is longer than 63 characters, which Kubernetes labels cannot hold")]
    NameTooLong(String),
}

impl Defaults {
    /// Checks the flag values once at startup, so a bad default fails the
    /// operator instead of every agent.
    pub fn validate(&self) -> Result<(), SettingsError> {
        for (setting, value) in [
            ("CONTAINER_CPU_LIMIT", &self.cpu_limit),
            ("the CPU request default", &self.cpu_request),
        ] {
            if !matches_cpu(value) {
                return Err(SettingsError::Cpu {
                    setting,
                    value: value.clone(),
                });
            }
        }
        for (setting, value) in [
            ("CONTAINER_MEMORY_LIMIT", &self.memory_limit),
            ("the memory request default", &self.memory_request),
            ("the storage size default", &self.storage_size),
            ("CODEX_MCP_SOURCE_MAX_SIZE", &self.source_max_size),
        ] {
            if !matches_bytes(value) {
                return Err(SettingsError::Bytes {
                    setting,
                    value: value.clone(),
                });
            }
        }
        if self.idle_timeout_secs < 0 {
            return Err(SettingsError::Negative {
                setting: "SESSION_TIMEOUT",
            });
        }
        Ok(())
    }
}

/// An agent's settings once its spec and the defaults are combined.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub image: String,
    pub pull_policy: PullPolicy,
    pub limits: BTreeMap<String, String>,
    pub requests: BTreeMap<String, String>,
    pub idle_timeout_secs: i64,
    pub storage_size: String,
    pub storage_class: Option<String>,
    pub when_deleted: VolumePolicy,
    pub tenant: String,
    pub source_max_bytes: u64,
}

/// The tenant of an agent whose spec names none.
pub const DEFAULT_TENANT: &str = crate::agent::Tenant::DEFAULT;

/// Combines a spec with the defaults. A request left empty is the default
/// request capped at the limit, so a small limit never makes an invalid pod.
pub fn resolve(spec: &CodexAgentSpec, defaults: &Defaults) -> Result<Resolved, SpecError> {
    let resources = spec.resources.clone().unwrap_or_default();
    let limits = resources.limits.unwrap_or_default();
    let requests = resources.requests.unwrap_or_default();
    let cpu_limit = limits.cpu.unwrap_or_else(|| defaults.cpu_limit.clone());
    let memory_limit = limits
        .memory
        .unwrap_or_else(|| defaults.memory_limit.clone());
    let cpu_request = request_within(requests.cpu, &defaults.cpu_request, &cpu_limit, "cpu")?;
    let memory_request = request_within(
        requests.memory,
        &defaults.memory_request,
        &memory_limit,
        "memory",
    )?;
    let storage = spec.storage.clone().unwrap_or_default();
    Ok(Resolved {
        image: spec
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| defaults.image.clone()),
        pull_policy: spec.image_pull_policy.unwrap_or(defaults.pull_policy),
        limits: BTreeMap::from([("cpu".into(), cpu_limit), ("memory".into(), memory_limit)]),
        requests: BTreeMap::from([
            ("cpu".into(), cpu_request),
            ("memory".into(), memory_request),
        ]),
        idle_timeout_secs: spec
            .idle_timeout_seconds
            .unwrap_or(defaults.idle_timeout_secs),
        storage_size: storage
            .size
            .unwrap_or_else(|| defaults.storage_size.clone()),
        storage_class: storage
            .storage_class_name
            .or_else(|| defaults.storage_class.clone()),
        when_deleted: storage.when_deleted,
        tenant: spec
            .tenant
            .clone()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| DEFAULT_TENANT.into()),
        // Validated at startup.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        source_max_bytes: parse_quantity(&defaults.source_max_size).map_or(u64::MAX, |b| b as u64),
    })
}

fn request_within(
    explicit: Option<String>,
    default: &str,
    limit: &str,
    resource: &'static str,
) -> Result<String, SpecError> {
    let limit_value = parse_quantity(limit);
    match explicit {
        Some(request) => match (parse_quantity(&request), limit_value) {
            (Some(r), Some(l)) if r > l => Err(SpecError::RequestAboveLimit {
                resource,
                request,
                limit: limit.to_string(),
            }),
            _ => Ok(request),
        },
        None => match (parse_quantity(default), limit_value) {
            (Some(d), Some(l)) if d > l => Ok(limit.to_string()),
            _ => Ok(default.to_string()),
        },
    }
}

/// The value of a quantity in base units (cores or bytes), for comparing.
pub fn parse_quantity(q: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 14] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("", 1.0),
    ];
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, factor)| q.strip_suffix(suffix).map(|n| (n, *factor)))?;
    if number.is_empty() || !number.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// `CONTAINER_MEMORY_LIMIT` keeps the original server's Docker notation,
/// where `2048m` means 2048 MiB; in Kubernetes it would mean 2.048 bytes.
/// One-letter suffixes (b, k, m, g, either case) are read the Docker way and
/// become binary quantities; anything else must already be a Kubernetes
/// quantity.
pub fn memory_setting_to_quantity(value: &str) -> String {
    let value = value.trim();
    let split = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(value.len());
    let (number, suffix) = value.split_at(split);
    let unit = match suffix {
        "b" | "B" => Some(""),
        "k" | "K" => Some("Ki"),
        "m" | "M" => Some("Mi"),
        "g" | "G" => Some("Gi"),
        _ => None,
    };
    match unit {
        Some(unit) if !number.is_empty() => format!("{number}{unit}"),
        _ => value.to_string(),
    }
}

fn matches_cpu(value: &str) -> bool {
    pattern_matches(CPU_PATTERN, value)
}

fn matches_bytes(value: &str) -> bool {
    pattern_matches(BYTES_PATTERN, value)
}

/// The CRD's patterns, applied here exactly as the API server does.
fn pattern_matches(pattern: &str, value: &str) -> bool {
    let schema = serde_json::json!({"type": "string", "pattern": pattern});
    jsonschema::validator_for(&schema)
        .map(|v| v.is_valid(&serde_json::json!(value)))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::crd::{AgentResources, CpuMemory};

    #[test]
    fn docker_memory_becomes_binary_quantity() {
        assert_eq!(memory_setting_to_quantity("2048m"), "2048Mi");
        assert_eq!(memory_setting_to_quantity("4g"), "4Gi");
        assert_eq!(memory_setting_to_quantity("512k"), "512Ki");
        assert_eq!(memory_setting_to_quantity("2Gi"), "2Gi");
        assert_eq!(memory_setting_to_quantity("1000"), "1000");
    }

    #[test]
    fn quantities_compare() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("4.0"), Some(4.0));
        assert_eq!(parse_quantity("2Gi"), Some(2.0 * 1_073_741_824.0));
        assert_eq!(parse_quantity("1M"), Some(1e6));
        assert_eq!(parse_quantity("-1"), None);
        assert_eq!(parse_quantity("Gi"), None);
    }

    #[test]
    fn defaults_fill_an_empty_spec() {
        let r = resolve(&CodexAgentSpec::default(), &Defaults::default()).unwrap();
        assert_eq!(r.limits["cpu"], "4.0");
        assert_eq!(r.limits["memory"], "2048Mi");
        assert_eq!(r.requests["cpu"], "100m");
        assert_eq!(r.idle_timeout_secs, 3600);
        assert_eq!(r.tenant, "default");
        assert_eq!(r.when_deleted, VolumePolicy::Delete);
    }

    #[test]
    fn default_requests_are_capped_at_small_limits() {
        let spec = CodexAgentSpec {
            resources: Some(AgentResources {
                limits: Some(CpuMemory {
                    cpu: Some("50m".into()),
                    memory: Some("64Mi".into()),
                }),
                requests: None,
            }),
            ..CodexAgentSpec::default()
        };
        let r = resolve(&spec, &Defaults::default()).unwrap();
        assert_eq!(r.requests["cpu"], "50m");
        assert_eq!(r.requests["memory"], "64Mi");
    }

    #[test]
    fn explicit_request_above_limit_is_an_error() {
        let spec = CodexAgentSpec {
            resources: Some(AgentResources {
                limits: Some(CpuMemory {
                    cpu: Some("1".into()),
                    memory: None,
                }),
                requests: Some(CpuMemory {
                    cpu: Some("2".into()),
                    memory: None,
                }),
            }),
            ..CodexAgentSpec::default()
        };
        let err = resolve(&spec, &Defaults::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("cpu request 2 exceeds its limit 1"),
            "{err}"
        );
    }

    #[test]
    fn bad_defaults_are_refused() {
        let d = Defaults {
            memory_limit: "2048m".into(),
            ..Defaults::default()
        };
        assert!(d.validate().is_err());
        assert!(Defaults::default().validate().is_ok());
    }
}
