//! Reading what Codex sent: the messages, schema and tool outputs of a
//! recorded request body.

use serde_json::Value;

/// A user or assistant message found in a request's `input`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    pub text: String,
}

/// The user/assistant message texts of a request's `input`, in order.
pub fn messages(request: &Value) -> Vec<Message> {
    let items = request["input"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    items
        .iter()
        .filter(|item| item["type"] == "message" || item.get("type").is_none())
        .filter_map(|item| {
            let role = item["role"].as_str()?;
            if role != "user" && role != "assistant" {
                return None;
            }
            let text = match &item["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => return None,
            };
            Some(Message {
                role: role.to_string(),
                text,
            })
        })
        .collect()
}

/// Like [`messages`], without the context blocks Codex injects as user
/// messages (`<environment_context>...</environment_context>` and the like):
/// what the user and the assistant actually said.
pub fn conversation(request: &Value) -> Vec<Message> {
    messages(request)
        .into_iter()
        .filter(|m| !is_injected_context(&m.text))
        .collect()
}

fn is_injected_context(text: &str) -> bool {
    let text = text.trim();
    let Some(tag) = text
        .strip_prefix('<')
        .and_then(|rest| rest.split_once('>'))
        .map(|(tag, _)| tag)
    else {
        return false;
    };
    !tag.is_empty() && text.ends_with(&format!("</{tag}>"))
}

/// The JSON schema of a request's `text.format` when it is a json_schema format.
pub fn output_schema(request: &Value) -> Option<Value> {
    let format = request.pointer("/text/format")?;
    (format["type"] == "json_schema").then(|| format["schema"].clone())
}

/// The outputs of tool calls (function_call_output / custom_tool_call_output) in a request.
pub fn tool_outputs(request: &Value) -> Vec<String> {
    let items = request["input"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    items
        .iter()
        .filter(|i| i["type"] == "function_call_output" || i["type"] == "custom_tool_call_output")
        .map(|i| match &i["output"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect()
}
