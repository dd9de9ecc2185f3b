//! `codex-mcp auth import`: loads a ChatGPT login (auth.json) or an API key
//! into the cluster Secret that CodexAgents reference.
//!
//! Once imported, a ChatGPT login belongs to the cluster: the operator
//! refreshes it, and its refresh token rotates on every refresh, so the copy
//! it came from stops working at the first refresh.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, Patch, PatchParams};
use serde_json::Value;

use super::chatgpt::{access_expiry, has_access_token, has_refresh_token, is_login};
use crate::api::layout::{API_KEY_FILE, AUTH_JSON_FILE};

/// The credentials Secret's name unless told otherwise: the one the Helm
/// chart creates for a release named `codex-mcp`, so `auth import` after
/// `helm install codex-mcp ...` needs no `--secret`.
pub const DEFAULT_CREDENTIALS_SECRET: &str = "codex-mcp-credentials";

/// What `codex-mcp auth import` imports, and where to.
#[derive(Debug, Default)]
pub struct ImportSettings {
    pub sources: Sources,
    /// The Secret to write (created if missing; other keys are kept).
    pub secret: String,
    /// Namespace of the Secret; the kubeconfig's when `None`.
    pub namespace: Option<String>,
    /// Kubeconfig to use; in-cluster, else ~/.kube/config, when `None`.
    pub kubeconfig: Option<PathBuf>,
}

/// The field manager of what `auth import` writes.
pub const FIELD_MANAGER: &str = "codex-mcp-auth-import";

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("nothing to import: pass --auth-json FILE or --api-key-stdin, or have OPENAI_API_KEY set or a login at {0}")]
    Nothing(String),
    #[error("reading {0} failed: {1}")]
    Read(String, #[source] std::io::Error),
    #[error("{0} is not a Codex auth.json: {1}")]
    NotAuthJson(String, String),
    #[error("the API key is empty")]
    EmptyApiKey,
    #[error("loading the kubeconfig failed: {0}")]
    Kubeconfig(String),
    #[error("writing Secret {namespace}/{name} failed: {source}")]
    Write {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// What to import, read and checked.
#[derive(Debug, Default, PartialEq)]
pub struct Import {
    pub auth_json: Option<(String, Value)>,
    pub api_key: Option<String>,
}

/// Checks an auth.json before it is stored: the operator must be able to
/// use it, and to keep a ChatGPT login fresh it needs the refresh token.
pub fn check_auth_json(origin: &str, text: &str) -> Result<Value, ImportError> {
    let bad = |why: &str| ImportError::NotAuthJson(origin.to_owned(), why.to_owned());
    let v: Value = serde_json::from_str(text).map_err(|_| bad("not valid JSON"))?;
    if !v.is_object() {
        return Err(bad("not a JSON object"));
    }
    if is_login(&v) {
        if !has_access_token(&v) {
            return Err(bad(
                "its ChatGPT login has no access token; run `codex login`",
            ));
        }
        if !has_refresh_token(&v) {
            return Err(bad(
                "its ChatGPT login has no refresh token (a copy handed to an agent?); import the auth.json `codex login` wrote",
            ));
        }
        return Ok(v);
    }
    match v.get("OPENAI_API_KEY").and_then(Value::as_str) {
        Some(k) if !k.trim().is_empty() => Ok(v),
        _ => Err(bad("it holds neither a ChatGPT login nor an API key")),
    }
}

/// The Secret as applied: only the keys being imported, so importing a
/// login leaves an API key stored earlier alone (and the other way round).
pub fn desired_secret(name: &str, import: &Import) -> Secret {
    let mut data = BTreeMap::new();
    if let Some((_, auth)) = &import.auth_json {
        let bytes = serde_json::to_vec_pretty(auth).expect("json");
        data.insert(AUTH_JSON_FILE.to_owned(), ByteString(bytes));
    }
    if let Some(key) = &import.api_key {
        data.insert(
            API_KEY_FILE.to_owned(),
            ByteString(key.trim().as_bytes().to_vec()),
        );
    }
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/part-of".to_owned(),
                "codex-mcp".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// What was stored, for the person running the command; never a token.
pub fn summary(import: &Import, namespace: &str, name: &str) -> String {
    let mut lines = Vec::new();
    if let Some((origin, auth)) = &import.auth_json {
        if is_login(auth) {
            let expiry = access_expiry(auth)
                .map(|t| format!(" (access token valid until {})", t.to_rfc3339()))
                .unwrap_or_default();
            lines.push(format!(
                "stored the ChatGPT login from {origin}{expiry} in Secret {namespace}/{name}.\n\
                 The operator refreshes it from now on, and each refresh retires the previous \
                 refresh token: do not use this login anywhere else (run `codex login` again \
                 where it came from, for a separate login there)."
            ));
        } else {
            lines.push(format!(
                "stored the auth.json from {origin} (API key form) in Secret {namespace}/{name}."
            ));
        }
    }
    if import.api_key.is_some() {
        lines.push(format!("stored an API key in Secret {namespace}/{name}."));
    }
    lines.join("\n")
}

/// Where to import from, as given on the command line.
#[derive(Debug, Default)]
pub struct Sources {
    pub auth_json: Option<PathBuf>,
    pub api_key_stdin: bool,
    pub detected_auth_file: PathBuf,
    pub env_api_key: Option<String>,
}

/// Reads and checks what the sources name. With none named, imports what
/// detection finds: the login at `detected_auth_file`, else `OPENAI_API_KEY`.
pub fn read(
    sources: &Sources,
    stdin: impl FnOnce() -> std::io::Result<String>,
) -> Result<Import, ImportError> {
    let read_file = |path: &PathBuf| -> Result<(String, Value), ImportError> {
        let origin = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| ImportError::Read(origin.clone(), e))?;
        Ok((origin.clone(), check_auth_json(&origin, &text)?))
    };
    let mut import = Import::default();
    if let Some(path) = &sources.auth_json {
        import.auth_json = Some(read_file(path)?);
    }
    if sources.api_key_stdin {
        let key = stdin().map_err(|e| ImportError::Read("stdin".into(), e))?;
        let key = key.trim().to_owned();
        if key.is_empty() {
            return Err(ImportError::EmptyApiKey);
        }
        import.api_key = Some(key);
    }
    if import != Import::default() {
        return Ok(import);
    }
    if sources.detected_auth_file.exists() {
        import.auth_json = Some(read_file(&sources.detected_auth_file)?);
    } else if let Some(key) = sources
        .env_api_key
        .as_ref()
        .filter(|k| !k.trim().is_empty())
    {
        import.api_key = Some(key.trim().to_owned());
    } else {
        return Err(ImportError::Nothing(
            sources.detected_auth_file.display().to_string(),
        ));
    }
    Ok(import)
}

/// Imports what `settings` name into the cluster; the summary to print.
pub async fn run(settings: &ImportSettings) -> Result<String, ImportError> {
    let import = read(&settings.sources, || {
        std::io::read_to_string(std::io::stdin())
    })?;
    let config = crate::kubeconfig::load(settings.kubeconfig.as_deref())
        .await
        .map_err(ImportError::Kubeconfig)?;
    let namespace = settings
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client =
        kube::Client::try_from(config).map_err(|e| ImportError::Kubeconfig(e.to_string()))?;
    let secrets: Api<Secret> = Api::namespaced(client, &namespace);
    store(&secrets, &namespace, &settings.secret, &import).await?;
    Ok(summary(&import, &namespace, &settings.secret))
}

/// Applies the Secret (server-side apply, forcing: the import is the
/// person's explicit word, over whatever wrote those keys before).
pub async fn store(
    secrets: &Api<Secret>,
    namespace: &str,
    name: &str,
    import: &Import,
) -> Result<(), ImportError> {
    let secret = desired_secret(name, import);
    secrets
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&secret),
        )
        .await
        .map(|_| ())
        .map_err(|source| ImportError::Write {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGIN: &str = r#"{"auth_mode":"chatgpt","tokens":{"access_token":"at-secret","refresh_token":"rt-secret","id_token":"x"}}"#;

    #[test]
    fn logins_need_both_tokens_and_errors_never_echo_them() {
        assert!(check_auth_json("f", LOGIN).is_ok());
        let no_refresh = r#"{"tokens":{"access_token":"at-secret","refresh_token":""}}"#;
        let err = check_auth_json("f", no_refresh).unwrap_err().to_string();
        assert!(err.contains("no refresh token"), "{err}");
        assert!(!err.contains("at-secret"), "{err}");
        let err = check_auth_json("f", "{at-secret").unwrap_err().to_string();
        assert!(
            err.contains("not valid JSON") && !err.contains("at-secret"),
            "{err}"
        );
        assert!(check_auth_json("f", r#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk"}"#).is_ok());
        assert!(check_auth_json("f", r#"{"auth_mode":"apikey","OPENAI_API_KEY":""}"#).is_err());
        assert!(check_auth_json("f", "[1]").is_err());
    }

    #[test]
    fn only_the_imported_keys_are_applied() {
        let login: Value = serde_json::from_str(LOGIN).unwrap();
        let import = Import {
            auth_json: Some(("f".into(), login.clone())),
            api_key: None,
        };
        let s = desired_secret("codex-credentials", &import);
        let data = s.data.unwrap();
        assert_eq!(data.keys().collect::<Vec<_>>(), [AUTH_JSON_FILE]);
        assert_eq!(
            serde_json::from_slice::<Value>(&data[AUTH_JSON_FILE].0).unwrap(),
            login
        );
        let import = Import {
            auth_json: None,
            api_key: Some(" sk-1\n".into()),
        };
        let data = desired_secret("c", &import).data.unwrap();
        assert_eq!(data[API_KEY_FILE].0, b"sk-1");
        let text = summary(&import, "ns", "c");
        assert!(text.contains("ns/c") && !text.contains("sk-1"), "{text}");
    }

    #[test]
    fn detection_is_the_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let detected = dir.path().join("auth.json");
        let mut sources = Sources {
            detected_auth_file: detected.clone(),
            env_api_key: Some("sk-env".into()),
            ..Sources::default()
        };
        let got = read(&sources, || unreachable!()).unwrap();
        assert_eq!(got.api_key.as_deref(), Some("sk-env"), "no login: the key");
        std::fs::write(&detected, LOGIN).unwrap();
        let got = read(&sources, || unreachable!()).unwrap();
        assert!(
            got.auth_json.is_some() && got.api_key.is_none(),
            "the login wins"
        );
        sources.api_key_stdin = true;
        let got = read(&sources, || Ok("sk-stdin\n".into())).unwrap();
        assert_eq!(
            got.api_key.as_deref(),
            Some("sk-stdin"),
            "explicit sources only"
        );
        assert!(got.auth_json.is_none());
        assert!(matches!(
            read(&sources, || Ok(" ".into())),
            Err(ImportError::EmptyApiKey)
        ));
        let nothing = Sources {
            detected_auth_file: dir.path().join("none"),
            ..Sources::default()
        };
        assert!(matches!(
            read(&nothing, || unreachable!()),
            Err(ImportError::Nothing(_))
        ));
    }
}
