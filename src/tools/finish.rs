//! Turning a run's outcome and the model's reply into a tool's result:
//! shared by the calls themselves and by a background result rebuilt after
//! its gateway ended before storing it.

use serde::de::DeserializeOwned;

use super::responses::{
    self, merge_changes, ChatResponse, FixModelReply, FixResponse, ImplementModelReply,
    ImplementResponse, PlanResponse, ReviewResponse,
};
use super::schema::{model_schema, parse_reply};
use crate::agent::AgentId;
use crate::codex::RunOutcome;
use crate::runs::TurnResult;

pub(super) fn finish_implement(reply: ImplementModelReply, turn: TurnResult) -> ImplementResponse {
    let mut warnings = reply.warnings;
    let changes = merge_changes(turn.outcome.changes, &reply.changes, &mut warnings);
    ImplementResponse {
        summary: reply.summary,
        changes,
        dependencies_added: reply.dependencies_added,
        tests_needed: reply.tests_needed,
        integration_notes: reply.integration_notes,
        next_steps: reply.next_steps,
        warnings,
        checkpoint: None,
        run: turn.info,
    }
}

pub(super) fn finish_fix(reply: FixModelReply, turn: TurnResult) -> FixResponse {
    let mut warnings = reply.warnings.clone();
    let claimed: Vec<responses::ChangeExplanation> = reply
        .fixes
        .iter()
        .flat_map(|f| {
            f.files_to_change
                .iter()
                .map(|file| responses::ChangeExplanation {
                    file: file.clone(),
                    explanation: f.solution.clone(),
                })
        })
        .collect();
    let changes = merge_changes(turn.outcome.changes, &claimed, &mut warnings);
    FixResponse {
        fix: FixModelReply { warnings, ..reply },
        changes,
        checkpoint: None,
        run: turn.info,
    }
}

/// A background call's tool result made from its (first) run's outcome,
/// for a run whose gateway ended before storing it: no repair turn then.
pub(super) fn rebuild(
    tool: &str,
    outcome: &RunOutcome,
    agent: &AgentId,
) -> Result<serde_json::Value, String> {
    if !outcome.ok {
        return Err(outcome
            .error
            .clone()
            .unwrap_or_else(|| "codex run failed".into()));
    }
    let text = outcome.final_message.clone().unwrap_or_default();
    let turn = TurnResult {
        outcome: outcome.clone(),
        info: responses::RunInfo {
            agent_id: agent.name.to_string(),
            thread_id: outcome.thread_id.clone(),
            duration_ms: outcome.duration_ms,
            input_tokens: outcome.usage.input_tokens,
            output_tokens: outcome.usage.output_tokens,
            turns: 1,
            notes: vec!["the run finished while the gateway restarted".into()],
        },
    };
    fn parsed<R: schemars::JsonSchema + DeserializeOwned>(text: &str) -> Result<R, String> {
        parse_reply::<R>(&model_schema::<R>(), text).map_err(|e| e.to_string())
    }
    let value = match tool {
        "plan" => serde_json::to_value(PlanResponse {
            plan: parsed(&text)?,
            run: turn.info,
        }),
        "review" => serde_json::to_value(ReviewResponse {
            review: parsed(&text)?,
            run: turn.info,
        }),
        "implement" => serde_json::to_value(finish_implement(parsed(&text)?, turn)),
        "fix" => serde_json::to_value(finish_fix(parsed(&text)?, turn)),
        _ => serde_json::to_value(ChatResponse {
            reply: text,
            run: turn.info,
        }),
    };
    value.map_err(|e| e.to_string())
}
