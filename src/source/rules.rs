//! Which repositories a tenant's agents may be created on
//! (`CODEX_MCP_REPOSITORIES`): one line per tenant,
//!
//! ```text
//! # TENANT  SECRET  PATTERN [PATTERN...]  [default=URL[#REF]]
//! default   git-acme  https://git.example.com/acme/*  default=https://git.example.com/acme/app.git#main
//! ```
//!
//! SECRET is the Secret (in the agents' namespace) with the credentials
//! for those repositories, `-` for none. In a PATTERN, `*` stands for any
//! characters but `/` and `**` for any characters. A tenant without a line
//! may not choose repositories; a `default=` gives its new agents that
//! repository when the caller names none.

use std::collections::HashMap;
use std::path::Path;

use super::{Repository, UrlError};
use crate::agent::Tenant;

/// The repository a new agent gets and the Secret for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub repository: Repository,
    pub secret: Option<String>,
    /// The caller named it (`X-Codex-Repository`): an existing agent on
    /// another repository is an error. A tenant's default only applies to
    /// agents being created.
    pub requested: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct TenantRule {
    secret: Option<String>,
    patterns: Vec<String>,
    default: Option<Repository>,
}

/// Every tenant's rule.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepositoryRules {
    tenants: HashMap<String, TenantRule>,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("reading the repository rules {0}: {1}")]
    Read(String, #[source] std::io::Error),
    #[error("repository rules line {line}: {why}")]
    Line { line: usize, why: String },
}

impl RepositoryRules {
    pub fn load(path: &Path) -> Result<Self, RulesError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| RulesError::Read(path.display().to_string(), e))?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, RulesError> {
        let mut tenants = HashMap::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| RulesError::Line { line: i + 1, why };
            let mut words = line.split_whitespace();
            let tenant = words.next().unwrap_or_default();
            Tenant::parse(tenant).map_err(|e| bad(format!("tenant {tenant:?}: {e}")))?;
            let secret = match words.next() {
                Some("-") => None,
                Some(s) => Some(s.to_owned()),
                None => return Err(bad("expected TENANT SECRET PATTERN...".into())),
            };
            let mut rule = TenantRule {
                secret,
                patterns: Vec::new(),
                default: None,
            };
            for word in words {
                match word.strip_prefix("default=") {
                    Some(spec) => {
                        rule.default = Some(
                            Repository::parse(spec)
                                .map_err(|e| bad(format!("default {spec:?}: {e}")))?,
                        );
                    }
                    None => rule.patterns.push(word.to_owned()),
                }
            }
            if rule.patterns.is_empty() {
                return Err(bad(format!("tenant {tenant} has no repository pattern")));
            }
            if let Some(d) = &rule.default {
                if !rule.patterns.iter().any(|p| glob(p, &d.url)) {
                    return Err(bad(format!(
                        "the default {} matches none of the tenant's patterns",
                        d.url
                    )));
                }
            }
            if tenants.insert(tenant.to_owned(), rule).is_some() {
                return Err(bad(format!("tenant {tenant} has a line already")));
            }
        }
        Ok(Self { tenants })
    }

    /// The source for a tenant's new agent: what the caller asked for
    /// (checked against the tenant's patterns), else the tenant's default.
    pub fn resolve(&self, tenant: &Tenant, asked: Option<&str>) -> Result<Option<Source>, String> {
        let rule = self.tenants.get(tenant.as_str());
        let Some(asked) = asked else {
            return Ok(rule.and_then(|r| {
                r.default.clone().map(|repository| Source {
                    repository,
                    secret: r.secret.clone(),
                    requested: false,
                })
            }));
        };
        let repository = Repository::parse(asked).map_err(|e: UrlError| e.to_string())?;
        let Some(rule) = rule else {
            return Err(format!(
                "tenant {tenant} may not choose repositories: the gateway's repository rules \
                 (CODEX_MCP_REPOSITORIES) have no line for it"
            ));
        };
        if !rule.patterns.iter().any(|p| glob(p, &repository.url)) {
            return Err(format!(
                "{} is not among the repositories tenant {tenant} may use ({})",
                repository.url,
                rule.patterns.join(", ")
            ));
        }
        Ok(Some(Source {
            repository,
            secret: rule.secret.clone(),
            requested: true,
        }))
    }
}

/// `*` matches a run of characters without `/`, `**` any run.
fn glob(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match p {
            [] => t.is_empty(),
            [b'*', b'*', rest @ ..] => (0..=t.len()).any(|i| go(rest, &t[i..])),
            [b'*', rest @ ..] => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != b'/')
                .any(|i| go(rest, &t[i..])),
            [c, rest @ ..] => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "
# comment
default git-acme https://git.example.com/acme/* default=https://git.example.com/acme/app.git#main
team - https://git.example.com/** git@git.example.com:team/*
";

    fn t(name: &str) -> Tenant {
        Tenant::parse(name).unwrap()
    }

    #[test]
    fn patterns_match_within_and_across_path_segments() {
        assert!(glob("https://h/acme/*", "https://h/acme/app.git"));
        assert!(!glob("https://h/acme/*", "https://h/acme/sub/app.git"));
        assert!(!glob("https://h/acme/*", "https://h/acmex/app"));
        assert!(glob("https://h/**", "https://h/a/b/c"));
        assert!(glob("git@h:team/*", "git@h:team/x.git"));
    }

    #[test]
    fn a_tenant_gets_what_it_asks_for_within_its_patterns_or_its_default() {
        let rules = RepositoryRules::parse(RULES).unwrap();
        let s = rules
            .resolve(
                &t("default"),
                Some("https://git.example.com/acme/lib.git#v2"),
            )
            .unwrap()
            .unwrap();
        assert_eq!(s.repository.ref_.as_deref(), Some("v2"));
        assert_eq!(s.secret.as_deref(), Some("git-acme"));
        assert!(s.requested);
        let d = rules.resolve(&t("default"), None).unwrap().unwrap();
        assert_eq!(
            d.repository.display(),
            "https://git.example.com/acme/app.git#main"
        );
        assert!(!d.requested);
        assert_eq!(rules.resolve(&t("team"), None).unwrap(), None);
        let s = rules
            .resolve(&t("team"), Some("git@git.example.com:team/x.git"))
            .unwrap()
            .unwrap();
        assert_eq!(s.secret, None);
    }

    #[test]
    fn repositories_outside_the_rules_are_refused_with_the_reason() {
        let rules = RepositoryRules::parse(RULES).unwrap();
        let e = rules
            .resolve(&t("default"), Some("https://evil.example/acme/app"))
            .unwrap_err();
        assert!(
            e.contains("not among the repositories tenant default may use"),
            "{e}"
        );
        let e = rules
            .resolve(&t("other"), Some("https://git.example.com/acme/app"))
            .unwrap_err();
        assert!(e.contains("have no line for it"), "{e}");
        let e = rules
            .resolve(
                &t("default"),
                Some("https://u:tok@git.example.com/acme/app"),
            )
            .unwrap_err();
        assert!(
            e.contains("must not carry credentials") && !e.contains("tok@"),
            "{e}"
        );
        assert_eq!(
            RepositoryRules::default().resolve(&t("default"), None),
            Ok(None)
        );
    }

    #[test]
    fn bad_rule_files_name_the_line() {
        for (text, want) in [
            ("default git-acme\n", "no repository pattern"),
            ("Bad! s https://h/*\n", "tenant"),
            (
                "default s https://h/a/* default=https://other/x\n",
                "matches none",
            ),
            (
                "default s https://h/*\ndefault s https://h/*\n",
                "has a line already",
            ),
        ] {
            let e = RepositoryRules::parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
        }
    }
}
