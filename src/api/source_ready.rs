//! How the `source` init container reports a clone and the operator reads
//! it: the `SourceReady` condition's reasons and the termination message
//! that carries one.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
