//! Which credential one run uses, and what follows from it for Codex.
//!
//! Two places hand a run its credential: the gateway, with the credential it
//! holds (none on Kubernetes), and `agent-run`, which falls back on its
//! environment's own files (the agent's Secret, kept by the operator) when
//! the run brings none. Both ask [`run_credential`], so they cannot come to
//! different answers about the same run.

use serde_json::Value;

use super::chatgpt::is_login;
use crate::api::request::Credentials;

/// An environment's own credential files, as read: on Kubernetes the
/// agent's Secret, which holds only the credential the operator chose.
/// (No `Debug`: it holds secrets.)
#[derive(Clone, Default, PartialEq)]
pub struct EnvironmentCredentials {
    pub auth_json: Option<Value>,
    pub api_key: Option<String>,
}

/// Which login a run copies in as it is refreshed while the run goes on
/// (see `codex::login_follow`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowLogin {
    /// Nothing to follow: an API key, or no credential at all.
    No,
    /// The ChatGPT login the run was handed: the gateway publishes each
    /// refresh of it in its run login file.
    Handed,
    /// The environment's own auth.json, which the operator rewrites as it
    /// refreshes the login.
    Environment,
}

/// What a run authenticates with, and the Codex settings that follow.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCredential {
    pub credentials: Credentials,
    /// A custom provider must be told to authenticate with the auth.json
    /// (`requires_openai_auth`) instead of reading its key variable.
    pub requires_openai_auth: bool,
    pub follow: FollowLogin,
}

/// Decides a run's credential: the one it was `handed`, else (only when it
/// was handed none) its environment's own, which `environment` reads: it is
/// called at most once, and `Ok(None)` means the environment keeps none.
pub fn run_credential<E>(
    handed: Credentials,
    environment: impl FnOnce() -> Result<Option<EnvironmentCredentials>, E>,
) -> Result<RunCredential, E> {
    if handed != Credentials::default() {
        let follow = if handed.auth_json.as_ref().is_some_and(is_login) {
            FollowLogin::Handed
        } else {
            FollowLogin::No
        };
        return Ok(RunCredential {
            requires_openai_auth: handed.auth_json.is_some(),
            follow,
            credentials: handed,
        });
    }
    let Some(own) = environment()? else {
        return Ok(RunCredential {
            credentials: handed,
            requires_openai_auth: false,
            follow: FollowLogin::No,
        });
    };
    let credentials = environment_choice(own);
    // Whatever auth.json the operator put there is what it keeps current;
    // the follower itself copies in only ChatGPT logins.
    let follow = if credentials.auth_json.is_some() {
        FollowLogin::Environment
    } else {
        FollowLogin::No
    };
    Ok(RunCredential {
        requires_openai_auth: credentials.auth_json.is_some(),
        follow,
        credentials,
    })
}

/// [`run_credential`] where there is no environment to fall back on: the
/// gateway's side of a run, whose environment (if it keeps any credential)
/// decides again inside `agent-run`.
pub fn handed(credentials: Credentials) -> RunCredential {
    match run_credential(credentials, || Ok::<_, std::convert::Infallible>(None)) {
        Ok(decided) => decided,
        Err(never) => match never {},
    }
}

/// Which of the environment's credentials a run uses: its ChatGPT login when
/// there is one (the operator copies only the credential it chose), else the
/// API key, else an auth.json in the API-key form.
fn environment_choice(own: EnvironmentCredentials) -> Credentials {
    match own.auth_json {
        Some(a) if is_login(&a) || own.api_key.is_none() => Credentials {
            api_key: None,
            auth_json: Some(a),
        },
        _ => Credentials {
            api_key: own.api_key,
            auth_json: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn login() -> Value {
        json!({"auth_mode": "chatgpt", "tokens": {"access_token": "a", "refresh_token": ""}})
    }

    fn api_key_form() -> Value {
        json!({"auth_mode": "apikey", "OPENAI_API_KEY": "sk-file"})
    }

    fn key(k: &str) -> Credentials {
        Credentials {
            api_key: Some(k.into()),
            auth_json: None,
        }
    }

    fn auth(a: Value) -> Credentials {
        Credentials {
            api_key: None,
            auth_json: Some(a),
        }
    }

    fn own(auth_json: Option<Value>, api_key: Option<&str>) -> EnvironmentCredentials {
        EnvironmentCredentials {
            auth_json,
            api_key: api_key.map(str::to_owned),
        }
    }

    /// An environment that must not be read.
    fn unread() -> Result<Option<EnvironmentCredentials>, String> {
        Err("the environment was read".into())
    }

    #[test]
    fn a_handed_login_is_used_and_followed() {
        let got = run_credential(auth(login()), unread).unwrap();
        assert_eq!(got.credentials, auth(login()));
        assert!(got.requires_openai_auth);
        assert_eq!(got.follow, FollowLogin::Handed);
        assert_eq!(handed(auth(login())), got, "the gateway's side agrees");
    }

    #[test]
    fn a_handed_key_or_api_key_auth_json_is_not_followed() {
        let got = run_credential(key("sk-1"), unread).unwrap();
        assert_eq!(got.credentials, key("sk-1"));
        assert!(!got.requires_openai_auth);
        assert_eq!(got.follow, FollowLogin::No);

        // An auth.json still authenticates through itself; it has no login
        // to refresh.
        let got = run_credential(auth(api_key_form()), unread).unwrap();
        assert!(got.requires_openai_auth);
        assert_eq!(got.follow, FollowLogin::No);
    }

    #[test]
    fn nothing_handed_and_no_environment_is_no_credential() {
        let none = RunCredential {
            credentials: Credentials::default(),
            requires_openai_auth: false,
            follow: FollowLogin::No,
        };
        assert_eq!(handed(Credentials::default()), none);
        let got = run_credential(Credentials::default(), || Ok::<_, String>(None)).unwrap();
        assert_eq!(got, none);
        let empty = run_credential(Credentials::default(), || {
            Ok::<_, String>(Some(own(None, None)))
        });
        assert_eq!(empty.unwrap(), none, "an empty Secret leaves none");
    }

    #[test]
    fn the_environment_fills_in_when_nothing_is_handed() {
        let got = run_credential(Credentials::default(), || {
            Ok::<_, String>(Some(own(Some(login()), Some("sk-env"))))
        })
        .unwrap();
        assert_eq!(got.credentials, auth(login()), "the login wins");
        assert!(got.requires_openai_auth);
        assert_eq!(got.follow, FollowLogin::Environment);

        let got = run_credential(Credentials::default(), || {
            Ok::<_, String>(Some(own(None, Some("sk-env"))))
        })
        .unwrap();
        assert_eq!(got.credentials, key("sk-env"));
        assert!(!got.requires_openai_auth);
        assert_eq!(got.follow, FollowLogin::No);
    }

    #[test]
    fn an_api_key_auth_json_yields_to_a_key_but_is_followed_alone() {
        let got = run_credential(Credentials::default(), || {
            Ok::<_, String>(Some(own(Some(api_key_form()), Some("sk-env"))))
        })
        .unwrap();
        assert_eq!(got.credentials, key("sk-env"));
        assert_eq!(got.follow, FollowLogin::No);

        let got = run_credential(Credentials::default(), || {
            Ok::<_, String>(Some(own(Some(api_key_form()), None)))
        })
        .unwrap();
        assert_eq!(got.credentials, auth(api_key_form()));
        assert!(got.requires_openai_auth);
        assert_eq!(got.follow, FollowLogin::Environment);
    }

    #[test]
    fn the_environment_is_read_only_when_needed_and_its_errors_surface() {
        assert!(run_credential(key("sk-1"), unread).is_ok());
        let err = run_credential(Credentials::default(), unread).unwrap_err();
        assert_eq!(err, "the environment was read");
    }
}
