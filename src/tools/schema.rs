//! The JSON Schemas clients and the model see: the tools' input and output
//! schemas as published, the schemas sent to the model with
//! `--output-schema`, and the check of its reply against them. Codex does not
//! validate replies; we do.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::responses::RunReport;

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
    portable(&mut v);
    strictify(&mut v);
    v
}

fn strictify(v: &mut Value) {
    match v {
        Value::Object(obj) => {
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

/// The `format` values JSON Schema 2020-12 defines. schemars adds Rust's
/// integer widths (`uint64`, ...), which validators warn about or reject.
const STANDARD_FORMATS: [&str; 19] = [
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Keywords that stay beside `anyOf` when a nullable type is split: they
/// describe the property, not one of its types.
const ANNOTATIONS: [&str; 4] = ["description", "title", "default", "examples"];

/// Makes a generated schema portable, in place: only standard formats (an
/// unsigned width becomes `minimum: 0`), descriptions on one line (doc
/// comments wrap; a schema reader should not see their line breaks).
fn portable(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            if let Some(Value::String(f)) = obj.get("format") {
                if !STANDARD_FORMATS.contains(&f.as_str()) {
                    let unsigned = f.starts_with("uint");
                    obj.remove("format");
                    if unsigned && !obj.contains_key("minimum") {
                        obj.insert("minimum".into(), Value::from(0));
                    }
                }
            }
            if let Some(Value::String(d)) = obj.get_mut("description") {
                *d = d.split_whitespace().collect::<Vec<_>>().join(" ");
            }
            for child in obj.values_mut() {
                portable(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(portable),
        _ => {}
    }
}

/// Splits `"type": [T, "null"]` into `anyOf` branches of one type each, with
/// T's keywords in its branch: clients that map tool schemas onto a
/// single-type dialect (OpenAPI-style function declarations) reject type
/// arrays or drop their constraints.
fn single_types(v: &mut Value) {
    match v {
        Value::Object(obj) => {
            for child in obj.values_mut() {
                single_types(child);
            }
            let Some(Value::Array(types)) = obj.get("type") else {
                return;
            };
            let types: Vec<Value> = types.clone();
            obj.remove("type");
            let keywords: Vec<String> = obj
                .keys()
                .filter(|k| !ANNOTATIONS.contains(&k.as_str()))
                .cloned()
                .collect();
            let mut specific = serde_json::Map::new();
            for k in keywords {
                if let Some(val) = obj.remove(&k) {
                    specific.insert(k, val);
                }
            }
            let branches = types
                .into_iter()
                .map(|t| {
                    let mut branch = serde_json::Map::new();
                    if t != "null" {
                        branch.extend(specific.clone());
                    }
                    branch.insert("type".into(), t);
                    Value::Object(branch)
                })
                .collect();
            obj.insert("anyOf".into(), Value::Array(branches));
        }
        Value::Array(items) => items.iter_mut().for_each(single_types),
        _ => {}
    }
}

/// A tool schema as clients get it: portable, and one type per subschema.
pub fn published(schema: &JsonObject) -> JsonObject {
    let mut v = Value::Object(schema.clone());
    portable(&mut v);
    single_types(&mut v);
    match v {
        Value::Object(obj) => obj,
        _ => schema.clone(),
    }
}

/// Publishes every tool's input and output schema in portable form.
pub fn publish<S>(mut router: ToolRouter<S>) -> ToolRouter<S> {
    for route in router.map.values_mut() {
        let tool = &mut route.attr;
        tool.input_schema = Arc::new(published(&tool.input_schema));
        if let Some(out) = &tool.output_schema {
            tool.output_schema = Some(Arc::new(published(out)));
        }
        if let Some(d) = &tool.description {
            tool.description = Some(d.split_whitespace().collect::<Vec<_>>().join(" ").into());
        }
    }
    router
}

/// Checks a call's arguments against the tool's published input schema,
/// naming every problem found (up to ten), for the calling model to correct.
pub fn check_arguments(schema: &JsonObject, arguments: &JsonObject) -> Result<(), String> {
    let schema = Value::Object(schema.clone());
    // Our own schemas compile; one that did not would reject nothing.
    let Ok(validator) = jsonschema::validator_for(&schema) else {
        return Ok(());
    };
    let instance = Value::Object(arguments.clone());
    let errors: Vec<String> = validator
        .iter_errors(&instance)
        .take(10)
        .map(|e| {
            let at = e.instance_path.to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("`{}`: {e}", at.trim_start_matches('/'))
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!("invalid arguments: {}", errors.join("; ")))
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

/// The output schema of a tool that may answer with `T` or, started in
/// the background, with a [`RunReport`].
pub fn or_background<T: JsonSchema + std::any::Any>() -> Arc<rmcp::model::JsonObject> {
    let done = rmcp::handler::server::common::schema_for_output::<T>();
    let started = rmcp::handler::server::common::schema_for_output::<RunReport>();
    Arc::new(combine(&done, &started))
}

/// Both shapes in one object schema: every property at the root (their
/// names do not overlap), and `anyOf` over the two `required` lists, so a
/// result validates as one or the other and the tool's own fields stay
/// where clients look for them.
fn combine(
    done: &rmcp::model::JsonObject,
    started: &rmcp::model::JsonObject,
) -> rmcp::model::JsonObject {
    let mut out = serde_json::Map::new();
    let mut props = serde_json::Map::new();
    let mut defs = serde_json::Map::new();
    let mut any_of = Vec::new();
    for schema in [done, started] {
        if let Some(Value::Object(p)) = schema.get("properties") {
            props.extend(p.clone());
        }
        for key in ["$defs", "definitions"] {
            if let Some(Value::Object(d)) = schema.get(key) {
                defs.extend(d.clone());
            }
        }
        let required = schema.get("required").cloned().unwrap_or(json!([]));
        any_of.push(json!({ "required": required }));
    }
    out.insert("type".into(), json!("object"));
    out.insert("properties".into(), Value::Object(props));
    out.insert("anyOf".into(), Value::Array(any_of));
    if !defs.is_empty() {
        out.insert("$defs".into(), Value::Object(defs));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::responses::{PlanModelReply, ReviewModelReply};
    use serde::Serialize;
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

    /// Every schema a client or the model sees: each tool's input and output
    /// schema as published, and the model's reply schemas.
    fn all_schemas() -> Vec<(String, Value)> {
        use crate::tools::responses::{FixModelReply, ImplementModelReply};
        let router = publish(crate::tools::CodexTools::tool_router());
        let mut out = Vec::new();
        for tool in router.list_all() {
            let name = tool.name.to_string();
            out.push((
                format!("{name} description"),
                json!({"description": tool.description}),
            ));
            out.push((
                format!("{name} input"),
                Value::Object((*tool.input_schema).clone()),
            ));
            let output = tool.output_schema.expect("every tool has an output schema");
            out.push((format!("{name} output"), Value::Object((*output).clone())));
        }
        out.push(("plan reply".into(), model_schema::<PlanModelReply>()));
        out.push((
            "implement reply".into(),
            model_schema::<ImplementModelReply>(),
        ));
        out.push(("review reply".into(), model_schema::<ReviewModelReply>()));
        out.push(("fix reply".into(), model_schema::<FixModelReply>()));
        out
    }

    #[test]
    fn published_schemas_are_portable_and_read_for_agents() {
        let schemas = all_schemas();
        assert!(schemas.len() >= 4 * 3 + 4, "{}", schemas.len());
        let mut unsigned = 0;
        for (what, schema) in &schemas {
            walk(schema, &mut |o| {
                if let Some(Value::String(f)) = o.get("format") {
                    assert!(
                        STANDARD_FORMATS.contains(&f.as_str()),
                        "{what}: non-standard format {f}"
                    );
                }
                if o.get("minimum") == Some(&json!(0)) {
                    unsigned += 1;
                }
                if let Some(Value::String(d)) = o.get("description") {
                    assert!(!d.contains('\n'), "{what}: line break in {d:?}");
                    assert!(!d.contains("[`"), "{what}: doc link in {d:?}");
                }
                if !what.ends_with("reply") {
                    assert!(
                        !matches!(o.get("type"), Some(Value::Array(_))),
                        "{what}: type array in {o:?}"
                    );
                }
            });
        }
        assert!(unsigned > 10, "unsigned integers keep minimum 0");
    }

    #[test]
    fn nullable_types_split_into_single_type_branches() {
        let schema = json!({"type": "object", "properties": {"files": {
            "description": "Files\nto read.", "default": null,
            "type": ["array", "null"], "items": {"type": "string", "format": "uint64"}
        }}});
        let Value::Object(obj) = schema else {
            unreachable!()
        };
        let out = Value::Object(published(&obj));
        assert_eq!(
            out["properties"]["files"],
            json!({"description": "Files to read.", "default": null, "anyOf": [
                {"type": "array", "items": {"type": "string", "minimum": 0}},
                {"type": "null"}
            ]})
        );
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

    #[test]
    fn background_schemas_accept_both_answers() {
        #[derive(Serialize, JsonSchema)]
        struct Done {
            reply: String,
            inner: Inner,
        }
        #[derive(Serialize, JsonSchema)]
        struct Inner {
            n: u32,
        }
        let schema = Value::Object((*or_background::<Done>()).clone());
        let v = jsonschema::validator_for(&schema).unwrap();
        assert!(v.is_valid(&json!({"reply": "x", "inner": {"n": 1}})));
        let started = RunReport {
            run_id: "a.0".into(),
            agent_id: "a".into(),
            tool: "chat".into(),
            status: "running".into(),
            message: None,
            started_at: None,
            finished_at: None,
            result: None,
            error: None,
        };
        assert!(v.is_valid(&serde_json::to_value(started).unwrap()));
        assert!(!v.is_valid(&json!({"reply": 1})));
        assert_eq!(schema["type"], "object");
    }
}
