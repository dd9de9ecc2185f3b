//! Per-agent Codex settings (a CodexAgent's `spec.codex`) layered over the
//! gateway's defaults for one run. Pure: no IO.

use super::argv::is_valid_provider_id;
use crate::api::request::{ProviderConfig, SandboxMode};

/// How one agent's runs differ from the gateway's defaults. Empty fields
/// keep the gateway's setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentCodexSettings {
    pub model: Option<String>,
    /// A Codex provider id: the gateway's own provider when it names that
    /// one, else one of Codex's built-in providers or one defined in `config`.
    pub provider: Option<String>,
    /// The sandbox for runs that may write.
    pub write_sandbox: Option<SandboxMode>,
    /// `key=value` Codex config overrides (TOML values), applied after the
    /// gateway's own.
    pub config_overrides: Vec<String>,
}

/// What a run uses once an agent's settings are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectiveSettings {
    pub model: String,
    pub provider: Option<ProviderConfig>,
    pub sandbox: SandboxMode,
    pub config_overrides: Vec<String>,
}

impl AgentCodexSettings {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Layers these settings over the gateway's for one run; `writes` is
    /// whether the run may change the workspace (read-only tools keep a
    /// read-only sandbox whatever the agent's approval mode says).
    pub fn apply(
        &self,
        model: &str,
        provider: Option<&ProviderConfig>,
        write_sandbox: SandboxMode,
        config_overrides: &[String],
        writes: bool,
    ) -> EffectiveSettings {
        let write_sandbox = self.write_sandbox.unwrap_or(write_sandbox);
        let provider = match &self.provider {
            None => provider.cloned(),
            Some(id) if provider.is_some_and(|p| &p.id == id) => provider.cloned(),
            Some(id) => Some(ProviderConfig {
                id: id.clone(),
                base_url: None,
                env_key: None,
                requires_openai_auth: false,
            }),
        };
        let mut overrides = config_overrides.to_vec();
        overrides.extend(self.config_overrides.iter().cloned());
        EffectiveSettings {
            model: self.model.clone().unwrap_or_else(|| model.to_owned()),
            provider,
            sandbox: if writes {
                write_sandbox
            } else {
                write_sandbox.read_only_variant()
            },
            config_overrides: overrides,
        }
    }
}

/// Why a `spec.codex.config` entry is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigEntryError {
    #[error("config key `{0}` is not a dotted Codex config key (letters, digits, `_`, `-`, `.`)")]
    Key(String),
    #[error("config value for `{0}` is empty; give a TOML value such as \"\\\"high\\\"\" or true")]
    EmptyValue(String),
    #[error("provider id `{0}` is not valid (letters, digits, `_`, `-`)")]
    Provider(String),
}

/// One `spec.codex.config` entry as a `-c key=value` override. The key must
/// be a plain dotted key so it cannot smuggle a second assignment.
pub fn config_entry(key: &str, value: &str) -> Result<String, ConfigEntryError> {
    let key_ok = !key.is_empty()
        && !key.starts_with('.')
        && !key.ends_with('.')
        && !key.contains("..")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !key_ok {
        return Err(ConfigEntryError::Key(key.to_owned()));
    }
    if value.trim().is_empty() {
        return Err(ConfigEntryError::EmptyValue(key.to_owned()));
    }
    Ok(format!("{key}={}", value.trim()))
}

/// Checks a provider id from an agent's settings.
pub fn provider_id(id: &str) -> Result<String, ConfigEntryError> {
    if is_valid_provider_id(id) {
        Ok(id.to_owned())
    } else {
        Err(ConfigEntryError::Provider(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake() -> ProviderConfig {
        ProviderConfig {
            id: "fake".into(),
            base_url: Some("http://127.0.0.1:9/v1".into()),
            env_key: Some("K".into()),
            requires_openai_auth: false,
        }
    }

    #[test]
    fn empty_settings_keep_the_gateways() {
        let e = AgentCodexSettings::default().apply(
            "gpt-5",
            Some(&fake()),
            SandboxMode::WorkspaceWrite,
            &["a=1".into()],
            true,
        );
        assert_eq!(e.model, "gpt-5");
        assert_eq!(e.provider, Some(fake()));
        assert_eq!(e.sandbox, SandboxMode::WorkspaceWrite);
        assert_eq!(e.config_overrides, vec!["a=1".to_owned()]);
    }

    #[test]
    fn agent_settings_win_and_come_last() {
        let s = AgentCodexSettings {
            model: Some("o4".into()),
            provider: Some("ollama".into()),
            write_sandbox: Some(SandboxMode::DangerFullAccess),
            config_overrides: vec!["model_reasoning_effort=\"high\"".into()],
        };
        let e = s.apply(
            "gpt-5",
            Some(&fake()),
            SandboxMode::WorkspaceWrite,
            &["a=1".into()],
            true,
        );
        assert_eq!(e.model, "o4");
        let p = e.provider.unwrap();
        assert_eq!((p.id.as_str(), p.base_url), ("ollama", None));
        assert_eq!(e.sandbox, SandboxMode::DangerFullAccess);
        assert_eq!(
            e.config_overrides,
            vec!["a=1".to_owned(), "model_reasoning_effort=\"high\"".into()]
        );
    }

    #[test]
    fn naming_the_gateways_provider_keeps_its_definition() {
        let s = AgentCodexSettings {
            provider: Some("fake".into()),
            ..Default::default()
        };
        let e = s.apply("m", Some(&fake()), SandboxMode::WorkspaceWrite, &[], true);
        assert_eq!(e.provider, Some(fake()));
    }

    #[test]
    fn read_only_tools_stay_read_only() {
        let s = AgentCodexSettings {
            write_sandbox: Some(SandboxMode::DangerFullAccess),
            ..Default::default()
        };
        let e = s.apply("m", None, SandboxMode::WorkspaceWrite, &[], false);
        assert_eq!(e.sandbox, SandboxMode::ReadOnly);
    }

    #[test]
    fn config_entries_are_plain_assignments() {
        assert_eq!(
            config_entry("model_reasoning_effort", " \"high\" ").unwrap(),
            "model_reasoning_effort=\"high\""
        );
        assert_eq!(
            config_entry("features.apps", "false").unwrap(),
            "features.apps=false"
        );
        for bad in ["", "a=b", "a b", ".a", "a.", "a..b", "a\nb"] {
            assert!(
                matches!(config_entry(bad, "1"), Err(ConfigEntryError::Key(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            config_entry("a", " "),
            Err(ConfigEntryError::EmptyValue(_))
        ));
        assert!(provider_id("my-provider").is_ok());
        assert!(provider_id("a.b").is_err());
    }
}
