use super::*;
use std::process::Command;

fn sh_git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository with two commits on `main`, a tag on the first and a
/// branch `dev`.
fn upstream() -> (tempfile::TempDir, String, String) {
    let d = tempfile::tempdir().unwrap();
    sh_git(d.path(), &["init", "--quiet"]);
    std::fs::write(d.path().join("a.txt"), "one\n").unwrap();
    sh_git(d.path(), &["add", "."]);
    sh_git(d.path(), &["commit", "--quiet", "-m", "first"]);
    let first = sh_git(d.path(), &["rev-parse", "HEAD"]);
    sh_git(d.path(), &["tag", "v1"]);
    sh_git(d.path(), &["branch", "dev"]);
    std::fs::write(d.path().join("a.txt"), "two\n").unwrap();
    sh_git(d.path(), &["commit", "--quiet", "-am", "second"]);
    let second = sh_git(d.path(), &["rev-parse", "HEAD"]);
    (d, first, second)
}

fn settings(root: &Path, url: &str, r: Option<&str>) -> CloneSettings {
    CloneSettings {
        workspace: root.join("workspace"),
        url: url.into(),
        ref_: r.map(Into::into),
        branch: "codex/alice".into(),
        refs: "refs/codex-mcp/default/alice".into(),
        max_bytes: u64::MAX,
        credentials_dir: root.join("no-credentials"),
    }
}

/// `clone` as `run` calls it, for a local path (which `run` refuses as a
/// URL: pods clone over the network only).
fn clone_local(s: &CloneSettings) -> Outcome {
    std::fs::create_dir_all(&s.workspace).unwrap();
    let o = clone(s, &s.git_dir(), &auth::GitAuth::default());
    if !o.is_success() {
        wipe(&s.workspace, &s.git_dir()).unwrap();
    }
    o
}

#[test]
fn clones_the_default_branch_onto_the_agents_branch_with_its_base() {
    let (up, _, second) = upstream();
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path(), up.path().to_str().unwrap(), None);
    let o = clone_local(&s);
    assert!(o.is_success(), "{o:?}");
    assert!(o.message.contains("on branch codex/alice"), "{}", o.message);
    assert_eq!(
        std::fs::read_to_string(s.workspace.join("a.txt")).unwrap(),
        "two\n"
    );
    // Codex sees an ordinary repository in its workspace.
    assert_eq!(
        sh_git(&s.workspace, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "codex/alice"
    );
    assert_eq!(
        sh_git(
            &s.workspace,
            &["rev-parse", "refs/codex-mcp/default/alice/base"]
        ),
        second
    );
    let done = recorded(&s.git_dir()).unwrap();
    assert_eq!(done.commit.as_deref(), Some(second.as_str()));
    // A second start finds the clone and leaves it alone.
    std::fs::write(s.workspace.join("new.txt"), "mine").unwrap();
    let again = run(&settings(root.path(), "https://h/ignored.git", None));
    assert!(
        again.is_success() && again.message.contains("the workspace holds"),
        "{again:?}"
    );
    assert!(s.workspace.join("new.txt").exists());
}

#[test]
fn a_tag_a_branch_or_a_commit_id_picks_the_start() {
    let (up, first, _) = upstream();
    let url = up.path().to_str().unwrap();
    for r in ["v1", "dev", first.as_str(), &first[..10]] {
        let root = tempfile::tempdir().unwrap();
        let s = settings(root.path(), url, Some(r));
        assert!(clone_local(&s).is_success(), "{r}");
        assert_eq!(
            std::fs::read_to_string(s.workspace.join("a.txt")).unwrap(),
            "one\n",
            "{r}"
        );
    }
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path(), url, Some("nope"));
    let o = clone_local(&s);
    assert_eq!(o.reason, reason::UNKNOWN_REF, "{o:?}");
    assert!(o.message.contains("\"nope\""));
    // Nothing is left of the failed attempt.
    assert!(!s.git_dir().exists());
    assert!(is_empty(&s.workspace));
}

#[test]
fn a_clone_over_the_size_limit_is_refused_and_removed() {
    let (up, _, _) = upstream();
    let root = tempfile::tempdir().unwrap();
    let mut s = settings(root.path(), up.path().to_str().unwrap(), None);
    s.max_bytes = 1024;
    let o = clone_local(&s);
    assert_eq!(o.reason, reason::TOO_LARGE, "{o:?}");
    assert!(o.message.contains("more than the 1.0 KiB allowed"), "{o:?}");
    assert!(!s.git_dir().exists());
}

#[test]
fn a_workspace_in_use_or_a_bad_url_is_refused_before_anything_is_touched() {
    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path(), "https://git.example.com/a.git", None);
    std::fs::create_dir_all(&s.workspace).unwrap();
    std::fs::write(s.workspace.join("notes.md"), "mine").unwrap();
    let o = run(&s);
    assert_eq!(o.reason, reason::WORKSPACE_NOT_EMPTY, "{o:?}");
    assert!(s.workspace.join("notes.md").exists());

    let root = tempfile::tempdir().unwrap();
    let s = settings(root.path(), "https://git.example.com/a.git", None);
    std::fs::create_dir_all(s.git_dir()).unwrap();
    assert_eq!(run(&s).reason, reason::WORKSPACE_NOT_EMPTY);

    let root = tempfile::tempdir().unwrap();
    let mut unnamed = settings(root.path(), "https://git.example.com/a.git", None);
    unnamed.branch.clear();
    let o = run(&unnamed);
    assert!(o.message.contains("CODEX_MCP_SOURCE_BRANCH"), "{o:?}");
    assert!(!unnamed.workspace.exists(), "nothing was made");

    let root = tempfile::tempdir().unwrap();
    let o = run(&settings(root.path(), "https://user:tok@h/a.git", None));
    assert_eq!(o.reason, reason::INVALID_URL);
    assert!(!o.message.contains("tok@"), "{o:?}");
}

#[test]
fn an_unreachable_server_is_named_as_such() {
    let root = tempfile::tempdir().unwrap();
    // Nothing listens on port 9 of loopback.
    let s = settings(root.path(), "http://127.0.0.1:9/a.git", None);
    let o = run(&s);
    assert_eq!(o.reason, reason::UNREACHABLE, "{o:?}");
    assert!(!s.git_dir().exists());
    assert!(!s.workspace.with_file_name(CLONING_MARKER).exists());
}
