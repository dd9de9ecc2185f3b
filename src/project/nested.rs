//! Repositories a run made inside the workspace (`cargo new` and `git
//! init` make them): git stops at such a directory, records it as a bare
//! commit pointer when it has commits and fails on it when it has none,
//! so its files would be missing from checkpoints and diffs, or break them.
//! Their files are staged as ordinary files instead. The nested
//! repository's own git directory and config are never used: its files
//! are listed through a scratch repository of ours, so its ignore files
//! count but nothing it configures runs.

use std::os::unix::fs::PermissionsExt;

use super::git::{scratch_dir, Git, GitError};

impl Git {
    /// Stages every file of the work tree, ignored ones left out, in the
    /// index this `Git` uses (`git add -A` plus nested repositories' files).
    pub fn stage_all(&self) -> Result<(), GitError> {
        let nested = untracked_dirs_with_repos(self)?;
        let excludes: Vec<String> = nested
            .iter()
            .map(|n| format!(":(exclude,literal){n}"))
            .collect();
        let mut args = vec!["add", "-A", "--", "."];
        args.extend(excludes.iter().map(String::as_str));
        self.run(&args)?;
        for dir in nested {
            self.stage_nested(&dir)?;
        }
        Ok(())
    }

    /// Stages the files of the repository at `dir` (relative to the work
    /// tree), and of repositories nested in it, as ordinary files.
    fn stage_nested(&self, dir: &str) -> Result<(), GitError> {
        let scratch = scratch_dir()?;
        let scratch_git = scratch.path().join("git");
        let root = Git::new(&self.work_tree, None);
        root.run(&[
            "init",
            "--quiet",
            "--bare",
            scratch_git.to_str().unwrap_or_default(),
        ])?;
        let lister = Git::new(&self.work_tree.join(dir), Some(&scratch_git));
        let listed = lister.run(&["ls-files", "-z", "--others", "--exclude-standard"])?;
        let mut files = Vec::new();
        for entry in listed.split(|b| *b == 0).filter(|e| !e.is_empty()) {
            let Ok(entry) = std::str::from_utf8(entry) else {
                continue;
            };
            match entry.strip_suffix('/') {
                Some(inner) => self.stage_nested(&format!("{dir}/{inner}"))?,
                // hash-object reads one path per line.
                None if !entry.contains('\n') => files.push(format!("{dir}/{entry}")),
                None => {}
            }
        }
        let mut info = Vec::new();
        let mut regular = Vec::new();
        for path in files {
            let Ok(meta) = std::fs::symlink_metadata(self.work_tree.join(&path)) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let target = std::fs::read_link(self.work_tree.join(&path))
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let sha = self.line_with(&["hash-object", "-w", "--stdin"], target.as_bytes())?;
                push_entry(&mut info, "120000", &sha, &path);
            } else if meta.is_file() {
                let mode = if meta.permissions().mode() & 0o111 != 0 {
                    "100755"
                } else {
                    "100644"
                };
                regular.push((mode, path));
            }
        }
        if !regular.is_empty() {
            let paths: String = regular.iter().map(|(_, p)| format!("{p}\n")).collect();
            let out = self.run_with(
                &["hash-object", "-w", "--no-filters", "--stdin-paths"],
                paths.as_bytes(),
            )?;
            let shas = String::from_utf8_lossy(&out);
            for ((mode, path), sha) in regular.iter().zip(shas.lines()) {
                push_entry(&mut info, mode, sha.trim(), path);
            }
        }
        if !info.is_empty() {
            self.run_with(&["update-index", "-z", "--add", "--index-info"], &info)?;
        }
        Ok(())
    }

    fn line_with(&self, args: &[&str], stdin: &[u8]) -> Result<String, GitError> {
        Ok(String::from_utf8_lossy(&self.run_with(args, stdin)?)
            .trim()
            .to_owned())
    }
}

fn push_entry(info: &mut Vec<u8>, mode: &str, sha: &str, path: &str) {
    info.extend_from_slice(format!("{mode} {sha}\t{path}").as_bytes());
    info.push(0);
}

/// Untracked directories that are repositories of their own: `git
/// ls-files --others` lists each as one entry ending in `/`.
fn untracked_dirs_with_repos(git: &Git) -> Result<Vec<String>, GitError> {
    let listed = git.run(&["ls-files", "-z", "--others", "--exclude-standard"])?;
    Ok(listed
        .split(|b| *b == 0)
        .filter_map(|e| std::str::from_utf8(e).ok())
        .filter_map(|e| e.strip_suffix('/'))
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    fn sh(dir: &Path, script: &str) {
        let out = Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn files_of_nested_repositories_are_snapshotted_as_files() {
        let d = tempfile::tempdir().unwrap();
        let work = d.path().join("workspace");
        std::fs::create_dir_all(&work).unwrap();
        let git_dir = d.path().join("workspace.git");
        let git = Git::new(&work, Some(&git_dir));
        git.run(&["init", "--quiet"]).unwrap();
        let ran = d.path().join("ran");
        sh(
            &work,
            "echo top > top.txt \
             && mkdir -p fresh deep/inner && cd fresh && git init -q && echo 'target/' > .gitignore \
             && mkdir target && echo built > target/out && echo code > lib.rs && chmod +x lib.rs \
             && ln -s lib.rs link && cd ../deep/inner && git init -q && echo c > c.txt \
             && git -c user.name=a -c user.email=b add c.txt \
             && git -c user.name=a -c user.email=b commit -qm x \
             && git config core.fsmonitor 'touch RAN'"
                .replace("RAN", ran.to_str().unwrap())
                .as_str(),
        );
        let tree = git.snapshot_tree().unwrap();
        let listing = git.line(&["ls-tree", "-r", &tree]).unwrap();
        let entries: Vec<(&str, &str)> = listing
            .lines()
            .map(|l| {
                let (meta, path) = l.split_once('\t').unwrap();
                (meta.split(' ').next().unwrap(), path)
            })
            .collect();
        assert_eq!(
            entries,
            [
                ("100644", "deep/inner/c.txt"),
                ("100644", "fresh/.gitignore"),
                ("100755", "fresh/lib.rs"),
                ("120000", "fresh/link"),
                ("100644", "top.txt"),
            ],
            "{listing}"
        );
        assert_eq!(
            git.line(&["show", &format!("{tree}:fresh/lib.rs")])
                .unwrap(),
            "code"
        );
        assert!(!ran.exists(), "a nested repository's config ran a program");
    }
}
