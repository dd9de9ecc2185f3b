use super::*;
use crate::credentials::chatgpt::tests::{jwt, login};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

fn secret(entries: &[(&str, &[u8])]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("codex-credentials".into()),
            ..ObjectMeta::default()
        },
        data: Some(
            entries
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

fn reference() -> SecretRef {
    SecretRef {
        name: "codex-credentials".into(),
        api_key_key: API_KEY_FILE.into(),
        auth_json_key: AUTH_JSON_FILE.into(),
    }
}

fn with(method: AuthMethod, prefer_oauth: bool) -> LoginSettings {
    LoginSettings {
        method,
        prefer_oauth,
        ..LoginSettings::default()
    }
}

#[test]
fn the_credential_is_chosen_as_the_gateway_detects_it() {
    let auth = login(Utc::now().timestamp() + 3600).to_string();
    let both = secret(&[(API_KEY_FILE, b"sk-1"), (AUTH_JSON_FILE, auth.as_bytes())]);
    let r = reference();
    assert!(matches!(
        choose(&both, &r, &with(AuthMethod::Auto, false)).unwrap(),
        Chosen::ApiKey(_)
    ));
    assert!(matches!(
        choose(&both, &r, &with(AuthMethod::Auto, true)).unwrap(),
        Chosen::Login(_)
    ));
    assert!(matches!(
        choose(&both, &r, &with(AuthMethod::OAuth, false)).unwrap(),
        Chosen::Login(_)
    ));
    let login_only = secret(&[(AUTH_JSON_FILE, auth.as_bytes())]);
    assert!(matches!(
        choose(&login_only, &r, &with(AuthMethod::Auto, false)).unwrap(),
        Chosen::Login(_)
    ));
    let err = choose(&login_only, &r, &with(AuthMethod::ApiKey, false)).unwrap_err();
    assert_eq!(err.reason(), Some(reason::KEYS_MISSING));
    assert!(
        err.to_string().contains("CODEX_AUTH_METHOD=api_key"),
        "{err}"
    );

    let api_key_file = secret(&[(
        AUTH_JSON_FILE,
        br#"{"auth_mode":"apikey","OPENAI_API_KEY":"sk"}"#,
    )]);
    assert!(matches!(
        choose(&api_key_file, &r, &with(AuthMethod::Auto, false)).unwrap(),
        Chosen::AuthFile(_)
    ));
    let empty = secret(&[(API_KEY_FILE, b"  \n")]);
    let err = choose(&empty, &r, &with(AuthMethod::Auto, false)).unwrap_err();
    assert_eq!(err.reason(), Some(reason::KEYS_MISSING));
}

#[test]
fn an_unusable_login_says_how_to_replace_it_without_echoing_it() {
    let r = reference();
    let garbage = secret(&[(AUTH_JSON_FILE, b"{rt-secret")]);
    let err = choose(&garbage, &r, &with(AuthMethod::OAuth, false)).unwrap_err();
    assert_eq!(err.reason(), Some(reason::LOGIN_UNREADABLE));
    let text = err.to_string();
    assert!(text.contains("codex-mcp auth import"), "{text}");
    assert!(!text.contains("rt-1"), "{text}");

    let no_access = secret(&[(AUTH_JSON_FILE, br#"{"tokens":{"refresh_token":"rt-1"}}"#)]);
    let err = choose(&no_access, &r, &with(AuthMethod::OAuth, false)).unwrap_err();
    assert_eq!(err.reason(), Some(reason::LOGIN_UNREADABLE));
}

#[test]
fn agents_get_the_login_without_its_refresh_token_and_a_refresh_time() {
    let now = Utc::now();
    let exp = now.timestamp() + 3600;
    let creds = agent_login(
        &login(exp),
        "codex-credentials",
        Duration::from_secs(300),
        now,
    );
    let bytes = &creds.data[AUTH_JSON_FILE].0;
    let kept: Value = serde_json::from_slice(bytes).unwrap();
    assert_eq!(kept["tokens"]["refresh_token"], "");
    assert_eq!(kept["tokens"]["account_id"], "acct");
    assert!(!String::from_utf8_lossy(bytes).contains("rt-1"));
    assert_eq!(creds.refresh_at.unwrap().timestamp(), exp - 300);
    assert_eq!(creds.data.len(), 1, "only the chosen credential");
    assert!(
        !creds.message.contains(&jwt(exp)),
        "no token in the condition"
    );
    // Deterministic: the same login gives the same Secret, so an unchanged
    // login never rewrites the agent's Secret.
    let again = agent_login(
        &login(exp),
        "codex-credentials",
        Duration::from_secs(300),
        now + chrono::Duration::seconds(5),
    );
    let a: Value = serde_json::from_slice(&again.data[AUTH_JSON_FILE].0).unwrap();
    assert_eq!(a["tokens"], kept["tokens"]);
}

#[test]
fn api_failures_are_retried_not_reported_as_the_agents_state() {
    let e = LoginProblem::Unreachable {
        secret: "s".into(),
        why: "connection refused".into(),
    };
    assert_eq!(e.reason(), Some(reason::REFRESH_UNREACHABLE));
    let e = LoginProblem::Refused {
        secret: "s".into(),
        why: "HTTP 401, refresh_token_reused".into(),
    };
    assert_eq!(e.reason(), Some(reason::REFRESH_FAILED));
    assert!(e.to_string().contains("codex login"));
}
