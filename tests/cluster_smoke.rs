//! Acceptance test of the test cluster itself, through kube-rs: what the
//! operator and the kube backend rely on works there. A non-root pod mounts a
//! Secret and a dynamically provisioned volume and answers exec; the volume
//! keeps its files across pods; the garbage collector removes owned objects;
//! RBAC holds a service account to its Role; custom resources work.
//!
//! Needs a cluster: `CODEX_MCP_TEST_KUBECONFIG` (see tests/support/cluster.rs).
//! The pods use the busybox image that tests/cluster/up.sh loads.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec, ResourceRequirements,
    Secret, SecretVolumeSource, ServiceAccount, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams, WatchEvent,
    WatchParams,
};
use serde_json::json;
use support::cluster::{self, TestNamespace};

fn meta(name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        ..ObjectMeta::default()
    }
}

/// A busybox pod that sleeps, as uid/gid 1000 with fsGroup 1000, with the
/// given volumes mounted.
fn sleeper(name: &str, volumes: Vec<Volume>, mounts: Vec<VolumeMount>) -> Pod {
    let limits = BTreeMap::from([
        ("cpu".to_string(), Quantity("200m".to_string())),
        ("memory".to_string(), Quantity("64Mi".to_string())),
    ]);
    Pod {
        metadata: meta(name),
        spec: Some(PodSpec {
            termination_grace_period_seconds: Some(1),
            automount_service_account_token: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_user: Some(1000),
                run_as_group: Some(1000),
                run_as_non_root: Some(true),
                fs_group: Some(1000),
                ..PodSecurityContext::default()
            }),
            containers: vec![Container {
                name: "main".to_string(),
                image: Some(cluster::busybox_image()),
                image_pull_policy: Some("IfNotPresent".to_string()),
                command: Some(vec!["sleep".to_string(), "3600".to_string()]),
                volume_mounts: Some(mounts),
                resources: Some(ResourceRequirements {
                    limits: Some(limits.clone()),
                    requests: Some(limits),
                    ..ResourceRequirements::default()
                }),
                ..Container::default()
            }],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

fn pvc_volume(claim: &str) -> Volume {
    Volume {
        name: "work".to_string(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim.to_string(),
            read_only: Some(false),
        }),
        ..Volume::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

#[tokio::test]
async fn non_root_pod_gets_secret_and_persistent_volume() {
    let ns = TestNamespace::create("smoke-pod").await;
    let pp = PostParams::default();
    let token = format!("token-{}", uuid::Uuid::new_v4().simple());

    let secrets: Api<Secret> = ns.api();
    let secret = Secret {
        metadata: meta("creds"),
        string_data: Some(BTreeMap::from([("token".to_string(), token.clone())])),
        ..Secret::default()
    };
    secrets
        .create(&pp, &secret)
        .await
        .expect("creating the secret");

    // No storage class named: the cluster's default one provisions it.
    let claims: Api<PersistentVolumeClaim> = ns.api();
    let claim = PersistentVolumeClaim {
        metadata: meta("work"),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity("16Mi".to_string()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    claims
        .create(&pp, &claim)
        .await
        .expect("creating the claim");

    let pods: Api<Pod> = ns.api();
    let secret_volume = Volume {
        name: "creds".to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some("creds".to_string()),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    };
    let first = sleeper(
        "first",
        vec![secret_volume, pvc_volume("work")],
        vec![
            mount("creds", "/etc/creds", true),
            mount("work", "/work", false),
        ],
    );
    pods.create(&pp, &first).await.expect("creating the pod");
    cluster::wait_for_pod_running(&pods, "first", cluster::POD_START_TIMEOUT).await;

    let bound = cluster::wait_for(
        &claims,
        "work",
        Duration::from_secs(60),
        "the claim to be bound",
        |c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"),
    )
    .await;
    assert!(
        bound.spec.and_then(|s| s.storage_class_name).is_some(),
        "the default storage class should have been filled in"
    );

    let id = cluster::exec_ok(&pods, "first", &["id", "-u"]).await;
    assert_eq!(id.trim(), "1000", "the pod runs as uid 1000");
    let read = cluster::exec_ok(&pods, "first", &["cat", "/etc/creds/token"]).await;
    assert_eq!(read, token, "the secret is mounted");
    let written = cluster::exec_ok(
        &pods,
        "first",
        &[
            "sh",
            "-c",
            "echo kept-across-pods > /work/note && cat /work/note",
        ],
    )
    .await;
    assert_eq!(written.trim(), "kept-across-pods");

    // A failing command reports its exit code and stderr.
    let failed = cluster::exec(&pods, "first", &["sh", "-c", "echo oops >&2; exit 3"]).await;
    assert_eq!(failed.exit_code, Some(3), "{failed:?}");
    assert_eq!(failed.stderr.trim(), "oops");

    // The volume outlives the pod: a second pod reads what the first wrote.
    pods.delete("first", &DeleteParams::default())
        .await
        .expect("deleting the first pod");
    cluster::wait_for_deletion(&pods, "first", Duration::from_secs(60)).await;
    let second = sleeper(
        "second",
        vec![pvc_volume("work")],
        vec![mount("work", "/work", false)],
    );
    pods.create(&pp, &second)
        .await
        .expect("creating the second pod");
    cluster::wait_for_pod_running(&pods, "second", cluster::POD_START_TIMEOUT).await;
    let kept = cluster::exec_ok(&pods, "second", &["cat", "/work/note"]).await;
    assert_eq!(kept.trim(), "kept-across-pods");

    ns.cleanup().await;
}

#[tokio::test]
async fn owned_objects_are_garbage_collected() {
    let ns = TestNamespace::create("smoke-gc").await;
    let pp = PostParams::default();
    let maps: Api<ConfigMap> = ns.api();

    let owner = maps
        .create(
            &pp,
            &ConfigMap {
                metadata: meta("owner"),
                ..ConfigMap::default()
            },
        )
        .await
        .expect("creating the owner");
    let owned = ConfigMap {
        metadata: ObjectMeta {
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".to_string(),
                kind: "ConfigMap".to_string(),
                name: "owner".to_string(),
                uid: owner.metadata.uid.clone().expect("the owner has a uid"),
                ..OwnerReference::default()
            }]),
            ..meta("owned")
        },
        ..ConfigMap::default()
    };
    maps.create(&pp, &owned)
        .await
        .expect("creating the owned object");
    maps.create(
        &pp,
        &ConfigMap {
            metadata: meta("bystander"),
            ..ConfigMap::default()
        },
    )
    .await
    .expect("creating an unrelated object");

    maps.delete("owner", &DeleteParams::default())
        .await
        .expect("deleting the owner");
    cluster::wait_for_deletion(&maps, "owned", Duration::from_secs(90)).await;
    assert!(
        maps.get_opt("bystander")
            .await
            .expect("getting the bystander")
            .is_some(),
        "an object without owner must stay"
    );

    ns.cleanup().await;
}

#[tokio::test]
async fn service_account_is_held_to_its_role() {
    let ns = TestNamespace::create("smoke-rbac").await;
    let pp = PostParams::default();

    let accounts: Api<ServiceAccount> = ns.api();
    accounts
        .create(
            &pp,
            &ServiceAccount {
                metadata: meta("narrow"),
                ..ServiceAccount::default()
            },
        )
        .await
        .expect("creating the service account");
    let roles: Api<Role> = ns.api();
    let role = Role {
        metadata: meta("pod-getter"),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".to_string()]),
            verbs: vec!["get".to_string()],
            ..PolicyRule::default()
        }]),
    };
    roles.create(&pp, &role).await.expect("creating the role");
    let bindings: Api<RoleBinding> = ns.api();
    let binding = RoleBinding {
        metadata: meta("narrow-gets-pods"),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_string(),
            kind: "Role".to_string(),
            name: "pod-getter".to_string(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_string(),
            name: "narrow".to_string(),
            namespace: Some(ns.name().to_string()),
            ..Subject::default()
        }]),
    };
    bindings
        .create(&pp, &binding)
        .await
        .expect("creating the role binding");

    // A token secret for the account: filled in by the token controller, on
    // 1.20 as on current clusters.
    let secrets: Api<Secret> = ns.api();
    let token_secret = Secret {
        metadata: ObjectMeta {
            annotations: Some(BTreeMap::from([(
                "kubernetes.io/service-account.name".to_string(),
                "narrow".to_string(),
            )])),
            ..meta("narrow-token")
        },
        type_: Some("kubernetes.io/service-account-token".to_string()),
        ..Secret::default()
    };
    secrets
        .create(&pp, &token_secret)
        .await
        .expect("creating the token secret");
    let filled = cluster::wait_for(
        &secrets,
        "narrow-token",
        Duration::from_secs(60),
        "the service account token",
        |s| s.data.as_ref().is_some_and(|d| d.contains_key("token")),
    )
    .await;
    let token =
        String::from_utf8(filled.data.expect("data")["token"].0.clone()).expect("utf-8 token");

    // Something to get: a pod (it need not run).
    let pods: Api<Pod> = ns.api();
    pods.create(&pp, &sleeper("target", vec![], vec![]))
        .await
        .expect("creating the target pod");

    let narrow = cluster::client_with_token(&token);
    let narrow_pods: Api<Pod> = Api::namespaced(narrow.clone(), ns.name());
    let narrow_secrets: Api<Secret> = Api::namespaced(narrow, ns.name());

    let got = narrow_pods
        .get("target")
        .await
        .expect("the role allows getting a pod");
    assert_eq!(got.metadata.name.as_deref(), Some("target"));
    for (what, result) in [
        (
            "listing secrets",
            narrow_secrets.list(&Default::default()).await.map(|_| ()),
        ),
        (
            "getting a secret",
            narrow_secrets.get("narrow-token").await.map(|_| ()),
        ),
        (
            "listing pods",
            narrow_pods.list(&Default::default()).await.map(|_| ()),
        ),
        (
            "deleting a pod",
            narrow_pods
                .delete("target", &DeleteParams::default())
                .await
                .map(|_| ()),
        ),
    ] {
        match result {
            Err(kube::Error::Api(e)) if e.code == 403 => {}
            other => {
                panic!("{what} as the narrow service account should be forbidden, got {other:?}")
            }
        }
    }

    ns.cleanup().await;
}

/// Custom resources: what the operator's `CodexAgent` relies on. A CRD with a
/// status subresource becomes established; objects are created (with nested
/// maps in their spec), read, listed, watched, have their status patched and
/// are deleted.
#[tokio::test]
async fn custom_resources_round_trip() {
    let ns = TestNamespace::create("smoke-crd").await;
    let pp = PostParams::default();
    let group = "smoke.codexmcp.dev";
    let crd_name = format!("widgets.{group}");
    let crds: Api<CustomResourceDefinition> = Api::all(cluster::client());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": crd_name },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wdg"] },
            "versions": [{
                "name": "v1alpha1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": { "type": "object", "properties": {
                            "size": { "type": "integer" },
                            "labels": { "type": "object", "additionalProperties": { "type": "string" } }
                        } },
                        "status": { "type": "object", "properties": {
                            "phase": { "type": "string" }
                        } }
                    }
                } }
            }]
        }
    }))
    .expect("a valid CRD");
    // A leftover from an interrupted run is as good as a new one.
    match crds.create(&pp, &crd).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => panic!("creating the CRD: {e}"),
    }
    cluster::wait_for(
        &crds,
        &crd_name,
        Duration::from_secs(60),
        "the CRD to be established",
        |c| {
            c.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                })
        },
    )
    .await;

    let resource = ApiResource {
        group: group.to_string(),
        version: "v1alpha1".to_string(),
        api_version: format!("{group}/v1alpha1"),
        kind: "Widget".to_string(),
        plural: "widgets".to_string(),
    };
    let widgets: Api<DynamicObject> = Api::namespaced_with(ns.client(), ns.name(), &resource);
    let widget = DynamicObject::new("w1", &resource)
        .data(json!({ "spec": { "size": 3, "labels": { "team": "a", "tier": "b" } } }));
    // Serving can lag "Established" by a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match widgets.create(&pp, &widget).await {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 404 && std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(500)).await
            }
            Err(e) => panic!("creating a custom resource: {e}"),
        }
    }

    let got = widgets
        .get("w1")
        .await
        .expect("getting the custom resource");
    assert_eq!(got.data["spec"]["size"], 3);
    assert_eq!(got.data["spec"]["labels"]["tier"], "b");
    let listed = widgets.list(&Default::default()).await.expect("listing");
    assert_eq!(listed.items.len(), 1);

    let mut events = widgets
        .watch(&WatchParams::default().timeout(20), "0")
        .await
        .expect("watching")
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(20), events.try_next())
        .await
        .expect("a watch event in time")
        .expect("a good watch event");
    assert!(
        matches!(&first, Some(WatchEvent::Added(w)) if w.metadata.name.as_deref() == Some("w1")),
        "{first:?}"
    );

    let patched = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Ready" } })),
        )
        .await
        .expect("patching the status");
    assert_eq!(patched.data["status"]["phase"], "Ready");
    assert_eq!(
        patched.data["spec"]["size"], 3,
        "a status patch leaves the spec alone"
    );

    widgets
        .delete("w1", &DeleteParams::default())
        .await
        .expect("deleting");
    cluster::wait_for_deletion(&widgets, "w1", Duration::from_secs(30)).await;

    ns.cleanup().await;
    crds.delete(&crd_name, &DeleteParams::default())
        .await
        .expect("deleting the CRD");
}
