//! Keeps a running turn's auth.json in step with its environment's login.
//!
//! The one writer of a ChatGPT login's refresh token refreshes it before its
//! access token expires and publishes the new login for runs: on Kubernetes
//! the operator, through the pod's mounted Secret; locally the gateway,
//! through its run login file. A turn that started earlier holds a copy of
//! the old token. When that token expires mid-turn, Codex first re-reads its
//! auth.json and only then tries to refresh the login itself, which it
//! cannot do (the copy has no refresh token). Copying each new login in as
//! it arrives is what lets a turn outlive its access token.

use std::path::PathBuf;

use serde_json::Value;

use crate::credentials::{chatgpt, write_private};

/// How often the mounted login is compared with the turn's copy.
pub const FOLLOW_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

/// Copies an environment's login over a turn's auth.json whenever it changes.
#[derive(Debug)]
pub struct LoginFollower {
    source: PathBuf,
    target: PathBuf,
    installed: Option<Value>,
}

impl LoginFollower {
    /// Follows `source` into `target`, which already holds `installed`.
    pub fn new(source: PathBuf, target: PathBuf, installed: Option<Value>) -> Self {
        Self {
            source,
            target,
            installed,
        }
    }

    /// Copies the environment's login into the turn when it is a different,
    /// usable login; returns whether it did. A missing, unreadable or
    /// incomplete source leaves the turn's copy as it is.
    pub fn sync(&mut self) -> std::io::Result<bool> {
        let bytes = match std::fs::read(&self.source) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let Ok(login) = serde_json::from_slice::<Value>(&bytes) else {
            return Ok(false);
        };
        if self.installed.as_ref() == Some(&login)
            || !chatgpt::is_login(&login)
            || !chatgpt::has_access_token(&login)
        {
            return Ok(false);
        }
        write_private(&self.target, login.to_string().as_bytes())?;
        self.installed = Some(login);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn login(access: &str) -> Value {
        json!({"auth_mode": "chatgpt", "tokens": {"access_token": access, "refresh_token": ""}})
    }

    #[test]
    fn copies_each_new_login_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("mounted.json");
        let target = dir.path().join("auth.json");
        let first = login("first");
        std::fs::write(&source, first.to_string()).unwrap();
        write_private(&target, first.to_string().as_bytes()).unwrap();
        let mut follower = LoginFollower::new(source.clone(), target.clone(), Some(first.clone()));
        let held = || serde_json::from_slice::<Value>(&std::fs::read(&target).unwrap()).unwrap();

        assert!(!follower.sync().unwrap(), "unchanged: nothing to copy");

        let second = login("second");
        std::fs::write(&source, second.to_string()).unwrap();
        assert!(follower.sync().unwrap());
        assert_eq!(held(), second);
        assert!(!follower.sync().unwrap(), "copied once");

        // What is not a usable login never replaces the turn's copy.
        for bad in [
            "{half a file".to_owned(),
            json!({"auth_mode": "apikey", "OPENAI_API_KEY": "sk"}).to_string(),
            login("").to_string(),
        ] {
            std::fs::write(&source, bad).unwrap();
            assert!(!follower.sync().unwrap());
            assert_eq!(held(), second);
        }
        std::fs::remove_file(&source).unwrap();
        assert!(!follower.sync().unwrap());
        assert_eq!(held(), second);
    }
}
