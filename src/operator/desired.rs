//! Pure builders of the objects a CodexAgent owns: its credentials Secret,
//! its workspace PVC and its pod. No IO here; the reconciler applies what
//! these return.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerResizePolicy, EmptyDirVolumeSource, EnvVar, ExecAction,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod,
    PodSecurityContext, PodSpec, Probe, ResourceRequirements, SeccompProfile, Secret,
    SecretVolumeSource, SecurityContext, Toleration, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::ResourceExt;

use super::settings::{parse_quantity, Resolved};
use crate::api::crd::{CodexAgent, GitSource, VolumePolicy};
use crate::api::labels::{
    owner_reference, APP_NAME, LABEL_AGENT, LABEL_AGENT_NAME, LABEL_INSTANCE, LABEL_MANAGED_BY,
    LABEL_NAME, LABEL_TENANT, MANAGED_BY, POD_TEMPLATE_HASH,
};
use crate::api::layout::{
    pod_name, pvc_name, secret_name, AGENT_ROOT, CODEX_HOME_DIR, CONTAINER_NAME, CREDENTIALS_DIR,
    DEFAULT_UID, GIT_CREDENTIALS_DIR, HOME_DIR, SOURCE_CONTAINER_NAME, TMP_DIR, WORKSPACE_DIR,
};

/// The volume of the Secret `spec.source.git.secretRef` names.
const GIT_CREDENTIALS_VOLUME: &str = "git-credentials";

/// Environment variables the agent's environment is built on; a spec's
/// extra env may not override them.
const RESERVED_ENV: &[&str] = &["HOME", "CODEX_HOME", "TMPDIR"];
const RESERVED_ENV_PREFIX: &str = "CODEX_MCP_";

/// Labels on everything the agent owns.
pub fn labels(agent: &CodexAgent, tenant: &str) -> BTreeMap<String, String> {
    let name = agent.name_any();
    BTreeMap::from([
        (LABEL_NAME.into(), APP_NAME.into()),
        (LABEL_INSTANCE.into(), name.clone()),
        (LABEL_MANAGED_BY.into(), MANAGED_BY.into()),
        (LABEL_AGENT.into(), name),
        (LABEL_TENANT.into(), tenant.into()),
    ])
}

fn child_meta(agent: &CodexAgent, name: String, tenant: &str, owned: bool) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: agent.namespace(),
        labels: Some(labels(agent, tenant)),
        owner_references: owned.then(|| vec![owner_reference(agent)]),
        ..ObjectMeta::default()
    }
}

/// The agent's own Secret. It exists even without credentials (empty), so
/// the pod's read-only mount never dangles.
pub fn desired_secret(
    agent: &CodexAgent,
    settings: &Resolved,
    data: BTreeMap<String, ByteString>,
) -> Secret {
    Secret {
        metadata: child_meta(agent, secret_name(agent), &settings.tenant, true),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// The workspace claim. Owned by the agent (and so deleted with it) unless
/// the spec retains it. A claim's spec is immutable once created but for
/// growing its size, so for an existing claim its current spec is carried
/// over, grown to the spec's size when `grow` and that is larger.
pub fn desired_pvc(
    agent: &CodexAgent,
    settings: &Resolved,
    existing: Option<&PersistentVolumeClaim>,
    grow: bool,
) -> PersistentVolumeClaim {
    let owned = settings.when_deleted == VolumePolicy::Delete;
    let spec = match existing.and_then(|pvc| pvc.spec.as_ref()) {
        Some(current) => {
            let mut resources = current.resources.clone();
            if grow {
                if let Some(size) = workspace_growth(existing, settings) {
                    resources
                        .get_or_insert_with(Default::default)
                        .requests
                        .get_or_insert_with(Default::default)
                        .insert("storage".into(), Quantity(size));
                }
            }
            PersistentVolumeClaimSpec {
                access_modes: current.access_modes.clone(),
                resources,
                storage_class_name: current.storage_class_name.clone(),
                ..PersistentVolumeClaimSpec::default()
            }
        }
        None => PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity(settings.storage_size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            storage_class_name: settings.storage_class.clone(),
            ..PersistentVolumeClaimSpec::default()
        },
    };
    PersistentVolumeClaim {
        metadata: child_meta(agent, pvc_name(agent), &settings.tenant, owned),
        spec: Some(spec),
        ..PersistentVolumeClaim::default()
    }
}

/// The spec's size when it is larger than the existing claim's request:
/// the claim is to grow to it.
pub fn workspace_growth(
    existing: Option<&PersistentVolumeClaim>,
    settings: &Resolved,
) -> Option<String> {
    let current = existing?
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?
        .get("storage")?;
    let larger = parse_quantity(&settings.storage_size)? > parse_quantity(&current.0)?;
    larger.then(|| settings.storage_size.clone())
}

/// The agent container's resources as the settings ask for them.
pub fn desired_resources(settings: &Resolved) -> ResourceRequirements {
    let quantities = |m: &BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect::<BTreeMap<_, _>>()
    };
    ResourceRequirements {
        limits: Some(quantities(&settings.limits)),
        requests: Some(quantities(&settings.requests)),
        ..ResourceRequirements::default()
    }
}

/// The agent's pod, carrying the hash of everything in it but its resources.
pub fn desired_pod(agent: &CodexAgent, settings: &Resolved) -> Pod {
    let overrides = agent.spec.pod.clone().unwrap_or_default();
    let tweaks = overrides.security_context.clone().unwrap_or_default();
    let uid = tweaks.run_as_user.unwrap_or(DEFAULT_UID);
    let gid = tweaks.run_as_group.unwrap_or(DEFAULT_UID);
    let fs_group = tweaks.fs_group.unwrap_or(gid);

    let mut env: Vec<EnvVar> = overrides
        .env
        .iter()
        .filter(|e| !is_reserved_env(&e.name))
        .map(|e| env_var(&e.name, &e.value))
        .collect();
    env.extend([
        env_var("HOME", HOME_DIR),
        env_var("CODEX_HOME", CODEX_HOME_DIR),
        env_var("TMPDIR", TMP_DIR),
        env_var("CODEX_MCP_WORKSPACE", WORKSPACE_DIR),
        env_var("CODEX_MCP_CREDENTIALS_DIR", CREDENTIALS_DIR),
        env_var("CODEX_MCP_AGENT", &agent.name_any()),
        env_var("CODEX_MCP_TENANT", &settings.tenant),
    ]);

    let source = agent.spec.source.as_ref().map(|s| &s.git);
    if let Some(git) = source {
        env.extend(source_env(agent, git, settings));
    }
    let mut mounts = vec![
        mount("workspace", AGENT_ROOT, false),
        mount("tmp", TMP_DIR, false),
    ];
    if source.is_some_and(|g| g.secret_ref.is_some()) {
        mounts.push(mount(GIT_CREDENTIALS_VOLUME, GIT_CREDENTIALS_DIR, true));
    }
    let security_context = SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(gid),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        ..SecurityContext::default()
    };
    // Clones the source before the agent starts; its termination message
    // says how it went (see `crate::source::clone`).
    let init_containers = source.map(|_| {
        vec![Container {
            name: SOURCE_CONTAINER_NAME.into(),
            image: Some(settings.image.clone()),
            image_pull_policy: Some(settings.pull_policy.as_str().into()),
            command: Some(vec!["codex-mcp".into(), "agent-source".into()]),
            env: Some(env.clone()),
            resources: Some(desired_resources(settings)),
            security_context: Some(security_context.clone()),
            termination_message_policy: Some("FallbackToLogsOnError".into()),
            volume_mounts: Some(mounts.clone()),
            ..Container::default()
        }]
    });
    mounts.push(mount("credentials", CREDENTIALS_DIR, true));

    let container = Container {
        name: CONTAINER_NAME.into(),
        image: Some(settings.image.clone()),
        image_pull_policy: Some(settings.pull_policy.as_str().into()),
        command: Some(vec!["codex-mcp".into(), "agent-init".into()]),
        env: Some(env),
        resources: Some(desired_resources(settings)),
        // Resizes must not restart the container: runs are processes in it.
        resize_policy: Some(
            ["cpu", "memory"]
                .map(|resource| ContainerResizePolicy {
                    resource_name: resource.into(),
                    restart_policy: "NotRequired".into(),
                })
                .to_vec(),
        ),
        security_context: Some(security_context),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec![
                    "codex-mcp".into(),
                    "agent-init".into(),
                    "--check".into(),
                ]),
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(5),
            failure_threshold: Some(3),
            ..Probe::default()
        }),
        volume_mounts: Some(mounts),
        ..Container::default()
    };

    let mut volumes = vec![
        Volume {
            name: "workspace".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: pvc_name(agent),
                read_only: Some(false),
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
        Volume {
            name: "credentials".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret_name(agent)),
                // Group-readable: the files belong to the fsGroup.
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];

    if let Some(secret) = source.and_then(|g| g.secret_ref.as_ref()) {
        volumes.push(Volume {
            name: GIT_CREDENTIALS_VOLUME.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.name.clone()),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }

    let tolerations: Vec<Toleration> = overrides
        .tolerations
        .iter()
        .map(|t| Toleration {
            key: t.key.clone(),
            operator: t.operator.map(|o| format!("{o:?}")),
            value: t.value.clone(),
            effect: t.effect.map(|e| format!("{e:?}")),
            toleration_seconds: t.toleration_seconds,
        })
        .collect();

    let mut pod = Pod {
        metadata: child_meta(agent, pod_name(agent), &settings.tenant, true),
        spec: Some(PodSpec {
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            restart_policy: Some("Always".into()),
            termination_grace_period_seconds: Some(10),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(uid),
                run_as_group: Some(gid),
                fs_group: Some(fs_group),
                fs_group_change_policy: tweaks.fs_group_change_policy.map(|p| format!("{p:?}")),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            node_selector: (!overrides.node_selector.is_empty())
                .then(|| overrides.node_selector.clone()),
            tolerations: (!tolerations.is_empty()).then_some(tolerations),
            init_containers,
            containers: vec![container],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    let hash = pod_template_hash(&pod);
    pod.metadata.annotations = Some(BTreeMap::from([(POD_TEMPLATE_HASH.into(), hash)]));
    pod
}

/// The hash annotation of a pod, if it has one.
pub fn pod_hash(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(POD_TEMPLATE_HASH)
        .map(String::as_str)
}

/// FNV-1a over the pod's JSON (without the hash annotation and the
/// containers' resources): stable across builds and versions of this
/// program, unlike std's hasher.
pub fn pod_template_hash(pod: &Pod) -> String {
    let mut pod = pod.clone();
    if let Some(a) = pod.metadata.annotations.as_mut() {
        a.remove(POD_TEMPLATE_HASH);
    }
    for spec in pod.spec.iter_mut() {
        for c in spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten())
        {
            c.resources = None;
        }
    }
    let json = serde_json::to_vec(&pod).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in json {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The agent as the gateway names it: its branch and private refs must be
/// the ones the gateway's workspace operations use.
fn gateway_identity(agent: &CodexAgent, settings: &Resolved) -> (String, String) {
    let name = agent
        .labels()
        .get(LABEL_AGENT_NAME)
        .cloned()
        .unwrap_or_else(|| agent.name_any());
    let tenant = &settings.tenant;
    let branch = if tenant == super::settings::DEFAULT_TENANT {
        format!("codex/{name}")
    } else {
        format!("codex/{tenant}/{name}")
    };
    (branch, format!("refs/codex-mcp/{tenant}/{name}"))
}

/// What the `source` init container and `push` read: where the
/// repository is, never its credentials.
fn source_env(agent: &CodexAgent, git: &GitSource, settings: &Resolved) -> Vec<EnvVar> {
    let (branch, refs) = gateway_identity(agent, settings);
    let mut env = vec![env_var("CODEX_MCP_SOURCE_URL", &git.url)];
    if let Some(r) = git.ref_.as_deref().filter(|r| !r.is_empty()) {
        env.push(env_var("CODEX_MCP_SOURCE_REF", r));
    }
    env.extend([
        env_var("CODEX_MCP_SOURCE_BRANCH", &branch),
        env_var("CODEX_MCP_SOURCE_REFS", &refs),
        env_var(
            "CODEX_MCP_SOURCE_MAX_BYTES",
            &settings.source_max_bytes.to_string(),
        ),
    ]);
    if git.secret_ref.is_some() {
        env.push(env_var(
            "CODEX_MCP_GIT_CREDENTIALS_DIR",
            GIT_CREDENTIALS_DIR,
        ));
    }
    env
}

fn is_reserved_env(name: &str) -> bool {
    RESERVED_ENV.contains(&name) || name.starts_with(RESERVED_ENV_PREFIX)
}

fn env_var(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
