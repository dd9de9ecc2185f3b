//! A remote repository as git reaches it, for the `source` init
//! container's clone and the workspace's `push`: the credentials of an
//! agent's source, from the Secret its pod mounts read-only, handed to one
//! git command through that command's environment only (an
//! `Authorization` header scoped to the repository's origin for HTTPS, or
//! an ssh command with the key and known hosts for SSH; nothing is written
//! into the repository's config, the URL or argv), and what git's errors
//! mean, with the credentials redacted from them.

use std::path::{Path, PathBuf};

use base64::Engine;

use crate::api::source_ready::{reason, Outcome};

/// The user name sent with a bare `token` (GitHub's convention; GitLab,
/// Gitea and Bitbucket accept any name with a token).
const TOKEN_USER: &str = "x-access-token";

/// A credential ready for git: environment for its commands, the values to
/// redact from anything git prints, and a private copy of an ssh key that
/// lives as long as this.
#[derive(Debug, Default)]
pub struct GitAuth {
    pub envs: Vec<(String, String)>,
    pub secrets: Vec<String>,
    _scratch: Option<tempfile::TempDir>,
}

impl GitAuth {
    pub fn secrets(&self) -> Vec<&str> {
        self.secrets.iter().map(String::as_str).collect()
    }
}

fn read(dir: &Path, key: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(key))
        .ok()
        .map(|v| v.trim_end_matches(['\r', '\n']).to_owned())
        .filter(|v| !v.is_empty())
}

/// The credential in `dir` (none when `dir` is missing or empty) for `url`.
pub fn prepare(dir: &Path, url: &str) -> Result<GitAuth, Outcome> {
    let invalid = |m: String| Outcome::new(reason::CREDENTIALS_INVALID, m);
    let key = dir.join("ssh-privatekey");
    if key.is_file() {
        if http_origin(url).is_some() {
            return Err(invalid(format!(
                "the source Secret holds an ssh key (ssh-privatekey) but {url} is an HTTP URL: \
                 use an ssh:// or user@host:path URL, or a token"
            )));
        }
        let known = dir.join("known_hosts");
        if !known.is_file() {
            return Err(invalid(
                "the source Secret holds ssh-privatekey but no known_hosts: add the server's \
                 host keys (ssh-keyscan HOST) so the server can be verified"
                    .into(),
            ));
        }
        return ssh(&key, &known).map_err(|e| {
            Outcome::new(
                reason::CLONE_FAILED,
                format!("preparing the ssh key failed: {e}"),
            )
        });
    }
    let (user, password) = match (read(dir, "token"), read(dir, "password")) {
        (Some(token), _) => (
            read(dir, "username").unwrap_or_else(|| TOKEN_USER.into()),
            token,
        ),
        (None, Some(password)) => match read(dir, "username") {
            Some(user) => (user, password),
            None => {
                return Err(invalid(
                    "the source Secret holds a password but no username".into(),
                ))
            }
        },
        (None, None) => return Ok(GitAuth::default()),
    };
    let Some(origin) = http_origin(url) else {
        return Err(invalid(format!(
            "the source Secret holds a token or password, which only an https:// or http:// \
             URL can use, not {url}: give ssh-privatekey and known_hosts instead"
        )));
    };
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    Ok(GitAuth {
        envs: vec![
            ("GIT_CONFIG_COUNT".into(), "1".into()),
            (
                "GIT_CONFIG_KEY_0".into(),
                format!("http.{origin}.extraHeader"),
            ),
            (
                "GIT_CONFIG_VALUE_0".into(),
                format!("Authorization: Basic {basic}"),
            ),
        ],
        secrets: vec![password, basic],
        _scratch: None,
    })
}

/// ssh refuses a key others can read, and the Secret volume's files are
/// group-readable: a private copy for the command's lifetime.
fn ssh(key: &Path, known_hosts: &Path) -> std::io::Result<GitAuth> {
    use std::os::unix::fs::PermissionsExt;
    let scratch = tempfile::tempdir()?;
    let copy: PathBuf = scratch.path().join("id");
    std::fs::write(&copy, std::fs::read(key)?)?;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600))?;
    let command = format!(
        "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
         -o UserKnownHostsFile={}",
        copy.display(),
        known_hosts.display()
    );
    Ok(GitAuth {
        envs: vec![("GIT_SSH_COMMAND".into(), command)],
        secrets: Vec::new(),
        _scratch: Some(scratch),
    })
}

/// The scheme and host of a URL (`https://git.example.com/`), which
/// credentials are scoped to; `None` for scp-like and ssh URLs.
pub fn http_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next()?;
    Some(format!("{scheme}://{authority}/"))
}

/// What git's error output says went wrong, in the words of a reason.
pub fn classify(stderr: &str) -> &'static str {
    let s = stderr.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| s.contains(n));
    if any(&[
        "authentication failed",
        "could not read username",
        "could not read password",
        "returned error: 401",
        "returned error: 403",
        "permission denied (publickey",
        "host key verification failed",
        "invalid username or password",
    ]) {
        reason::AUTH_REFUSED
    } else if (s.contains("repository '") && s.contains("' not found"))
        || any(&[
            "returned error: 404",
            "repository not found",
            "not found: repository",
            "does not appear to be a git repository",
            "not a git repository",
        ])
    {
        reason::REPOSITORY_NOT_FOUND
    } else if any(&[
        "could not resolve host",
        "could not resolve hostname",
        "failed to connect",
        "connection refused",
        "connection timed out",
        "timed out",
        "no route to host",
        "network is unreachable",
        "couldn't connect",
    ]) {
        reason::UNREACHABLE
    } else if any(&[
        "couldn't find remote ref",
        "remote branch",
        "unknown revision",
    ]) {
        reason::UNKNOWN_REF
    } else {
        reason::CLONE_FAILED
    }
}

/// `text` with every secret in `secrets` replaced: git echoes URLs and
/// headers in some errors, and an error must never carry a token.
pub fn redact(text: &str, secrets: &[&str]) -> String {
    secrets
        .iter()
        .filter(|s| s.len() >= 4)
        .fold(text.to_owned(), |t, s| t.replace(s, "[redacted]"))
}

/// A connection that stalls fails instead of holding the pod in its init
/// container for ever.
pub fn network_envs(credentials: &[(String, String)]) -> Vec<(String, String)> {
    let mut envs = credentials.to_vec();
    envs.extend([
        ("GIT_HTTP_LOW_SPEED_LIMIT".into(), "1".into()),
        ("GIT_HTTP_LOW_SPEED_TIME".into(), "60".into()),
    ]);
    envs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (k, v) in files {
            std::fs::write(d.path().join(k), v).unwrap();
        }
        d
    }

    #[test]
    fn a_token_becomes_a_header_scoped_to_the_origin() {
        let d = dir_with(&[("token", "s3cret-token\n")]);
        let auth = prepare(d.path(), "https://git.example.com/acme/app.git").unwrap();
        let env: std::collections::HashMap<_, _> = auth.envs.iter().cloned().collect();
        assert_eq!(
            env["GIT_CONFIG_KEY_0"],
            "http.https://git.example.com/.extraHeader"
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("x-access-token:s3cret-token");
        assert_eq!(
            env["GIT_CONFIG_VALUE_0"],
            format!("Authorization: Basic {basic}")
        );
        assert!(auth.secrets().contains(&"s3cret-token"));
    }

    #[test]
    fn basic_auth_secrets_and_empty_ones() {
        let d = dir_with(&[("username", "bob"), ("password", "pw12")]);
        let auth = prepare(d.path(), "http://h/r.git").unwrap();
        let basic = base64::engine::general_purpose::STANDARD.encode("bob:pw12");
        assert!(auth.envs.iter().any(|(_, v)| v.ends_with(&basic)));
        let none = prepare(Path::new("/nonexistent/dir"), "https://h/r").unwrap();
        assert!(none.envs.is_empty());
        let d = dir_with(&[("password", "pw12")]);
        assert_eq!(
            prepare(d.path(), "http://h/r").unwrap_err().reason,
            reason::CREDENTIALS_INVALID
        );
    }

    #[test]
    fn keys_must_match_the_url_kind() {
        let d = dir_with(&[("token", "t0ken")]);
        let e = prepare(d.path(), "git@h:r.git").unwrap_err();
        assert_eq!(e.reason, reason::CREDENTIALS_INVALID);
        assert!(!e.message.contains("t0ken"));
        let d = dir_with(&[("ssh-privatekey", "KEY")]);
        assert!(prepare(d.path(), "git@h:r.git")
            .unwrap_err()
            .message
            .contains("known_hosts"));
        assert!(prepare(d.path(), "https://h/r").is_err());
        let d = dir_with(&[
            ("ssh-privatekey", "KEY"),
            ("known_hosts", "h ssh-ed25519 AAAA"),
        ]);
        let auth = prepare(d.path(), "ssh://git@h/r.git").unwrap();
        let cmd = &auth.envs[0].1;
        assert!(cmd.contains("StrictHostKeyChecking=yes") && cmd.contains("known_hosts"));
        let copy = cmd.split_whitespace().nth(2).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(copy).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn git_errors_are_classified() {
        let cases = [
            ("fatal: Authentication failed for 'http://h/r.git/'", reason::AUTH_REFUSED),
            ("fatal: could not read Username for 'http://h': terminal prompts disabled", reason::AUTH_REFUSED),
            ("fatal: unable to access 'http://h/r/': The requested URL returned error: 403", reason::AUTH_REFUSED),
            ("fatal: repository 'http://h/x.git/' not found", reason::REPOSITORY_NOT_FOUND),
            ("fatal: unable to access 'http://h/': Failed to connect to h port 80: Connection refused", reason::UNREACHABLE),
            ("fatal: unable to access 'https://nohost/': Could not resolve host: nohost", reason::UNREACHABLE),
            ("fatal: couldn't find remote ref nope", reason::UNKNOWN_REF),
            ("error: something odd", reason::CLONE_FAILED),
        ];
        for (stderr, want) in cases {
            assert_eq!(classify(stderr), want, "{stderr}");
        }
    }

    #[test]
    fn secrets_are_redacted_and_origins_scoped() {
        assert_eq!(
            redact("Authorization: Basic abcd1234", &["abcd1234", ""]),
            "Authorization: Basic [redacted]"
        );
        assert_eq!(
            http_origin("https://h:8443/a/b.git").as_deref(),
            Some("https://h:8443/")
        );
        assert_eq!(http_origin("git@h:a/b"), None);
    }
}
