//! The credentials of an agent's source, from the Secret its pod mounts
//! read-only, handed to one git command through that command's environment
//! only: an `Authorization` header scoped to the repository's origin
//! (HTTPS) or an ssh command with the key and known hosts (SSH). Nothing is
//! written into the repository's config, the URL or argv.

use std::path::{Path, PathBuf};

use base64::Engine;

use super::{http_origin, reason, Outcome};

/// Where the agent's pod mounts the Secret `spec.source.git.secretRef` names.
pub const GIT_CREDENTIALS_DIR: &str = "/var/run/codex-mcp/git";

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
}
