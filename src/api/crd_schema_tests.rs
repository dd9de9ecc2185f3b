use super::*;
use crate::api::crd::{BYTES_PATTERN, CPU_PATTERN};

#[test]
fn names_and_columns() {
    let crd = definition();
    let names = &crd.spec.names;
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("codexagents.codexmcp.dev")
    );
    assert_eq!(names.short_names.as_deref(), Some(&["cxa".to_string()][..]));
    assert_eq!(
        names.categories.as_deref(),
        Some(&["codex".to_string()][..])
    );
    let version = &crd.spec.versions[0];
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Phase",
            "Ready",
            "Pod",
            "Runs",
            "Active",
            "Input Tokens",
            "Output Tokens",
            "Last Activity",
            "Age"
        ]
    );
    assert!(version
        .subresources
        .as_ref()
        .is_some_and(|s| s.status.is_some()));
}

#[test]
fn schema_carries_the_validation() {
    let schema =
        serde_json::to_value(definition().spec.versions[0].schema.clone()).expect("schema");
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"];
    assert_eq!(
        spec["storage"]["properties"]["size"]["pattern"],
        BYTES_PATTERN
    );
    assert_eq!(
        spec["resources"]["properties"]["limits"]["properties"]["cpu"]["pattern"],
        CPU_PATTERN
    );
    let modes = &spec["codex"]["properties"]["approvalMode"]["enum"];
    assert_eq!(
        modes,
        &serde_json::json!([
            "suggest",
            "auto-edit",
            "full-auto",
            "danger-full-access",
            "external"
        ])
    );
    assert_eq!(spec["idleTimeoutSeconds"]["minimum"], 0.0);
}

#[test]
fn quantity_patterns_accept_and_refuse() {
    let cpu = regex_lite(CPU_PATTERN);
    for ok in ["4", "0.5", "500m", "4.0"] {
        assert!(cpu(ok), "{ok}");
    }
    for bad in ["-1", "4 cores", "1e3", "500Mi", ""] {
        assert!(!cpu(bad), "{bad}");
    }
    let bytes = regex_lite(BYTES_PATTERN);
    for ok in ["10Gi", "512Mi", "1G", "100"] {
        assert!(bytes(ok), "{ok}");
    }
    for bad in ["-1Gi", "2048m", "ten", "1.5.5Gi", "1gb"] {
        assert!(!bytes(bad), "{bad}");
    }
}

/// The patterns are simple enough that a JSON-schema validator is the
/// faithful check of what the API server will do with them.
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
    let schema = serde_json::json!({"type": "string", "pattern": pattern});
    let validator = jsonschema::validator_for(&schema).expect("pattern compiles");
    move |s| validator.is_valid(&serde_json::json!(s))
}

fn rules_at(schema: &serde_json::Value) -> Vec<(String, String)> {
    schema["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["rule"].as_str().unwrap_or_default().to_string(),
                r["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn cel_rules_sit_where_they_apply() {
    let schema =
        serde_json::to_value(definition().spec.versions[0].schema.clone()).expect("schema");
    let root = &schema["openAPIV3Schema"];
    let spec = &root["properties"]["spec"];
    let pod = &spec["properties"]["pod"]["properties"];
    let expected = [
        (root, vec![&NAME_FITS_A_LABEL]),
        (
            spec,
            vec![
                &SOURCE_FIXED,
                &TENANT_FIXED,
                &STORAGE_CLASS_FIXED,
                &STORAGE_SIZE_GROWS,
            ],
        ),
        (
            &spec["properties"]["source"]["properties"]["git"],
            vec![&SOURCE_URL_NO_CREDENTIALS, &SOURCE_URL_FORM],
        ),
        (
            &spec["properties"]["resources"],
            vec![&CPU_REQUEST_WITHIN_LIMIT, &MEMORY_REQUEST_WITHIN_LIMIT],
        ),
        (&pod["env"]["items"], vec![&ENV_NOT_RESERVED]),
        (
            &pod["tolerations"]["items"],
            vec![
                &TOLERATION_EXISTS_HAS_NO_VALUE,
                &TOLERATION_EMPTY_KEY_EXISTS,
                &TOLERATION_SECONDS_NO_EXECUTE,
            ],
        ),
    ];
    let mut placed = 0;
    for (at, rules) in expected {
        let want: Vec<_> = rules
            .iter()
            .map(|r| (r.rule.to_string(), r.message.to_string()))
            .collect();
        assert_eq!(rules_at(at), want);
        placed += want.len();
    }
    assert_eq!(placed, RULES.len(), "every rule is checked above");
    // Transition rules are the ones about fixed fields.
    for rule in RULES {
        assert_eq!(
            rule.rule.contains("oldSelf"),
            rule.reason == Some("FieldValueForbidden") && rule.path == ["spec"],
            "{}",
            rule.rule
        );
        assert!(!rule.message.contains('\n') && !rule.rule.contains('\n'));
    }
    assert_eq!(pod["tolerations"]["maxItems"], 64);
    assert_eq!(
        spec["properties"]["storage"]["properties"]["size"]["pattern"], BYTES_PATTERN,
        "the rules come on top of the OpenAPI validation"
    );
}

#[test]
fn descriptions_name_the_rules() {
    let schema =
        serde_json::to_value(definition().spec.versions[0].schema.clone()).expect("schema");
    let spec = &schema["openAPIV3Schema"]["properties"]["spec"]["properties"];
    // As `kubectl explain` reflows it.
    let description = |v: &serde_json::Value| {
        v["description"]
            .as_str()
            .unwrap_or_default()
            .replace('\n', " ")
    };
    assert!(description(&spec["tenant"]).contains("Fixed at creation"));
    let storage = &spec["storage"]["properties"];
    assert!(description(&storage["storageClassName"]).contains("Fixed at creation"));
    assert!(description(&storage["size"]).contains("never shrink"));
    assert!(description(&spec["resources"]).contains("in place"));
    assert!(description(&spec["resources"]["properties"]["requests"]).contains("may not exceed"));
}
