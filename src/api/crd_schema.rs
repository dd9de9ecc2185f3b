//! The CodexAgent CRD as the API server gets it: the derived schema, tidied,
//! plus the CEL rules (`x-kubernetes-validations`) that OpenAPI validation
//! cannot express: fields that must not change once set, and fields that
//! must agree with each other. The API server refuses an object breaking
//! one with the rule's message, before the operator ever sees it.
//!
//! Supported API servers are 1.35 and later: CEL rules, transition rules
//! (`oldSelf`) and the quantity library are all there.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
    ValidationRule,
};

use super::crd::CodexAgent;

/// A CEL rule and where in the schema it sits. `path` walks properties from
/// the root; `[]` steps into a list's items.
pub struct Rule {
    pub path: &'static [&'static str],
    pub rule: &'static str,
    pub message: &'static str,
    /// Relative to `path`, so the API server names the offending field.
    pub field_path: Option<&'static str>,
    pub reason: Option<&'static str>,
}

/// `FieldValueForbidden`: a well-formed value that is not allowed here (a
/// change to a fixed field).
const FORBIDDEN: Option<&str> = Some("FieldValueForbidden");

/// The tenant owns the agent's conversation and workspace, and the gateway
/// keeps tenants apart by it: moving an agent would hand them to another
/// tenant. Empty and `default` are the same tenant.
pub const TENANT_FIXED: Rule = Rule {
    path: &["spec"],
    rule: "(has(self.tenant) && self.tenant != '' ? self.tenant : 'default') == \
           (has(oldSelf.tenant) && oldSelf.tenant != '' ? oldSelf.tenant : 'default')",
    message: "spec.tenant cannot be changed: the agent's conversation and workspace belong to the tenant it was created for",
    field_path: Some(".tenant"),
    reason: FORBIDDEN,
};

/// A claim's storage class is immutable, so a changed one would be silently
/// ignored by the operator; refusing it says so.
pub const STORAGE_CLASS_FIXED: Rule = Rule {
    path: &["spec"],
    rule: "(has(self.storage) && has(self.storage.storageClassName) ? self.storage.storageClassName : '') == \
           (has(oldSelf.storage) && has(oldSelf.storage.storageClassName) ? oldSelf.storage.storageClassName : '')",
    message: "spec.storage.storageClassName cannot be changed: the workspace volume keeps the class it was created with",
    field_path: Some(".storage.storageClassName"),
    reason: FORBIDDEN,
};

/// Volumes grow (when their class allows expansion) but never shrink, and
/// dropping the size would mean the operator's default, possibly smaller.
pub const STORAGE_SIZE_GROWS: Rule = Rule {
    path: &["spec"],
    rule: "!has(oldSelf.storage) || !has(oldSelf.storage.size) || \
           (has(self.storage) && has(self.storage.size) && \
           quantity(self.storage.size).compareTo(quantity(oldSelf.storage.size)) >= 0)",
    message: "spec.storage.size may grow but not shrink or be removed: a workspace volume cannot be made smaller",
    field_path: Some(".storage.size"),
    reason: FORBIDDEN,
};

/// The API server would refuse such a pod; refusing the spec says why at
/// once instead of leaving the agent Failed.
pub const CPU_REQUEST_WITHIN_LIMIT: Rule = Rule {
    path: &["spec", "resources"],
    rule: "!has(self.requests) || !has(self.requests.cpu) || !has(self.limits) || !has(self.limits.cpu) || \
           quantity(self.requests.cpu).compareTo(quantity(self.limits.cpu)) <= 0",
    message: "spec.resources.requests.cpu must not exceed spec.resources.limits.cpu",
    field_path: Some(".requests.cpu"),
    reason: None,
};

pub const MEMORY_REQUEST_WITHIN_LIMIT: Rule = Rule {
    path: &["spec", "resources"],
    rule: "!has(self.requests) || !has(self.requests.memory) || !has(self.limits) || !has(self.limits.memory) || \
           quantity(self.requests.memory).compareTo(quantity(self.limits.memory)) <= 0",
    message: "spec.resources.requests.memory must not exceed spec.resources.limits.memory",
    field_path: Some(".requests.memory"),
    reason: None,
};

/// The name becomes a label value on the pod and the agent's children.
pub const NAME_FITS_A_LABEL: Rule = Rule {
    path: &[],
    rule: "size(self.metadata.name) <= 63",
    message:
        "metadata.name must be at most 63 characters: it becomes a label value on the agent's pod",
    field_path: None,
    reason: None,
};

/// The agent's environment is built on these; an override used to be
/// dropped silently.
pub const ENV_NOT_RESERVED: Rule = Rule {
    path: &["spec", "pod", "env", "[]"],
    rule: "!(self.name in ['HOME', 'CODEX_HOME', 'TMPDIR']) && !self.name.startsWith('CODEX_MCP_')",
    message: "spec.pod.env may not set HOME, CODEX_HOME, TMPDIR or CODEX_MCP_* variables: the operator sets them",
    field_path: Some(".name"),
    reason: FORBIDDEN,
};

/// The pod's own toleration rules, checked at admission instead of when the
/// pod is refused.
pub const TOLERATION_EXISTS_HAS_NO_VALUE: Rule = Rule {
    path: &["spec", "pod", "tolerations", "[]"],
    rule:
        "!has(self.operator) || self.operator != 'Exists' || !has(self.value) || self.value == ''",
    message: "a toleration with operator Exists must not have a value",
    field_path: Some(".value"),
    reason: None,
};

pub const TOLERATION_EMPTY_KEY_EXISTS: Rule = Rule {
    path: &["spec", "pod", "tolerations", "[]"],
    rule: "(has(self.key) && self.key != '') || (has(self.operator) && self.operator == 'Exists')",
    message: "a toleration without a key must have operator Exists (it then tolerates every taint)",
    field_path: Some(".operator"),
    reason: None,
};

pub const TOLERATION_SECONDS_NO_EXECUTE: Rule = Rule {
    path: &["spec", "pod", "tolerations", "[]"],
    rule: "!has(self.tolerationSeconds) || (has(self.effect) && self.effect == 'NoExecute')",
    message: "tolerationSeconds applies only to a toleration with effect NoExecute",
    field_path: Some(".effect"),
    reason: None,
};

/// The workspace was cloned from the source: another one would not be
/// cloned, and dropping it would leave `push` without its remote.
pub const SOURCE_FIXED: Rule = Rule {
    path: &["spec"],
    rule: "!has(oldSelf.source) || (has(self.source) && self.source == oldSelf.source)",
    message: "spec.source cannot be changed or removed once set: the agent's workspace is cloned from it; create another agent for another repository",
    field_path: Some(".source"),
    reason: FORBIDDEN,
};

/// A token in the URL would sit in the pod spec, the status and every log
/// that prints the URL.
pub const SOURCE_URL_NO_CREDENTIALS: Rule = Rule {
    path: &["spec", "source", "git"],
    rule: "!self.url.matches('^[A-Za-z][A-Za-z0-9+.-]*://[^/?#@]*:[^/?#@]*@') && !self.url.matches('^https?://[^/?#]*@')",
    message: "spec.source.git.url must not carry credentials (user:token@host): put them in the Secret that secretRef names",
    field_path: Some(".url"),
    reason: None,
};

pub const SOURCE_URL_FORM: Rule = Rule {
    path: &["spec", "source", "git"],
    rule: "self.url.matches('^(https?|ssh)://[^/?#]+/[^ ]+$') || self.url.matches('^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/ -][^ ]*$')",
    message: "spec.source.git.url must be an https://, http:// or ssh:// URL with a path, or user@host:path",
    field_path: Some(".url"),
    reason: None,
};

pub const RULES: &[Rule] = &[
    NAME_FITS_A_LABEL,
    SOURCE_FIXED,
    SOURCE_URL_NO_CREDENTIALS,
    SOURCE_URL_FORM,
    TENANT_FIXED,
    STORAGE_CLASS_FIXED,
    STORAGE_SIZE_GROWS,
    CPU_REQUEST_WITHIN_LIMIT,
    MEMORY_REQUEST_WITHIN_LIMIT,
    ENV_NOT_RESERVED,
    TOLERATION_EXISTS_HAS_NO_VALUE,
    TOLERATION_EMPTY_KEY_EXISTS,
    TOLERATION_SECONDS_NO_EXECUTE,
];

/// Bounds on lists that carry rules: the API server estimates a rule's cost
/// from the largest list it could see, and these are far beyond any real pod.
const LIST_BOUNDS: &[(&[&str], i64)] = &[
    (&["spec", "pod", "env"], 256),
    (&["spec", "pod", "tolerations"], 64),
];

/// The CustomResourceDefinition, tidied for the API server and with its CEL
/// rules: optional enums are generated with `null` among their values,
/// which is dropped so that the "supported values" message lists only real
/// ones (`nullable` still allows null); empty-string defaults are left out
/// (server-side apply turns them into null, which the schema then refuses;
/// deserializing fills them in anyway).
pub fn definition() -> CustomResourceDefinition {
    use kube::CustomResourceExt;
    let mut crd = CodexAgent::crd();
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            tidy_schema(schema);
            for (path, max) in LIST_BOUNDS {
                at(schema, path).max_items = Some(*max);
            }
            for rule in RULES {
                at(schema, rule.path)
                    .x_kubernetes_validations
                    .get_or_insert_with(Vec::new)
                    .push(ValidationRule {
                        rule: rule.rule.into(),
                        message: Some(rule.message.into()),
                        field_path: rule.field_path.map(Into::into),
                        reason: rule.reason.map(Into::into),
                        ..ValidationRule::default()
                    });
            }
        }
    }
    crd
}

/// The schema at `path`. A path that is not there is a bug in this file
/// (a renamed field), caught by the schema's unit tests.
fn at<'a>(schema: &'a mut JSONSchemaProps, path: &[&str]) -> &'a mut JSONSchemaProps {
    path.iter().fold(schema, |node, step| {
        if *step == "[]" {
            match node.items.as_mut() {
                Some(JSONSchemaPropsOrArray::Schema(items)) => items,
                _ => panic!("the CRD schema has no list items at {path:?}"),
            }
        } else {
            node.properties
                .as_mut()
                .and_then(|p| p.get_mut(*step))
                .unwrap_or_else(|| panic!("the CRD schema has no {step:?} in {path:?}"))
        }
    })
}

fn tidy_schema(schema: &mut JSONSchemaProps) {
    if let Some(values) = schema.enum_.as_mut() {
        values.retain(|v| !v.0.is_null());
    }
    if schema.default.as_ref().is_some_and(|d| d.0 == "") {
        schema.default = None;
    }
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        tidy_schema(child);
    }
    if let Some(JSONSchemaPropsOrArray::Schema(items)) = schema.items.as_mut() {
        tidy_schema(items);
    }
    if let Some(JSONSchemaPropsOrBool::Schema(extra)) = schema.additional_properties.as_mut() {
        tidy_schema(extra);
    }
}

/// The CRD as YAML, as `codex-mcp crd` prints it and `crds/` holds it.
pub fn crd_yaml() -> Result<String, serde_saphyr::SerializeError> {
    let body = serde_saphyr::to_string(&definition())?;
    Ok(format!(
        "# Generated by `codex-mcp crd`; do not edit by hand.\n---\n{body}"
    ))
}

#[cfg(test)]
#[path = "crd_schema_tests.rs"]
mod tests;
