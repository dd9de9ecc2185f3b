use super::*;

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
