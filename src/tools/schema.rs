//! The JSON Schemas sent to the model with `--output-schema`, and the check
//! of its reply against them. Codex does not validate replies; we do.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a model reply was not accepted.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReplyError {
    #[error("the model gave no reply")]
    Empty,
    #[error("the model's reply is not JSON: {0}")]
    NotJson(String),
    #[error("the model's reply does not match the schema: {}", .0.join("; "))]
    SchemaMismatch(Vec<String>),
}

/// The schema of `T` in the strict form structured outputs require: every
/// property required (optional ones are nullable instead), no additional
/// properties, no number formats the API does not know.
pub fn model_schema<T: JsonSchema>() -> Value {
    let mut v = serde_json::to_value(schemars::schema_for!(T)).expect("schema serializes");
    if let Some(obj) = v.as_object_mut() {
        obj.remove("$schema");
    }
    strictify(&mut v);
    v
}

fn strictify(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            if let Some(Value::String(f)) = obj.get("format") {
                if matches!(
                    f.as_str(),
                    "int8"
                        | "int16"
                        | "int32"
                        | "int64"
                        | "uint"
                        | "uint8"
                        | "uint16"
                        | "uint32"
                        | "uint64"
                        | "float"
                        | "double"
                ) {
                    obj.remove("format");
                }
            }
            if let Some(Value::Object(props)) = obj.get("properties") {
                let keys: Vec<Value> = props.keys().cloned().map(Value::String).collect();
                obj.insert("required".into(), Value::Array(keys));
                obj.insert("additionalProperties".into(), Value::Bool(false));
            }
            for child in obj.values_mut() {
                strictify(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(strictify),
        _ => {}
    }
}

/// Models sometimes wrap JSON in a Markdown fence even under a schema; the
/// fence is presentation, not content, so it is dropped before parsing.
fn strip_fence(text: &str) -> &str {
    let t = text.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    let rest = rest.strip_prefix("json").unwrap_or(rest);
    rest.strip_suffix("```").unwrap_or(rest).trim()
}

/// Parses and validates a reply against `schema`, then deserializes it.
pub fn parse_reply<T: DeserializeOwned>(schema: &Value, text: &str) -> Result<T, ReplyError> {
    let body = strip_fence(text);
    if body.is_empty() {
        return Err(ReplyError::Empty);
    }
    let value: Value =
        serde_json::from_str(body).map_err(|e| ReplyError::NotJson(e.to_string()))?;
    let validator = jsonschema::validator_for(schema).expect("our schemas are valid");
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .take(10)
        .map(|e| {
            let at = e.instance_path.to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("at {at}: {e}")
            }
        })
        .collect();
    if !errors.is_empty() {
        return Err(ReplyError::SchemaMismatch(errors));
    }
    serde_json::from_value(value).map_err(|e| ReplyError::SchemaMismatch(vec![e.to_string()]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::responses::{PlanModelReply, ReviewModelReply};
    use serde_json::json;

    fn walk(v: &Value, f: &mut impl FnMut(&serde_json::Map<String, Value>)) {
        match v {
            Value::Object(o) => {
                f(o);
                o.values().for_each(|c| walk(c, f));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, f)),
            _ => {}
        }
    }

    #[test]
    fn model_schemas_are_strict() {
        let s = model_schema::<ReviewModelReply>();
        assert!(s.get("$schema").is_none());
        let mut objects = 0;
        walk(&s, &mut |o| {
            if let Some(Value::Object(props)) = o.get("properties") {
                objects += 1;
                assert_eq!(o["additionalProperties"], json!(false));
                let req = o["required"].as_array().unwrap();
                assert_eq!(req.len(), props.len(), "all properties required");
            }
            if let Some(f) = o.get("format") {
                panic!("format {f} left in schema");
            }
        });
        assert!(objects >= 2, "root and ReviewComment");
        assert_eq!(s["properties"]["security_score"]["maximum"], json!(10));
    }

    fn review(score: u8) -> Value {
        json!({
            "overall_rating": "good",
            "comments": [{"file": "a.py", "line_range": "1-2", "severity": "minor",
                          "category": "style", "message": "m", "suggestion": "s"}],
            "security_score": score, "performance_score": 7, "maintainability_score": 6,
            "summary": "fine", "recommendations": []
        })
    }

    #[test]
    fn accepts_a_matching_reply_even_in_a_fence() {
        let s = model_schema::<ReviewModelReply>();
        let r: ReviewModelReply = parse_reply(&s, &review(8).to_string()).unwrap();
        assert_eq!(r.security_score, 8);
        let fenced = format!("```json\n{}\n```", review(9));
        assert_eq!(
            parse_reply::<ReviewModelReply>(&s, &fenced)
                .unwrap()
                .security_score,
            9
        );
    }

    #[test]
    fn rejects_mismatches_with_the_reason() {
        let s = model_schema::<ReviewModelReply>();
        let err = parse_reply::<ReviewModelReply>(&s, &review(11).to_string()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("security_score"), "{msg}");
        let mut missing = review(5);
        missing.as_object_mut().unwrap().remove("summary");
        assert!(matches!(
            parse_reply::<ReviewModelReply>(&s, &missing.to_string()),
            Err(ReplyError::SchemaMismatch(_))
        ));
        let mut extra = review(5);
        extra["invented"] = json!(1);
        assert!(parse_reply::<ReviewModelReply>(&s, &extra.to_string()).is_err());
        assert!(matches!(
            parse_reply::<PlanModelReply>(
                &model_schema::<PlanModelReply>(),
                "Sure! Here is a plan"
            ),
            Err(ReplyError::NotJson(_))
        ));
        assert_eq!(
            parse_reply::<PlanModelReply>(&json!({}), "  "),
            Err(ReplyError::Empty)
        );
    }
}
