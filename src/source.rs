//! An agent's source repository on Kubernetes: the URL rules the CRD and
//! the gateway share, the reasons a clone fails (they become the
//! `SourceReady` condition), and the programs that run in the agent's pod:
//! [`clone`] (its `source` init container) and the credentials both it and
//! `push` hand to git ([`auth`]).

pub mod auth;
pub mod clone;
pub mod rules;

use serde::{Deserialize, Serialize};

/// Why a source is not (yet) in the workspace: `SourceReady`'s reasons.
pub mod reason {
    /// Cloned; the message names the commit.
    pub const CLONED: &str = "Cloned";
    /// The init container has not finished yet.
    pub const CLONING: &str = "Cloning";
    /// The host did not answer (DNS, connection refused, timeout).
    pub const UNREACHABLE: &str = "Unreachable";
    /// The server refused the credentials (or there were none and it wants some).
    pub const AUTH_REFUSED: &str = "AuthRefused";
    /// The server has no repository at that URL.
    pub const REPOSITORY_NOT_FOUND: &str = "RepositoryNotFound";
    /// The repository has no branch, tag or commit of that name.
    pub const UNKNOWN_REF: &str = "UnknownRef";
    /// The clone is larger than the operator allows.
    pub const TOO_LARGE: &str = "TooLarge";
    /// The workspace already holds files or a history of its own.
    pub const WORKSPACE_NOT_EMPTY: &str = "WorkspaceNotEmpty";
    /// The Secret's keys do not make a usable credential.
    pub const CREDENTIALS_INVALID: &str = "CredentialsInvalid";
    /// The URL is not one a source may have.
    pub const INVALID_URL: &str = "InvalidURL";
    /// Anything else git or the file system reported.
    pub const CLONE_FAILED: &str = "CloneFailed";

    pub const ALL: &[&str] = &[
        CLONED,
        UNREACHABLE,
        AUTH_REFUSED,
        REPOSITORY_NOT_FOUND,
        UNKNOWN_REF,
        TOO_LARGE,
        WORKSPACE_NOT_EMPTY,
        CREDENTIALS_INVALID,
        INVALID_URL,
        CLONE_FAILED,
    ];
}

/// What the init container reports, as its termination message
/// (`REASON: message`), which the operator turns into `SourceReady`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub reason: &'static str,
    pub message: String,
}

impl Outcome {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    pub fn is_success(&self) -> bool {
        self.reason == reason::CLONED
    }

    /// One line, as the termination message holds it.
    pub fn line(&self) -> String {
        format!("{}: {}", self.reason, self.message.replace('\n', " "))
    }

    /// Reads a termination message back. `None` when it is not one of
    /// ours (a crash before the program could say anything).
    pub fn parse(line: &str) -> Option<Self> {
        let (reason, message) = line.trim().split_once(": ")?;
        let reason = reason::ALL.iter().find(|r| **r == reason)?;
        Some(Self::new(reason, message.trim()))
    }
}

/// A repository and where in it to start: what `X-Codex-Repository`
/// (`URL[#REF]`) and a CodexAgent's `spec.source.git` say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    pub url: String,
    pub ref_: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the repository URL is empty")]
    Empty,
    #[error(
        "the repository URL must not carry credentials (user:token@host): they come from the \
         Secret the agent's source names"
    )]
    Credentials,
    #[error("{0:?} is not a repository URL: use https://, http:// or ssh:// with a path, or user@host:path")]
    Form(String),
    #[error("{0:?} is not a branch, tag or commit name")]
    Ref(String),
}

impl Repository {
    /// `URL` or `URL#REF`, checked as the CRD checks `spec.source.git`.
    pub fn parse(spec: &str) -> Result<Self, UrlError> {
        let spec = spec.trim();
        let (url, ref_) = match spec.rsplit_once('#') {
            Some((url, r)) if !r.is_empty() => (url, Some(r)),
            Some((url, _)) => (url, None),
            None => (spec, None),
        };
        check_url(url)?;
        if let Some(r) = ref_ {
            check_ref(r)?;
        }
        Ok(Self {
            url: url.to_owned(),
            ref_: ref_.map(str::to_owned),
        })
    }

    /// `URL` or `URL#REF`, as it was given.
    pub fn display(&self) -> String {
        match &self.ref_ {
            Some(r) => format!("{}#{r}", self.url),
            None => self.url.clone(),
        }
    }
}

/// The rules of the CRD's `SOURCE_URL_*` CEL rules, for the gateway and
/// the pod (which must not trust a spec that skipped validation).
pub fn check_url(url: &str) -> Result<(), UrlError> {
    if url.is_empty() {
        return Err(UrlError::Empty);
    }
    if url.contains(char::is_whitespace) {
        return Err(UrlError::Form(url.to_owned()));
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let path = &rest[authority.len()..];
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if scheme.starts_with("http") || userinfo.contains(':') {
                return Err(UrlError::Credentials);
            }
        }
        let known = matches!(scheme, "https" | "http" | "ssh");
        if !known || authority.is_empty() || path.len() < 2 || !path.starts_with('/') {
            return Err(UrlError::Form(url.to_owned()));
        }
        return Ok(());
    }
    // scp-like: user@host:path
    let form = || UrlError::Form(url.to_owned());
    let (user, rest) = url.split_once('@').ok_or_else(form)?;
    let (host, path) = rest.split_once(':').ok_or_else(form)?;
    let word = |s: &str, extra: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
    };
    if !word(user, "._-") || !word(host, ".-") || path.is_empty() || path.starts_with(['/', '-']) {
        return Err(form());
    }
    Ok(())
}

/// The CRD's `REF_PATTERN`, plus what git refuses in any ref name.
pub fn check_ref(r: &str) -> Result<(), UrlError> {
    let ok = !r.is_empty()
        && r.len() <= 255
        && !r.starts_with('-')
        && !r.contains("..")
        && r.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./+@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(UrlError::Ref(r.to_owned()))
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_specs_parse_with_and_without_a_ref() {
        let r = Repository::parse("https://git.example.com/acme/app.git#main").unwrap();
        assert_eq!(r.url, "https://git.example.com/acme/app.git");
        assert_eq!(r.ref_.as_deref(), Some("main"));
        assert_eq!(r.display(), "https://git.example.com/acme/app.git#main");
        let r = Repository::parse(" git@github.com:acme/app.git ").unwrap();
        assert_eq!(
            (r.url.as_str(), r.ref_),
            ("git@github.com:acme/app.git", None)
        );
        assert!(Repository::parse("ssh://git@host:2222/acme/app#v1.2.3").is_ok());
    }

    #[test]
    fn urls_with_credentials_or_odd_forms_are_refused() {
        for bad in [
            "https://user:tok@git.example.com/a.git",
            "https://tok@git.example.com/a.git",
            "ssh://git:pw@host/a.git",
        ] {
            assert_eq!(check_url(bad), Err(UrlError::Credentials), "{bad}");
        }
        for bad in [
            "",
            "file:///etc",
            "git://host/a",
            "https://host",
            "https://host/",
            "/srv/repo",
            "host:path",
            "git@host:-oProxyCommand=x",
            "https://host/a b",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
        assert!(matches!(
            Repository::parse("https://host/a#-x"),
            Err(UrlError::Ref(_))
        ));
        assert!(check_ref("feature/x..y").is_err());
        assert!(check_ref("0123abc").is_ok());
    }

    #[test]
    fn outcomes_round_trip_through_a_termination_message() {
        let o = Outcome::new(reason::AUTH_REFUSED, "the server\nrefused");
        assert_eq!(o.line(), "AuthRefused: the server refused");
        assert_eq!(
            Outcome::parse(&o.line()),
            Some(Outcome::new(reason::AUTH_REFUSED, "the server refused"))
        );
        assert_eq!(Outcome::parse("panicked at src/x.rs"), None);
        assert_eq!(Outcome::parse("Bogus: x"), None);
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
