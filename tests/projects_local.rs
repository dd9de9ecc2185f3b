//! Agents on the user's own code, on one machine: a project bound with
//! `serve --project`, worktree and in-place modes, changes synced in and
//! out, checkpoints with rollback, and the bad inputs, against the real
//! Codex CLI, real git and the fake model.

mod support;

use std::process::Command;

use serde_json::json;
use support::fake_model::{messages, tool_outputs, Reply};
use support::gateway::{GatewayOptions, LocalGateway};
use support::projects::{
    all_changes, client, failed, files, git, implement, implement_reply, ok, user_repo,
};

#[tokio::test]
async fn a_worktree_sees_the_users_work_and_leaves_their_tree_alone() {
    let root = tempfile::tempdir().unwrap();
    let repo = user_repo(root.path());
    let user_before = files(&repo);
    let status_before = git(&repo, &["status", "--porcelain"]);
    let binding = format!("web={}", repo.display());
    let env =
        LocalGateway::start_with(|o: GatewayOptions| o.env("CODEX_MCP_PROJECTS", &binding)).await;
    let c = client(&env, "web");

    // Codex reads what the user sees, then changes, renames, deletes and
    // adds files, a binary one among them.
    env.model.push(Reply::exec(
        "cat a.txt new.txt; ls; git status --short 2>&1",
    ));
    env.model.push(Reply::exec(
        "printf 'fn lib() { work() }\\n' > src/lib.txt && mv old.txt renamed.txt && rm gone.txt \
         && printf 'B\\000\\001\\377' > bin.dat && printf 'caf\\351\\n' > latin1.txt",
    ));
    env.model.push(Reply::add_file("made.txt", "by codex"));
    env.model.push(Reply::Json(implement_reply()));
    let r = implement(&c, "work on the project").await;
    assert_eq!(r["checkpoint"], "web@1", "{r}");
    let seen = tool_outputs(&env.model.requests()[1]).join("\n");
    assert!(
        seen.contains("two (uncommitted)") && seen.contains("untracked work"),
        "Codex sees uncommitted and untracked files: {seen}"
    );
    assert!(
        !seen.contains("debug.log"),
        "ignored files stay out: {seen}"
    );

    assert_eq!(files(&repo), user_before, "the user's files are untouched");
    assert_eq!(git(&repo, &["status", "--porcelain"]), status_before);

    // The changes, in small pages, apply in a fresh clone of the snapshot's parent.
    let (diff, pages) = all_changes(&c, json!({"page_bytes": 300})).await;
    assert!(pages.len() > 1, "{} pages: {pages:?}", pages.len());
    assert_eq!(
        pages[0]["total_bytes"].as_u64().unwrap() as usize,
        diff.len()
    );
    assert!(
        diff.contains("rename from old.txt") && diff.contains("GIT binary patch"),
        "{diff}"
    );
    assert!(diff.contains("deleted file mode"), "{diff}");
    assert!(
        !diff.contains("uncommitted"),
        "the user's own work is the base: {diff}"
    );
    let statuses: Vec<(String, String)> = pages[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().into(),
                f["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&("renamed.txt".into(), "renamed".into())),
        "{statuses:?}"
    );
    let clone = root.path().join("clone");
    git(
        root.path(),
        &[
            "clone",
            "-q",
            repo.to_str().unwrap(),
            clone.to_str().unwrap(),
        ],
    );
    std::fs::write(root.path().join("changes.patch"), &diff).unwrap();
    git(
        &clone,
        &["apply", root.path().join("changes.patch").to_str().unwrap()],
    );
    let worktree = env.dir.path().join("agents/web/project");
    for f in [
        "src/lib.txt",
        "renamed.txt",
        "bin.dat",
        "latin1.txt",
        "made.txt",
    ] {
        assert_eq!(
            std::fs::read(clone.join(f)).unwrap(),
            std::fs::read(worktree.join(f)).unwrap(),
            "{f}"
        );
    }
    assert!(!clone.join("gone.txt").exists() && !clone.join("old.txt").exists());

    // push commits on codex/web in the user's repository; their tree stays.
    let r = c
        .call_tool("push", json!({"message": "Codex's work"}))
        .await;
    let pushed = ok(&r);
    assert_eq!(pushed["branch"], "codex/web");
    assert_eq!(pushed["committed"], true);
    let commit = pushed["commit"].as_str().unwrap();
    assert_eq!(git(&repo, &["rev-parse", "codex/web"]).trim(), commit);
    let committed = git(&repo, &["show", "--name-only", "--format=%s", "codex/web"]);
    assert!(
        committed.contains("Codex's work") && committed.contains("made.txt"),
        "{committed}"
    );
    assert_eq!(files(&repo), user_before);

    // A restart reuses the worktree, its branch and its checkpoints.
    let LocalGateway {
        dir,
        model,
        gateway,
    } = env;
    let env = LocalGateway {
        gateway: gateway.restart(),
        dir,
        model,
    };
    let c = client(&env, "web");
    let r = c.call_tool("list_checkpoints", json!({})).await;
    let list = ok(&r);
    assert_eq!(list["checkpoints"][0]["id"], "web@1", "{list}");
    assert!(env.dir.path().join("agents/web/project/made.txt").exists());
    let (diff, _) = all_changes(&c, json!({})).await;
    assert!(diff.contains("made.txt"), "the base survives the restart");

    // Its worktree removed, the agent gets it back on its branch.
    let LocalGateway {
        dir,
        model,
        mut gateway,
    } = env;
    gateway.stop();
    std::fs::remove_dir_all(dir.path().join("agents/web/project")).unwrap();
    let gateway = gateway.restart();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("agents/web/project/made.txt")).unwrap(),
        "by codex\n"
    );
    let env = LocalGateway {
        gateway,
        dir,
        model,
    };
    let r = client(&env, "web")
        .call_tool("list_checkpoints", json!({}))
        .await;
    assert_eq!(ok(&r)["checkpoints"][0]["id"], "web@1");
    assert_eq!(files(&repo), user_before);
}

#[tokio::test]
async fn in_place_codex_edits_the_working_tree_and_has_nothing_to_push() {
    let root = tempfile::tempdir().unwrap();
    let repo = user_repo(root.path());
    let binding = format!("web={}", repo.display());
    let env = LocalGateway::start_with(|o: GatewayOptions| {
        o.env("CODEX_MCP_PROJECTS", &binding)
            .env("CODEX_MCP_PROJECT_MODE", "in-place")
            // Without Codex's own sandbox, only the run's bind keeps .git read-only.
            .env("CODEX_APPROVAL_MODE", "danger-full-access")
    })
    .await;
    let c = client(&env, "web");
    env.model.push(Reply::exec(
        "touch .git/hooks/post-checkout 2>&1 || echo HOOK-DENIED",
    ));
    env.model.push(Reply::add_file("made.txt", "in place"));
    env.model.push(Reply::Json(implement_reply()));
    let r = implement(&c, "add a file").await;
    assert_eq!(r["checkpoint"], "web@1", "{r}");
    assert_eq!(
        std::fs::read_to_string(repo.join("made.txt")).unwrap(),
        "in place\n"
    );
    let said = tool_outputs(&env.model.requests()[1]).join("\n");
    assert!(said.contains("HOOK-DENIED"), "{said}");
    assert!(!repo.join(".git/hooks/post-checkout").exists());
    assert_eq!(
        std::fs::read_to_string(repo.join("a.txt")).unwrap(),
        "one\ntwo (uncommitted)\n",
        "the user's uncommitted work is still there"
    );
    let (diff, _) = all_changes(&c, json!({})).await;
    assert!(
        diff.contains("made.txt") && !diff.contains("a.txt"),
        "{diff}"
    );
    let e = failed(&c.call_tool("push", json!({})).await);
    assert!(e.contains("works in place"), "{e}");

    // fix records the next checkpoint.
    env.model.push(Reply::exec("printf 'fixed\\n' > made.txt"));
    env.model.push(Reply::Json(json!({
        "fixes": [{"problem": "p", "solution": "s", "files_to_change": ["made.txt"],
                   "root_cause": "r", "prevention": "t"}],
        "summary": "fixed", "diagnostic_steps": [], "quick_fix_available": true, "tests_to_run": [], "warnings": []
    })));
    let r = c
        .call_tool("fix", json!({"symptoms": "made.txt is wrong"}))
        .await;
    assert_eq!(ok(&r)["checkpoint"], "web@2", "{r}");
    let r = c.call_tool("list_checkpoints", json!({})).await;
    let list = ok(&r);
    assert_eq!(list["checkpoints"][1]["tool"], "fix", "{list}");
    assert_eq!(
        list["checkpoints"][1]["files"],
        json!(["made.txt"]),
        "{list}"
    );
}

#[tokio::test]
async fn rollback_restores_a_checkpoint_byte_for_byte_and_the_next_turn_hears_of_it() {
    let env = LocalGateway::start().await;
    let c = client(&env, "solo");
    // A plain agent: the caller's files come in by sync.
    let r = c
        .call_tool(
            "sync_files",
            json!({"files": [
                {"path": "keep.txt", "content": "kept\n"},
                {"path": "data/blob.bin", "content_base64": "AAEC/w=="}
            ]}),
        )
        .await;
    assert_eq!(ok(&r)["changed"].as_array().unwrap().len(), 2, "{r}");

    // A repository of its own inside the workspace, without commits, as
    // `cargo new` makes: its files count like any others.
    env.model.push(Reply::exec(
        "mkdir app && cd app && git init -q && printf 'fn main() {}\\n' > main.rs",
    ));
    env.model.push(Reply::add_file("f.txt", "version one"));
    env.model.push(Reply::Json(implement_reply()));
    let first = implement(&c, "first").await;
    assert_eq!(first["checkpoint"], "solo@1", "{first}");
    let (diff, _) = all_changes(&c, json!({})).await;
    assert!(
        diff.contains("app/main.rs") && diff.contains("+fn main() {}"),
        "{diff}"
    );
    let workspace = env.gateway.workspace("solo");
    let at_first = files(&workspace);

    env.model.push(Reply::exec(
        "printf 'version two' > f.txt && rm keep.txt && printf '\\001\\002' > data/blob.bin && mkdir -p n && echo new > n/g.txt && echo changed > app/main.rs",
    ));
    env.model.push(Reply::Json(implement_reply()));
    let second = implement(&c, "second").await;
    assert_eq!(second["checkpoint"], "solo@2");
    assert_ne!(files(&workspace), at_first);

    let r = c.call_tool("list_checkpoints", json!({})).await;
    let list = ok(&r);
    let ids: Vec<&str> = list["checkpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["solo@1", "solo@2"]);
    assert_eq!(list["checkpoints"][1]["tool"], "implement");

    let r = c
        .call_tool("rollback", json!({"checkpoint": "solo@1"}))
        .await;
    let rolled = ok(&r);
    assert_eq!(rolled["undone_checkpoints"], json!(["solo@2"]));
    assert_eq!(files(&workspace), at_first, "restored byte for byte");
    assert!(!workspace.join("n").exists(), "emptied directories go too");
    let (diff, _) = all_changes(&c, json!({"against": "solo@1"})).await;
    assert_eq!(diff, "", "nothing differs from the checkpoint");

    env.model.push(Reply::text("noted"));
    let r = c.call_tool("chat", json!({"message": "what now?"})).await;
    ok(&r);
    let last = env.model.requests().last().unwrap().clone();
    let said = messages(&last)
        .into_iter()
        .map(|m| m.text)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        said.contains("rolled back to checkpoint solo@1") && said.contains("solo@2"),
        "the next turn's prompt tells of the rollback: {said}"
    );
    // Told once.
    env.model.push(Reply::text("ok"));
    ok(&c.call_tool("chat", json!({"message": "and now?"})).await);
    let last = env.model.requests().last().unwrap().clone();
    let user_msgs: Vec<String> = messages(&last)
        .into_iter()
        .filter(|m| m.role == "user" && m.text.contains("rolled back"))
        .map(|m| m.text)
        .collect();
    assert_eq!(user_msgs.len(), 1, "{user_msgs:?}");
    assert!(
        rolled["saved"].is_null(),
        "solo@2 held the workspace already"
    );

    // What no checkpoint holds is kept before a rollback, which can so be undone.
    ok(&c
        .call_tool(
            "sync_files",
            json!({"files": [{"path": "f.txt", "content": "synced"}]}),
        )
        .await);
    let r = c
        .call_tool("rollback", json!({"checkpoint": "solo@2"}))
        .await;
    assert_eq!(ok(&r)["saved"], "solo@3", "{r}");
    assert_eq!(
        std::fs::read(workspace.join("f.txt")).unwrap(),
        b"version two"
    );
    ok(&c
        .call_tool("rollback", json!({"checkpoint": "solo@3"}))
        .await);
    assert_eq!(std::fs::read(workspace.join("f.txt")).unwrap(), b"synced");
}

#[tokio::test]
async fn a_token_reaches_only_its_own_agents_workspace() {
    let tokens = tempfile::tempdir().unwrap();
    let file = tokens.path().join("tokens");
    std::fs::write(&file, "tok-mine-0123456789abcdef default mine\n").unwrap();
    let env = LocalGateway::start_with(|o: GatewayOptions| GatewayOptions {
        auth_tokens: Some(file.clone()),
        ..o
    })
    .await;
    for tool in [
        "sync_files",
        "get_changes",
        "list_checkpoints",
        "rollback",
        "push",
    ] {
        let args = match tool {
            "sync_files" => json!({"files": [{"path": "x", "content": "x"}]}),
            "rollback" => json!({"checkpoint": "other@1"}),
            _ => json!({}),
        };
        let r = client(&env, "other")
            .bearer("tok-mine-0123456789abcdef")
            .call_tool(tool, args)
            .await;
        assert!(!r.ok(), "{tool}: {r}");
        // Refused before any tool runs, as for every other tool.
        assert_eq!(r.http_status(), Some(403), "{tool}: {r}");
    }
    assert!(!env.dir.path().join("agents/other").exists());
    let r = client(&env, "mine")
        .bearer("tok-mine-0123456789abcdef")
        .call_tool("list_checkpoints", json!({}))
        .await;
    assert_eq!(ok(&r)["checkpoints"], json!([]));
}

#[tokio::test]
async fn bad_input_is_refused_by_name_and_changes_nothing() {
    let env = LocalGateway::start().await;
    let c = client(&env, "careful");
    ok(&c
        .call_tool(
            "sync_files",
            json!({"files": [{"path": "a.txt", "content": "one\n"}]}),
        )
        .await);
    let workspace = env.gateway.workspace("careful");
    let before = files(&workspace);

    // A patch that does not apply, together with a file: neither is written.
    let patch =
        "diff --git a/a.txt b/a.txt\n--- a/a.txt\n+++ b/a.txt\n@@ -1 +1 @@\n-not there\n+two\n";
    let e = failed(
        &c.call_tool(
            "sync_files",
            json!({"patch": patch, "files": [{"path": "b.txt", "content": "b"}]}),
        )
        .await,
    );
    assert!(e.contains("does not apply") && e.contains("a.txt"), "{e}");
    assert_eq!(files(&workspace), before);
    // Right, the same sync applies whole.
    let r = c
        .call_tool(
            "sync_files",
            json!({"patch": patch.replace("not there", "one"), "files": [{"path": "b.txt", "content": "b"}]}),
        )
        .await;
    assert_eq!(
        ok(&r)["changed"],
        json!([{"path": "a.txt", "status": "modified"}, {"path": "b.txt", "status": "added"}])
    );
    assert_eq!(std::fs::read(workspace.join("a.txt")).unwrap(), b"two\n");

    // Paths out of the workspace: by their text, and through a symlink.
    let e = failed(
        &c.call_tool(
            "sync_files",
            json!({"files": [{"path": "../x", "content": "x"}]}),
        )
        .await,
    );
    assert!(e.contains("../x"), "{e}");
    let outside = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(outside.path(), workspace.join("out")).unwrap();
    let before = files(&workspace);
    let e = failed(
        &c.call_tool(
            "sync_files",
            json!({"files": [{"path": "ok.txt", "content": "ok"}, {"path": "out/x", "content": "x"}]}),
        )
        .await,
    );
    assert!(e.contains("out/x") && e.contains("leaves"), "{e}");
    assert_eq!(files(&workspace), before);
    assert!(!outside.path().join("x").exists());
    let e = failed(
        &c.call_tool(
            "sync_files",
            json!({"patch": "--- a/../../x\n+++ b/../../x\n@@ -0,0 +1 @@\n+x\n"}),
        )
        .await,
    );
    assert!(e.contains("../../x"), "{e}");

    // Checkpoints that are not this agent's, or do not exist.
    let e = failed(
        &c.call_tool("rollback", json!({"checkpoint": "other@1"}))
            .await,
    );
    assert!(e.contains("belongs to agent other"), "{e}");
    let e = failed(
        &c.call_tool("rollback", json!({"checkpoint": "careful@7"}))
            .await,
    );
    assert!(e.contains("no checkpoint careful@7"), "{e}");
    let e = failed(
        &c.call_tool("get_changes", json!({"against": "careful@7"}))
            .await,
    );
    assert!(e.contains("no checkpoint careful@7"), "{e}");
    let e = failed(&c.call_tool("get_changes", json!({"cursor": "junk"})).await);
    assert!(e.contains("cursor"), "{e}");

    // Nothing to push to without a project.
    let e = failed(&c.call_tool("push", json!({})).await);
    assert!(
        e.contains("has no project") && e.contains("--project careful=PATH"),
        "{e}"
    );
    assert_eq!(files(&workspace), before);
}

#[test]
fn serve_refuses_a_project_that_is_no_repository_and_creates_nothing() {
    let root = tempfile::tempdir().unwrap();
    let plain_dir = root.path().join("not-a-repo");
    std::fs::create_dir_all(&plain_dir).unwrap();
    let good = user_repo(root.path());
    for (binding, reason) in [
        (
            format!("x={}", root.path().join("missing").display()),
            "not a directory",
        ),
        (format!("x={}", plain_dir.display()), "not a git repository"),
        (
            format!("x={}", good.join("src").display()),
            "give its top level",
        ),
        ("Bad=/tmp".to_owned(), "DNS-1123"),
    ] {
        let data = root.path().join("data");
        let out = Command::new(support::codex_mcp_bin())
            .args([
                "serve",
                "--no-auth",
                "--unsafe-no-isolation",
                "--listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(&data)
            // A good binding first: nothing is created for it either.
            .arg("--project")
            .arg(format!("good={}", good.display()))
            .arg("--project")
            .arg(&binding)
            .env("CODEX_BIN", support::codex_bin())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{binding}: {stderr}");
        assert!(stderr.contains(reason), "{binding}: {stderr}");
        assert!(
            !data.join("agents").exists(),
            "{binding}: nothing half-created"
        );
        assert!(
            !git(&good, &["branch", "--list"]).contains("codex/"),
            "{binding}: no branch"
        );
    }
}
