//! The CodexAgent CRD's CEL rules (`src/operator/crd_schema.rs`) as the
//! real API server applies them (`CODEX_MCP_TEST_KUBECONFIG`, see
//! tests/support/cluster.rs): bad objects and bad changes refused with the
//! rule's message, good changes let through, and the rules' descriptions
//! shown by `kubectl explain`. No operator runs here: only admission.

mod support;

use std::time::{Duration, Instant};

use codex_mcp::api::crd::CodexAgent;
use codex_mcp::api::crd_schema::{
    CPU_REQUEST_WITHIN_LIMIT, ENV_NOT_RESERVED, MEMORY_REQUEST_WITHIN_LIMIT, NAME_FITS_A_LABEL,
    STORAGE_CLASS_FIXED, STORAGE_SIZE_GROWS, TENANT_FIXED, TOLERATION_EMPTY_KEY_EXISTS,
    TOLERATION_EXISTS_HAS_NO_VALUE, TOLERATION_SECONDS_NO_EXECUTE,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use support::cluster::{self, TestNamespace};
use support::kubectl::{install_crd, kubectl, kubectl_outcome, CRD_FILE};

/// The cluster is shared: a test run of an older checkout may have applied
/// its CRD, without these rules, since this binary installed it.
async fn ensure_rules_are_served() {
    install_crd().await;
    let crds: Api<CustomResourceDefinition> = Api::all(cluster::client());
    let has_rules = |crd: &CustomResourceDefinition| {
        serde_json::to_string(crd).is_ok_and(|s| s.contains(TENANT_FIXED.message))
    };
    let crd = crds.get("codexagents.codexmcp.dev").await.expect("the CRD");
    if !has_rules(&crd) {
        let path = cluster::repo_root().join(CRD_FILE);
        kubectl(&[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &path.to_string_lossy(),
        ]);
    }
}

fn untyped(ns: &TestNamespace) -> Api<DynamicObject> {
    let resource = ApiResource::erase::<CodexAgent>(&());
    Api::namespaced_with(ns.client(), ns.name(), &resource)
}

fn object(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "codexmcp.dev/v1alpha1",
        "kind": "CodexAgent",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("an object")
}

/// The API server's 422 for `result`, with `field` and `message` in it.
fn assert_refused<T: std::fmt::Debug>(
    what: &str,
    result: Result<T, kube::Error>,
    field: &str,
    message: &str,
) {
    match result {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 422, "{what}: {e:?}");
            assert!(
                e.message.contains(field) && e.message.contains(message),
                "{what}: expected {field:?} and {message:?} in {:?}",
                e.message
            );
        }
        other => panic!("{what} should be refused, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_objects_are_refused_with_the_rules_message() {
    ensure_rules_are_served().await;
    let ns = TestNamespace::create("cel-create").await;
    let api = untyped(&ns);
    let long_name = "a".repeat(64);
    let cases = [
        (
            "a cpu request above its limit",
            "cpu",
            json!({"resources": {"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}}}),
            "spec.resources.requests.cpu",
            CPU_REQUEST_WITHIN_LIMIT.message,
        ),
        (
            "a memory request above its limit",
            "memory",
            json!({"resources": {"limits": {"memory": "1Gi"}, "requests": {"memory": "1025Mi"}}}),
            "spec.resources.requests.memory",
            MEMORY_REQUEST_WITHIN_LIMIT.message,
        ),
        (
            "an Exists toleration with a value",
            "exists",
            json!({"pod": {"tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]}}),
            "spec.pod.tolerations[0].value",
            TOLERATION_EXISTS_HAS_NO_VALUE.message,
        ),
        (
            "a toleration without key or Exists",
            "nokey",
            json!({"pod": {"tolerations": [{"operator": "Equal", "value": "v"}]}}),
            "spec.pod.tolerations[0].operator",
            TOLERATION_EMPTY_KEY_EXISTS.message,
        ),
        (
            "tolerationSeconds without NoExecute",
            "seconds",
            json!({"pod": {"tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]}}),
            "spec.pod.tolerations[0].effect",
            TOLERATION_SECONDS_NO_EXECUTE.message,
        ),
        (
            "a reserved env name",
            "env",
            json!({"pod": {"env": [{"name": "A", "value": "1"}, {"name": "CODEX_MCP_WORKSPACE", "value": "/"}]}}),
            "spec.pod.env[1].name",
            ENV_NOT_RESERVED.message,
        ),
        (
            "a name too long for a label",
            &long_name,
            json!({}),
            "",
            NAME_FITS_A_LABEL.message,
        ),
    ];
    for (what, name, spec, field, message) in cases {
        let result = api
            .create(&PostParams::default(), &object(name, spec))
            .await;
        assert_refused(what, result, field, message);
    }
    // Requests equal to limits in other spellings, and requests without
    // limits (the operator's defaults decide), are fine.
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    for spec in [
        json!({"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "1000m", "memory": "1024Mi"}}}),
        json!({"resources": {"requests": {"cpu": "8", "memory": "64Gi"}}}),
        json!({"pod": {"tolerations": [{"operator": "Exists"}, {"key": "k", "effect": "NoExecute", "tolerationSeconds": 5}],
                       "env": [{"name": "GIT_AUTHOR_NAME", "value": "a"}]}}),
    ] {
        api.create(&dry, &object("fine", spec.clone()))
            .await
            .unwrap_or_else(|e| panic!("{spec} should be accepted: {e}"));
    }
    ns.cleanup().await;
}

#[tokio::test]
async fn fixed_fields_stay_fixed_and_the_size_only_grows() {
    ensure_rules_are_served().await;
    let ns = TestNamespace::create("cel-update").await;
    let api = untyped(&ns);
    api.create(
        &PostParams::default(),
        &object(
            "kept",
            json!({"tenant": "acme",
                   "storage": {"size": "1Gi", "storageClassName": "standard"},
                   "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}),
        ),
    )
    .await
    .expect("a valid agent");
    let merge = |spec: Value| {
        let api = api.clone();
        async move {
            api.patch(
                "kept",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": spec})),
            )
            .await
        }
    };
    let refused = [
        (
            "another tenant",
            json!({"tenant": "other"}),
            "spec.tenant",
            TENANT_FIXED.message,
        ),
        (
            "no tenant (default)",
            json!({"tenant": null}),
            "spec.tenant",
            TENANT_FIXED.message,
        ),
        (
            "another storage class",
            json!({"storage": {"storageClassName": "fast"}}),
            "spec.storage.storageClassName",
            STORAGE_CLASS_FIXED.message,
        ),
        (
            "a smaller volume",
            json!({"storage": {"size": "512Mi"}}),
            "spec.storage.size",
            STORAGE_SIZE_GROWS.message,
        ),
        (
            "no size (the default)",
            json!({"storage": {"size": null}}),
            "spec.storage.size",
            STORAGE_SIZE_GROWS.message,
        ),
        (
            "a request above the limit",
            json!({"resources": {"requests": {"memory": "2Gi"}}}),
            "spec.resources.requests.memory",
            MEMORY_REQUEST_WITHIN_LIMIT.message,
        ),
    ];
    for (what, spec, field, message) in refused {
        assert_refused(what, merge(spec).await, field, message);
    }
    for (what, spec) in [
        (
            "a larger volume, spelled otherwise",
            json!({"storage": {"size": "1.5Gi"}}),
        ),
        (
            "the same size in other units",
            json!({"storage": {"size": "1536Mi"}}),
        ),
        (
            "new resources",
            json!({"resources": {"limits": {"cpu": "2", "memory": "2Gi"}, "requests": {"memory": "2Gi"}}}),
        ),
        ("suspension", json!({"suspended": true})),
    ] {
        merge(spec)
            .await
            .unwrap_or_else(|e| panic!("{what} should be accepted: {e}"));
    }

    // Through kubectl, as a person would meet it.
    let err = kubectl_outcome(
        &[
            "-n",
            ns.name(),
            "patch",
            "codexagent",
            "kept",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"tenant":"other"}}"#,
        ],
        None,
    )
    .expect_err("kubectl patch of the tenant is refused");
    assert!(
        err.contains("spec.tenant") && err.contains(TENANT_FIXED.message),
        "{err}"
    );

    // Without a tenant, `default` is the same tenant.
    api.create(&PostParams::default(), &object("plain", json!({})))
        .await
        .expect("an agent without tenant");
    api.patch(
        "plain",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"tenant": "default"}})),
    )
    .await
    .expect("naming the default tenant changes nothing");
    ns.cleanup().await;
}

/// `kubectl explain` reads the published OpenAPI, which follows a CRD
/// change within seconds.
#[tokio::test]
async fn kubectl_explain_shows_the_rules() {
    ensure_rules_are_served().await;
    for (field, says) in [
        ("codexagent.spec.tenant", "Fixed at creation"),
        ("codexagent.spec.storage.size", "never shrink"),
        ("codexagent.spec.storage.storageClassName", "Fixed at"),
        ("codexagent.spec.resources", "in place"),
        ("codexagent.spec.pod.env", "are refused"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = kubectl_outcome(&["explain", field], None).unwrap_or_else(|e| e);
            // It reflows descriptions to its width.
            let flat = out.split_whitespace().collect::<Vec<_>>().join(" ");
            if flat.contains(says) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "kubectl explain {field} does not say {says:?}:\n{out}"
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}
