use super::*;
use crate::backend::ThreadUpdate;
use crate::codex::Usage;

fn backend(dir: &Path) -> LocalBackend {
    // These tests read and write agent state; they never start a run.
    LocalBackend::new(
        dir.to_path_buf(),
        "codex".into(),
        "codex-mcp".into(),
        Isolation::Unsafe,
    )
}

fn id(name: &str) -> AgentId {
    AgentId {
        tenant: Tenant::default_tenant(),
        name: AgentName::parse(name).unwrap(),
    }
}

fn finished(thread: &str) -> RunRecord {
    RunRecord {
        ok: true,
        usage: Usage::default(),
        thread_usage: Usage::default(),
        thread: ThreadUpdate::Set(thread.into()),
        entry: None,
    }
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

#[tokio::test]
async fn a_corrupt_record_is_listed_apart_and_the_others_still_are() {
    let data = tempfile::tempdir().unwrap();
    let b = backend(data.path());
    for name in ["good", "bad", "also-good"] {
        b.ensure_agent(&id(name), &|_| {}).await.unwrap();
    }
    std::fs::write(b.agent_dir(&id("bad")).join(RECORD_FILE), "{not json").unwrap();
    let list = b.list_agents(&Tenant::default_tenant()).await.unwrap();
    let names: Vec<&str> = list.agents.iter().map(|r| r.agent_id.as_str()).collect();
    assert_eq!(names, ["also-good", "good"]);
    assert_eq!(list.unreadable.len(), 1);
    assert_eq!(list.unreadable[0].agent_id, "bad");
    assert!(
        list.unreadable[0].reason.contains("agent.json"),
        "{:?}",
        list.unreadable
    );
    assert!(
        !list.unreadable[0]
            .reason
            .contains(&*data.path().to_string_lossy()),
        "no server paths in the reason"
    );
}

#[tokio::test]
async fn a_failed_write_is_named_as_a_write() {
    let data = tempfile::tempdir().unwrap();
    let b = backend(data.path());
    // The agent's directory is gone: reading finds no record, saving the
    // new one cannot create its file.
    let err = b.record_run(&id("gone"), finished("t1")).await.unwrap_err();
    assert!(matches!(err, BackendError::WriteState { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with("saving the state of agent"),
        "{err}"
    );
}

#[tokio::test]
async fn a_full_disk_leaves_the_old_record_and_no_temporary_file() {
    let data = tempfile::tempdir().unwrap();
    let b = backend(data.path());
    let agent = id("full");
    let before = b.ensure_agent(&agent, &|_| {}).await.unwrap();
    let dir = b.agent_dir(&agent);
    let mut changed = before.clone();
    changed.apply(&finished("t1"), Utc::now());
    let err = LocalBackend::write_record_via(&dir.join(RECORD_FILE), &changed, |f, bytes| {
        std::io::Write::write_all(f, &bytes[..bytes.len() / 2])?;
        Err(std::io::Error::from_raw_os_error(28))
    })
    .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(28), "{err}");
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
    assert_eq!(b.get_agent(&agent).await.unwrap(), Some(before));
}
