//! Builds the `codex exec` command line for a run. Pure: no IO.

use std::path::Path;

use crate::api::request::{RunRequest, SandboxMode};
use crate::credentials::API_KEY_VAR;

/// Quotes a string as a TOML basic string, for `-c key=value` overrides.
pub fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The arguments after the `codex` binary. The prompt is not among them: it
/// goes to stdin (`-`), so it never shows up in a process listing.
pub fn exec_argv(req: &RunRequest, output_schema_file: Option<&Path>) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "exec".into(),
        "--json".into(),
        "--skip-git-repo-check".into(),
        "-C".into(),
        req.workspace.display().to_string(),
        "-m".into(),
        req.model.clone(),
    ];
    match req.sandbox {
        SandboxMode::External => args.push("--dangerously-bypass-approvals-and-sandbox".into()),
        mode => {
            let name = match mode {
                SandboxMode::ReadOnly => "read-only",
                SandboxMode::WorkspaceWrite => "workspace-write",
                _ => "danger-full-access",
            };
            args.extend(["-s".into(), name.into()]);
        }
    }
    if let Some(provider) = &req.provider {
        args.push("-c".into());
        args.push(format!("model_provider={}", toml_string(&provider.id)));
        if let Some(base_url) = &provider.base_url {
            let auth = if provider.requires_openai_auth {
                "requires_openai_auth=true".to_owned()
            } else {
                let env_key = provider.env_key.as_deref().unwrap_or(API_KEY_VAR);
                format!("env_key={}", toml_string(env_key))
            };
            // Codex's own request and stream retries and stream idle timeout
            // stay at its defaults: a model step may be silent for minutes and a
            // stream may drop, and neither should end a real run.
            args.push("-c".into());
            args.push(format!(
                "model_providers.{id}={{name={name},base_url={url},{auth},wire_api=\"responses\"}}",
                id = provider.id,
                name = toml_string(&provider.id),
                url = toml_string(base_url),
            ));
        }
    }
    for o in &req.config_overrides {
        args.push("-c".into());
        args.push(o.clone());
    }
    // After the user's overrides, so none of them can undo these.
    for o in credential_hiding_overrides(req) {
        args.push("-c".into());
        args.push(o);
    }
    if let Some(file) = output_schema_file {
        args.push("--output-schema".into());
        args.push(file.display().to_string());
    }
    if let Some(thread) = &req.thread_id {
        args.push("resume".into());
        args.push(thread.clone());
    }
    args.push("-".into());
    args
}

/// Config that keeps the run's credential away from the commands Codex runs:
/// Codex itself reads the key from its environment, but the shells it starts
/// must not inherit it (Codex's default excludes drop `*KEY*`, `*SECRET*`,
/// `*TOKEN*`; the provider's variable is named too, whatever it is called),
/// and no shell snapshot (a file of `declare -x` lines in the Codex home,
/// left behind when a run is killed) may record it.
pub fn credential_hiding_overrides(req: &RunRequest) -> Vec<String> {
    let mut names = vec![API_KEY_VAR.to_owned(), "CODEX_API_KEY".to_owned()];
    if let Some(key) = req.provider.as_ref().and_then(|p| p.env_key.as_ref()) {
        if !names.contains(key) {
            names.push(key.clone());
        }
    }
    let list = names
        .iter()
        .map(|n| toml_string(n))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        "shell_environment_policy.ignore_default_excludes=false".to_owned(),
        format!("shell_environment_policy.exclude=[{list}]"),
        "features.shell_snapshot=false".to_owned(),
    ]
}

/// Whether a provider id can stand as a bare TOML key.
pub fn is_valid_provider_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::request::{Credentials, ProviderConfig};
    use std::path::PathBuf;

    fn req() -> RunRequest {
        RunRequest {
            prompt: "do it".into(),
            output_schema: None,
            thread_id: None,
            model: "gpt-5".into(),
            sandbox: SandboxMode::WorkspaceWrite,
            provider: None,
            config_overrides: vec![],
            credentials: Credentials::default(),
            track_changes: false,
            workspace: PathBuf::from("/data/agents/a/workspace"),
            workspace_paths: vec![],
            codex_home: PathBuf::from("/data/agents/a/codex-home"),
            timeout_secs: None,
            follow_login: None,
            diff_limits: Default::default(),
            run_meta: None,
        }
    }

    #[test]
    fn new_thread_reads_prompt_from_stdin() {
        let a = exec_argv(&req(), None);
        assert_eq!(&a[..3], ["exec", "--json", "--skip-git-repo-check"]);
        assert!(a
            .windows(2)
            .any(|w| w == ["-C", "/data/agents/a/workspace"]));
        assert!(a.windows(2).any(|w| w == ["-s", "workspace-write"]));
        assert!(a.windows(2).any(|w| w == ["-m", "gpt-5"]));
        assert_eq!(a.last().unwrap(), "-");
        assert!(
            !a.iter().any(|x| x == "do it"),
            "prompt must not be in argv"
        );
        assert!(!a.iter().any(|x| x == "resume"));
    }

    #[test]
    fn resume_comes_last_before_the_prompt() {
        let mut r = req();
        r.thread_id = Some("0199-abc".into());
        let a = exec_argv(&r, Some(Path::new("/tmp/schema.json")));
        let n = a.len();
        assert_eq!(&a[n - 3..], ["resume", "0199-abc", "-"]);
        assert!(a
            .windows(2)
            .any(|w| w == ["--output-schema", "/tmp/schema.json"]));
    }

    #[test]
    fn sandbox_modes() {
        let mut r = req();
        r.sandbox = SandboxMode::ReadOnly;
        assert!(exec_argv(&r, None)
            .windows(2)
            .any(|w| w == ["-s", "read-only"]));
        r.sandbox = SandboxMode::External;
        let a = exec_argv(&r, None);
        assert!(a.contains(&"--dangerously-bypass-approvals-and-sandbox".to_string()));
        assert!(!a.contains(&"-s".to_string()));
    }

    #[test]
    fn custom_provider_is_defined_inline() {
        let mut r = req();
        r.provider = Some(ProviderConfig {
            id: "fake".into(),
            base_url: Some("http://127.0.0.1:9/v1".into()),
            env_key: Some("FAKE_KEY".into()),
            requires_openai_auth: false,
        });
        let a = exec_argv(&r, None);
        assert!(a.contains(&"model_provider=\"fake\"".to_string()));
        let table = a
            .iter()
            .find(|x| x.starts_with("model_providers.fake="))
            .unwrap();
        assert!(
            table.contains("base_url=\"http://127.0.0.1:9/v1\""),
            "{table}"
        );
        assert!(table.contains("env_key=\"FAKE_KEY\""), "{table}");
        assert!(table.contains("wire_api=\"responses\""), "{table}");
        for key in ["max_retries", "stream_idle_timeout_ms"] {
            assert!(!table.contains(key), "Codex's defaults, not ours: {table}");
        }
        r.provider.as_mut().unwrap().requires_openai_auth = true;
        let a = exec_argv(&r, None);
        let table = a
            .iter()
            .find(|x| x.starts_with("model_providers.fake="))
            .unwrap();
        assert!(
            table.contains("requires_openai_auth=true") && !table.contains("env_key"),
            "{table}"
        );
    }

    #[test]
    fn commands_never_inherit_the_key_and_users_cannot_undo_it() {
        let mut r = req();
        r.config_overrides = vec!["shell_environment_policy.ignore_default_excludes=true".into()];
        r.provider = Some(ProviderConfig {
            id: "fake".into(),
            base_url: Some("http://127.0.0.1:9/v1".into()),
            env_key: Some("MY_CRED".into()),
            requires_openai_auth: false,
        });
        let a = exec_argv(&r, None);
        let pos = |needle: &str| a.iter().position(|x| x.starts_with(needle)).unwrap();
        assert!(
            pos("shell_environment_policy.ignore_default_excludes=false")
                > pos("shell_environment_policy.ignore_default_excludes=true")
        );
        let exclude = &a[pos("shell_environment_policy.exclude=")];
        assert!(exclude.contains("\"MY_CRED\""), "{exclude}");
        assert!(exclude.contains("\"OPENAI_API_KEY\""), "{exclude}");
        assert!(a.contains(&"features.shell_snapshot=false".to_owned()));
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_string(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(toml_string("x\ny"), r#""x\ny""#);
        assert!(is_valid_provider_id("my_provider-1"));
        assert!(!is_valid_provider_id("a.b"));
        assert!(!is_valid_provider_id(""));
    }
}
