//! The settings of runs, from the Codex and limit flags: the same for
//! `serve` and `gateway`.

use std::time::Duration;

use super::{CodexArgs, LimitsArgs, SettingsError};
use crate::codex::argv::is_valid_provider_id;
use crate::codex::{ProviderConfig, SandboxMode};
use crate::runs::RunSettings;

/// Run settings shared by every backend, from the Codex and limit flags.
pub fn run_settings(codex: &CodexArgs, limits: &LimitsArgs) -> Result<RunSettings, SettingsError> {
    let write_sandbox = SandboxMode::from_approval_mode(&codex.approval_mode).ok_or_else(|| {
        SettingsError::Invalid(format!(
            "CODEX_APPROVAL_MODE {:?} is not one of suggest, auto-edit, full-auto, danger-full-access, external",
            codex.approval_mode
        ))
    })?;
    let provider = match &codex.provider {
        Some(id) if !is_valid_provider_id(id) => {
            return Err(SettingsError::Invalid(format!(
                "CODEX_PROVIDER {id:?} may contain only letters, digits, '-' and '_'"
            )))
        }
        Some(id) => Some(ProviderConfig {
            id: id.clone(),
            base_url: codex.provider_base_url.clone(),
            env_key: Some(codex.provider_env_key.clone()),
            requires_openai_auth: false,
        }),
        None => None,
    };
    if limits.run_timeout == 0
        || limits.max_concurrent_sessions == 0
        || limits.progress_heartbeat == 0
    {
        return Err(SettingsError::Invalid(
            "CODEX_MCP_RUN_TIMEOUT, MAX_CONCURRENT_SESSIONS and CODEX_MCP_PROGRESS_HEARTBEAT_SECS \
             must be at least 1"
                .into(),
        ));
    }
    Ok(RunSettings {
        model: codex.model.clone(),
        provider,
        write_sandbox,
        config_overrides: codex_overrides(&codex.codex_config),
        run_timeout: Duration::from_secs(limits.run_timeout),
        progress_heartbeat: Duration::from_secs(limits.progress_heartbeat),
        queue_limit: limits.queue_limit,
        session_timeout: Duration::from_secs(limits.session_timeout),
        result_ttl: Duration::from_secs(limits.result_ttl),
        max_concurrent_runs: limits.max_concurrent_sessions,
        diff_limits: crate::api::request::DiffLimits {
            max_file_bytes: limits.max_diff_bytes,
            max_total_bytes: limits.max_diff_total_bytes,
        },
    })
}

/// Codex config every run gets unless the user sets the same key. App
/// connectors (on with a ChatGPT login) reach out to ChatGPT's servers: not
/// what a coding tool needs, and agents' environments on Kubernetes may
/// reach only the model API.
const DEFAULT_OVERRIDES: &[(&str, &str)] = &[("features.apps", "false")];

/// The user's overrides (`CODEX_MCP_CODEX_CONFIG`) after the defaults they
/// do not replace.
pub fn codex_overrides(user: &[String]) -> Vec<String> {
    let key = |o: &str| o.split('=').next().unwrap_or_default().trim().to_owned();
    let user_keys: Vec<String> = user.iter().map(|o| key(o)).collect();
    DEFAULT_OVERRIDES
        .iter()
        .filter(|(k, _)| !user_keys.iter().any(|u| u == k))
        .map(|(k, v)| format!("{k}={v}"))
        .chain(user.iter().filter(|o| !o.trim().is_empty()).cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_codex_config_yields_to_the_users() {
        assert_eq!(codex_overrides(&[]), ["features.apps=false"]);
        let user = vec!["model_reasoning_effort=\"high\"".to_owned()];
        assert_eq!(
            codex_overrides(&user),
            ["features.apps=false", "model_reasoning_effort=\"high\""]
        );
        assert_eq!(codex_overrides(&["".to_owned()]), ["features.apps=false"]);
        let user = vec![" features.apps = true".to_owned()];
        assert_eq!(codex_overrides(&user), [" features.apps = true"]);
    }
}
