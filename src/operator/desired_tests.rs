use super::*;
use crate::api::crd::{
    AgentResources, CodexAgentSpec, CodexSettings, CpuMemory, PodOverrides, SecurityTweaks,
    StorageSpec,
};
use crate::api::layout::API_KEY_FILE;
use crate::operator::settings::{resolve, Defaults};

fn agent(spec: CodexAgentSpec) -> CodexAgent {
    let mut a = CodexAgent::new("alice", spec);
    a.metadata.namespace = Some("team".into());
    a.metadata.uid = Some("uid-1".into());
    a
}

fn pod_for(spec: CodexAgentSpec) -> Pod {
    let a = agent(spec);
    let settings = resolve(&a.spec, &Defaults::default()).unwrap();
    desired_pod(&a, &settings)
}

fn container(pod: &Pod) -> &Container {
    &pod.spec.as_ref().unwrap().containers[0]
}

#[test]
fn pod_runs_non_root_read_only_without_privileges() {
    let pod = pod_for(CodexAgentSpec::default());
    let spec = pod.spec.as_ref().unwrap();
    let psc = spec.security_context.as_ref().unwrap();
    assert_eq!(psc.run_as_user, Some(1000));
    assert_eq!(psc.run_as_group, Some(1000));
    assert_eq!(psc.fs_group, Some(1000));
    assert_eq!(psc.run_as_non_root, Some(true));
    assert_eq!(
        psc.seccomp_profile.as_ref().unwrap().type_,
        "RuntimeDefault"
    );
    assert_eq!(spec.automount_service_account_token, Some(false));

    let sc = container(&pod).security_context.as_ref().unwrap();
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(
        sc.capabilities.as_ref().unwrap().drop.as_deref(),
        Some(&["ALL".to_string()][..])
    );
    assert!(sc.capabilities.as_ref().unwrap().add.is_none());
}

#[test]
fn pod_mounts_workspace_tmp_and_read_only_credentials() {
    let pod = pod_for(CodexAgentSpec::default());
    let spec = pod.spec.as_ref().unwrap();
    let mounts = container(&pod).volume_mounts.as_ref().unwrap();
    let by_path = |p: &str| mounts.iter().find(|m| m.mount_path == p).unwrap();
    assert_eq!(by_path(AGENT_ROOT).read_only, Some(false));
    assert_eq!(by_path(TMP_DIR).read_only, Some(false));
    assert_eq!(by_path(CREDENTIALS_DIR).read_only, Some(true));

    let volumes = spec.volumes.as_ref().unwrap();
    let volume = |n: &str| volumes.iter().find(|v| v.name == n).unwrap();
    assert_eq!(
        volume("workspace")
            .persistent_volume_claim
            .as_ref()
            .unwrap()
            .claim_name,
        "alice-workspace"
    );
    assert!(volume("tmp").empty_dir.is_some());
    assert_eq!(
        volume("credentials")
            .secret
            .as_ref()
            .unwrap()
            .secret_name
            .as_deref(),
        Some("alice-credentials")
    );
}

#[test]
fn pod_has_limits_probe_and_idle_main_process() {
    let pod = pod_for(CodexAgentSpec::default());
    let c = container(&pod);
    let res = c.resources.as_ref().unwrap();
    assert_eq!(res.limits.as_ref().unwrap()["cpu"].0, "4.0");
    assert_eq!(res.limits.as_ref().unwrap()["memory"].0, "2048Mi");
    assert_eq!(res.requests.as_ref().unwrap()["memory"].0, "256Mi");
    assert_eq!(
        c.command.as_deref(),
        Some(&["codex-mcp".to_string(), "agent-init".to_string()][..])
    );
    let probe = c.readiness_probe.as_ref().unwrap().exec.as_ref().unwrap();
    assert_eq!(
        probe.command.as_ref().unwrap().last().map(String::as_str),
        Some("--check")
    );
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
}

#[test]
fn children_carry_labels_and_a_controller_owner() {
    let pod = pod_for(CodexAgentSpec {
        tenant: Some("acme".into()),
        ..CodexAgentSpec::default()
    });
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(labels[LABEL_AGENT], "alice");
    assert_eq!(labels[LABEL_TENANT], "acme");
    assert_eq!(labels[LABEL_MANAGED_BY], MANAGED_BY);
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.kind, "CodexAgent");
    assert_eq!(owner.api_version, "codexmcp.dev/v1alpha1");
    assert_eq!(owner.uid, "uid-1");
    assert_eq!(owner.controller, Some(true));
    assert_eq!(pod.metadata.namespace.as_deref(), Some("team"));
}

#[test]
fn hash_tracks_what_changes_the_pod_only() {
    let base = pod_for(CodexAgentSpec::default());
    let again = pod_for(CodexAgentSpec::default());
    assert_eq!(
        pod_hash(&base),
        pod_hash(&again),
        "stable for the same spec"
    );
    assert_eq!(pod_hash(&base).map(str::len), Some(16));

    let resized = pod_for(CodexAgentSpec {
        resources: Some(AgentResources {
            limits: Some(CpuMemory {
                cpu: Some("1".into()),
                memory: None,
            }),
            requests: None,
        }),
        ..CodexAgentSpec::default()
    });
    assert_eq!(
        pod_hash(&base),
        pod_hash(&resized),
        "resources change in place, not through the template"
    );
    let limits = container(&resized)
        .resources
        .as_ref()
        .unwrap()
        .limits
        .clone()
        .unwrap();
    assert_eq!(limits["cpu"].0, "1");
    let policies: Vec<_> = container(&resized)
        .resize_policy
        .iter()
        .flatten()
        .map(|p| (p.resource_name.as_str(), p.restart_policy.as_str()))
        .collect();
    assert_eq!(
        policies,
        [("cpu", "NotRequired"), ("memory", "NotRequired")],
        "a resize never restarts the container its runs live in"
    );

    let pinned = pod_for(CodexAgentSpec {
        pod: Some(PodOverrides {
            node_selector: [("disk".to_string(), "ssd".to_string())].into(),
            ..PodOverrides::default()
        }),
        ..CodexAgentSpec::default()
    });
    assert_ne!(pod_hash(&base), pod_hash(&pinned));

    // Codex settings are read by the gateway per run: no restart for them,
    // nor for suspension or the idle timeout.
    let retuned = pod_for(CodexAgentSpec {
        codex: Some(CodexSettings {
            model: Some("gpt-5.5".into()),
            ..CodexSettings::default()
        }),
        idle_timeout_seconds: Some(5),
        ..CodexAgentSpec::default()
    });
    assert_eq!(pod_hash(&base), pod_hash(&retuned));
}

#[test]
fn security_tweaks_apply_and_reserved_env_is_ignored() {
    let pod = pod_for(CodexAgentSpec {
        pod: Some(PodOverrides {
            env: vec![
                crate::api::crd::EnvVar {
                    name: "GIT_AUTHOR_NAME".into(),
                    value: "A".into(),
                },
                crate::api::crd::EnvVar {
                    name: "HOME".into(),
                    value: "/".into(),
                },
                crate::api::crd::EnvVar {
                    name: "CODEX_MCP_WORKSPACE".into(),
                    value: "/".into(),
                },
            ],
            security_context: Some(SecurityTweaks {
                run_as_user: Some(2000),
                fs_group: Some(3000),
                ..SecurityTweaks::default()
            }),
            ..PodOverrides::default()
        }),
        ..CodexAgentSpec::default()
    });
    let psc = pod
        .spec
        .as_ref()
        .unwrap()
        .security_context
        .as_ref()
        .unwrap();
    assert_eq!(psc.run_as_user, Some(2000));
    assert_eq!(psc.run_as_group, Some(1000));
    assert_eq!(psc.fs_group, Some(3000));
    let env = container(&pod).env.as_ref().unwrap();
    let value = |n: &str| {
        env.iter()
            .filter(|e| e.name == n)
            .map(|e| e.value.clone().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(value("GIT_AUTHOR_NAME"), ["A"]);
    assert_eq!(value("HOME"), [HOME_DIR]);
    assert_eq!(value("CODEX_MCP_WORKSPACE"), [WORKSPACE_DIR]);
}

#[test]
fn pvc_is_owned_unless_retained_and_keeps_an_existing_spec() {
    let a = agent(CodexAgentSpec {
        storage: Some(StorageSpec {
            size: Some("5Gi".into()),
            ..StorageSpec::default()
        }),
        ..CodexAgentSpec::default()
    });
    let settings = resolve(&a.spec, &Defaults::default()).unwrap();
    let pvc = desired_pvc(&a, &settings, None, true);
    assert!(pvc.metadata.owner_references.is_some());
    let spec = pvc.spec.as_ref().unwrap();
    assert_eq!(
        spec.resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0,
        "5Gi"
    );
    assert!(
        spec.storage_class_name.is_none(),
        "the cluster default applies"
    );

    let retained = agent(CodexAgentSpec {
        storage: Some(StorageSpec {
            size: Some("7Gi".into()),
            when_deleted: VolumePolicy::Retain,
            ..StorageSpec::default()
        }),
        ..CodexAgentSpec::default()
    });
    let settings = resolve(&retained.spec, &Defaults::default()).unwrap();
    let mut existing = pvc.clone();
    existing.spec.as_mut().unwrap().storage_class_name = Some("standard".into());
    let size = |pvc: &PersistentVolumeClaim| {
        pvc.spec
            .as_ref()
            .unwrap()
            .resources
            .as_ref()
            .unwrap()
            .requests
            .as_ref()
            .unwrap()["storage"]
            .0
            .clone()
    };
    let again = desired_pvc(&retained, &settings, Some(&existing), true);
    assert!(again.metadata.owner_references.is_none());
    assert_eq!(size(&again), "7Gi", "a larger size grows the claim");
    assert_eq!(
        again.spec.as_ref().unwrap().storage_class_name.as_deref(),
        Some("standard"),
        "the class is the claim's"
    );
    assert_eq!(
        workspace_growth(Some(&existing), &settings).as_deref(),
        Some("7Gi")
    );
    let kept = desired_pvc(&retained, &settings, Some(&existing), false);
    assert_eq!(size(&kept), "5Gi", "unless growing was refused");

    let smaller = agent(CodexAgentSpec {
        storage: Some(StorageSpec {
            size: Some("4096Mi".into()),
            ..StorageSpec::default()
        }),
        ..CodexAgentSpec::default()
    });
    let settings = resolve(&smaller.spec, &Defaults::default()).unwrap();
    assert_eq!(workspace_growth(Some(&existing), &settings), None);
    assert_eq!(
        size(&desired_pvc(&smaller, &settings, Some(&existing), true)),
        "5Gi",
        "a claim never shrinks"
    );
}

#[test]
fn the_agents_secret_is_owned_by_it() {
    let data = BTreeMap::from([(API_KEY_FILE.to_string(), ByteString(b"sk-1".to_vec()))]);
    let a = agent(CodexAgentSpec::default());
    let settings = resolve(&a.spec, &Defaults::default()).unwrap();
    let secret = desired_secret(&a, &settings, data);
    assert_eq!(secret.metadata.name.as_deref(), Some("alice-credentials"));
    assert!(secret.metadata.owner_references.is_some());
}

#[test]
fn a_source_adds_an_init_container_that_clones_with_mounted_credentials() {
    use crate::api::crd::{GitSecretRef, GitSource, SourceSpec};
    let without = pod_for(CodexAgentSpec::default());
    assert!(without.spec.as_ref().unwrap().init_containers.is_none());
    let mut a = agent(CodexAgentSpec {
        tenant: Some("acme".into()),
        source: Some(SourceSpec {
            git: GitSource {
                url: "https://git.example.com/acme/app.git".into(),
                ref_: Some("main".into()),
                secret_ref: Some(GitSecretRef {
                    name: "git-acme".into(),
                }),
            },
        }),
        ..CodexAgentSpec::default()
    });
    a.metadata.labels = Some(BTreeMap::from([(
        crate::api::labels::LABEL_AGENT_NAME.to_string(),
        "bob".to_string(),
    )]));
    let settings = resolve(&a.spec, &Defaults::default()).unwrap();
    let pod = desired_pod(&a, &settings);
    let spec = pod.spec.as_ref().unwrap();
    let init = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(init.name, SOURCE_CONTAINER_NAME);
    assert_eq!(
        init.command.as_deref(),
        Some(&["codex-mcp".to_string(), "agent-source".to_string()][..])
    );
    assert_eq!(init.security_context, container(&pod).security_context);
    let env = |c: &Container, k: &str| {
        c.env
            .iter()
            .flatten()
            .find(|e| e.name == k)
            .and_then(|e| e.value.clone())
    };
    for c in [init, container(&pod)] {
        assert_eq!(
            env(c, "CODEX_MCP_SOURCE_URL").as_deref(),
            Some("https://git.example.com/acme/app.git")
        );
        // The gateway's names for the agent: label, tenant.
        assert_eq!(
            env(c, "CODEX_MCP_SOURCE_BRANCH").as_deref(),
            Some("codex/acme/bob")
        );
        assert_eq!(
            env(c, "CODEX_MCP_SOURCE_REFS").as_deref(),
            Some("refs/codex-mcp/acme/bob")
        );
        let git_mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == GIT_CREDENTIALS_DIR)
            .unwrap();
        assert_eq!(git_mount.read_only, Some(true));
        // The Secret reaches the pod only as files, never as environment.
        assert!(c.env.iter().flatten().all(|e| e.value_from.is_none()));
    }
    // The init container does not see the Codex credentials.
    assert!(init
        .volume_mounts
        .iter()
        .flatten()
        .all(|m| m.mount_path != CREDENTIALS_DIR));
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == GIT_CREDENTIALS_VOLUME)
        .unwrap();
    assert_eq!(
        volume.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("git-acme")
    );
    // A resource change still resizes in place: init resources are not hashed.
    let mut bigger = a.clone();
    bigger.spec.resources = Some(AgentResources {
        limits: Some(CpuMemory {
            cpu: Some("3".into()),
            memory: None,
        }),
        requests: None,
    });
    let s2 = resolve(&bigger.spec, &Defaults::default()).unwrap();
    assert_eq!(pod_hash(&pod), pod_hash(&desired_pod(&bigger, &s2)));
}
