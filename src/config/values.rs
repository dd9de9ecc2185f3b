//! The command line's spelling of the domain's value enums, so the modules
//! that own them need no clap.

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::project::ProjectMode;
use crate::telemetry::LogFormat;

impl ValueEnum for LogFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Text, Self::Json]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(PossibleValue::new(match self {
            Self::Text => "text",
            Self::Json => "json",
        }))
    }
}

impl ValueEnum for ProjectMode {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Worktree, Self::InPlace]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Self::Worktree => PossibleValue::new("worktree").help(
                "In a git worktree on the branch `codex/NAME`; the user's working tree is never touched",
            ),
            Self::InPlace => {
                PossibleValue::new("in-place").help("In the repository's working tree itself")
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flag's spelling is the one the project's settings files use.
    #[test]
    fn project_modes_are_spelled_as_serialized() {
        for mode in ProjectMode::value_variants() {
            let name = mode.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(serde_json::to_value(mode).unwrap(), name);
        }
    }
}
