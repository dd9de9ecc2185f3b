//! An agent's source repository on Kubernetes: the URL rules the CRD and
//! the gateway share, and the program that runs in the agent's pod:
//! [`clone`] (its `source` init container), which reports how the clone
//! went in the `SourceReady` reasons of `api::source_ready` and hands git
//! its credentials as `push` does (`project::remote`).

pub mod clone;
pub mod rules;

use serde::{Deserialize, Serialize};

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
}
