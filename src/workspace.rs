//! An agent's workspace: resolving caller-supplied paths safely inside it, and
//! snapshots that tell what a run really changed.

use std::collections::BTreeMap;
use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io;
use std::path::{Component, Path, PathBuf};

use similar::TextDiff;

use crate::api::request::{FileChange, FileChangeKind};

mod diff_limits;
pub use diff_limits::bound_diffs;

/// Why a caller-supplied path was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PathError {
    #[error("file path is empty")]
    Empty,
    #[error("file path {0:?} contains a NUL byte")]
    Nul(String),
    #[error("file path {0:?} is absolute; give a path relative to the agent's workspace")]
    Absolute(String),
    #[error("file path {0:?} leaves the agent's workspace")]
    Escapes(String),
    #[error("file path {0:?} could not be checked: {1}")]
    Unreadable(String, String),
}

/// Checks a caller-supplied workspace path by its text alone and returns it
/// normalised (`.` segments and repeated slashes dropped). No filesystem is
/// consulted: the gateway does not share the agent's filesystem (on
/// Kubernetes it has none of it), so symlinks are resolved where the
/// workspace is, by `agent-run`.
pub fn check_relative(rel: &str) -> Result<PathBuf, PathError> {
    if rel.trim().is_empty() {
        return Err(PathError::Empty);
    }
    if rel.contains('\0') {
        return Err(PathError::Nul(rel.to_owned()));
    }
    let path = Path::new(rel);
    if path.is_absolute() || rel.starts_with('~') {
        return Err(PathError::Absolute(rel.to_owned()));
    }
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            // `..` is refused even where it would stay inside (`a/../b`):
            // whether it does depends on symlinks this side cannot see.
            _ => return Err(PathError::Escapes(rel.to_owned())),
        }
    }
    if out.as_os_str().is_empty() {
        return Err(PathError::Empty);
    }
    Ok(out)
}

/// Resolves `rel` inside `root`, refusing what [`check_relative`] refuses
/// and symlinks whose target lies outside `root`. The file itself need not
/// exist yet. Needs the workspace's own filesystem.
pub fn resolve_in_workspace(root: &Path, rel: &str) -> Result<PathBuf, PathError> {
    let path = check_relative(rel)?;
    let path = path.as_path();
    let root = root
        .canonicalize()
        .map_err(|e| PathError::Unreadable(rel.to_owned(), e.to_string()))?;
    let joined = root.join(path);
    // Canonicalise the longest prefix that exists: that follows every symlink
    // a write to this path would follow.
    let mut existing = joined.as_path();
    let canonical = loop {
        match existing.canonicalize() {
            Ok(c) => break c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Ok(meta) = existing.symlink_metadata() {
                    if meta.file_type().is_symlink() {
                        // A dangling symlink: refuse, its target is unknowable here.
                        return Err(PathError::Escapes(rel.to_owned()));
                    }
                }
                existing = existing.parent().unwrap_or(&root);
            }
            Err(e) => return Err(PathError::Unreadable(rel.to_owned(), e.to_string())),
        }
    };
    if !canonical.starts_with(&root) {
        return Err(PathError::Escapes(rel.to_owned()));
    }
    Ok(joined)
}

/// Limits that keep a snapshot cheap on a large workspace.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotLimits {
    /// Files larger than this are compared by size and hash only.
    pub max_text_bytes: u64,
    pub max_files: usize,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        Self {
            max_text_bytes: 1 << 20,
            max_files: 20_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum FileState {
    Text(String),
    Opaque { len: u64, hash: u64 },
    Symlink(PathBuf),
}

/// The state of every file in a workspace at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    files: BTreeMap<String, FileState>,
    /// More files than the limit: the snapshot is partial.
    pub truncated: bool,
}

impl Snapshot {
    pub fn take(root: &Path, limits: SnapshotLimits) -> io::Result<Self> {
        let mut snap = Snapshot::default();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if dir != root && e.kind() == io::ErrorKind::PermissionDenied => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let path = entry.path();
                let ty = entry.file_type()?;
                let rel = path
                    .strip_prefix(root)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .into_owned();
                if ty.is_dir() {
                    // Version-control internals change on every commit and are noise in a diff.
                    if entry.file_name() != ".git" {
                        stack.push(path);
                    }
                    continue;
                }
                if snap.files.len() >= limits.max_files {
                    snap.truncated = true;
                    return Ok(snap);
                }
                let state = if ty.is_symlink() {
                    FileState::Symlink(fs::read_link(&path)?)
                } else {
                    read_state(&path, limits)?
                };
                snap.files.insert(rel, state);
            }
        }
        Ok(snap)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.files.len()
    }

    /// The changes from `self` to `after`, sorted by path.
    pub fn changes_to(&self, after: &Snapshot) -> Vec<FileChange> {
        let mut out = Vec::new();
        for (path, old) in &self.files {
            match after.files.get(path) {
                None => out.push(change(path, FileChangeKind::Delete, Some(old), None)),
                Some(new) if new != old => {
                    out.push(change(path, FileChangeKind::Modify, Some(old), Some(new)))
                }
                Some(_) => {}
            }
        }
        for (path, new) in &after.files {
            if !self.files.contains_key(path) {
                out.push(change(path, FileChangeKind::Create, None, Some(new)));
            }
        }
        out.sort_by(|a, b| a.file.cmp(&b.file));
        out
    }
}

fn read_state(path: &Path, limits: SnapshotLimits) -> io::Result<FileState> {
    let len = fs::metadata(path)?.len();
    let bytes = if len <= limits.max_text_bytes {
        fs::read(path)?
    } else {
        Vec::new()
    };
    if len <= limits.max_text_bytes {
        if let Ok(text) = String::from_utf8(bytes.clone()) {
            if !text.contains('\0') {
                return Ok(FileState::Text(text));
            }
        }
        let mut h = DefaultHasher::new();
        bytes.hash(&mut h);
        return Ok(FileState::Opaque {
            len,
            hash: h.finish(),
        });
    }
    // Large files: hash a streaming read so memory stays bounded.
    let mut h = DefaultHasher::new();
    let mut f = fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = io::Read::read(&mut f, &mut buf)?;
        if n == 0 {
            break;
        }
        buf[..n].hash(&mut h);
    }
    Ok(FileState::Opaque {
        len,
        hash: h.finish(),
    })
}

fn text_of(state: Option<&FileState>) -> Option<String> {
    match state {
        None => Some(String::new()),
        Some(FileState::Text(t)) => Some(t.clone()),
        Some(FileState::Symlink(target)) => Some(format!("symlink -> {}\n", target.display())),
        Some(FileState::Opaque { .. }) => None,
    }
}

fn change(
    path: &str,
    action: FileChangeKind,
    old: Option<&FileState>,
    new: Option<&FileState>,
) -> FileChange {
    let diff = match (text_of(old), text_of(new)) {
        (Some(a), Some(b)) => {
            let (from, to) = match action {
                FileChangeKind::Create => ("/dev/null".to_owned(), format!("b/{path}")),
                FileChangeKind::Delete => (format!("a/{path}"), "/dev/null".to_owned()),
                FileChangeKind::Modify => (format!("a/{path}"), format!("b/{path}")),
            };
            TextDiff::from_lines(&a, &b)
                .unified_diff()
                .header(&from, &to)
                .to_string()
        }
        _ => format!("Binary or large file {path} differs\n"),
    };
    FileChange {
        file: path.to_owned(),
        action,
        diff,
        truncated: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_check_normalises_and_refuses_escapes() {
        assert_eq!(
            check_relative("./src//a.rs").unwrap(),
            PathBuf::from("src/a.rs")
        );
        assert_eq!(check_relative("a/./b").unwrap(), PathBuf::from("a/b"));
        assert_eq!(check_relative(""), Err(PathError::Empty));
        assert_eq!(check_relative("  "), Err(PathError::Empty));
        assert_eq!(check_relative("./"), Err(PathError::Empty));
        assert_eq!(
            check_relative("/etc/passwd"),
            Err(PathError::Absolute("/etc/passwd".into()))
        );
        assert!(matches!(check_relative("~/x"), Err(PathError::Absolute(_))));
        for escaping in ["..", "../x", "a/../../b", "a/../b"] {
            assert_eq!(
                check_relative(escaping),
                Err(PathError::Escapes(escaping.into())),
                "{escaping}"
            );
        }
        let nul = check_relative("a\0b").unwrap_err();
        assert!(nul.to_string().contains("NUL"), "{nul}");
    }

    #[test]
    fn lexical_check_never_touches_the_filesystem() {
        // A path through a symlink that points out is fine by text alone:
        // resolving it is the agent environment's job.
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("out")).unwrap();
        assert!(check_relative("out/etc/passwd").is_ok());
        assert!(check_relative("no/such/dir/file").is_ok());
    }

    #[test]
    fn resolves_plain_relative_paths() {
        let dir = tempfile::tempdir().unwrap();
        let p = resolve_in_workspace(dir.path(), "src/new/file.rs").unwrap();
        assert!(p.ends_with("src/new/file.rs"));
        assert!(resolve_in_workspace(dir.path(), "./a.txt").is_ok());
    }

    #[test]
    fn refuses_escapes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        assert_eq!(resolve_in_workspace(root, ""), Err(PathError::Empty));
        assert!(matches!(
            resolve_in_workspace(root, "/etc/passwd"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(
            resolve_in_workspace(root, "~/x"),
            Err(PathError::Absolute(_))
        ));
        assert!(matches!(
            resolve_in_workspace(root, "../../etc/passwd"),
            Err(PathError::Escapes(_))
        ));
        assert!(matches!(
            resolve_in_workspace(root, "a/../../b"),
            Err(PathError::Escapes(_))
        ));
    }

    #[test]
    fn refuses_symlinks_that_point_out() {
        let outside = tempfile::tempdir().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("out")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", dir.path().join("dangling")).unwrap();
        fs::create_dir(dir.path().join("in")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("in"), dir.path().join("inside")).unwrap();
        assert!(matches!(
            resolve_in_workspace(dir.path(), "out/x"),
            Err(PathError::Escapes(_))
        ));
        assert!(matches!(
            resolve_in_workspace(dir.path(), "dangling"),
            Err(PathError::Escapes(_))
        ));
        assert!(resolve_in_workspace(dir.path(), "inside/x").is_ok());
    }

    #[test]
    fn snapshot_diff_reports_real_changes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::write(root.join("keep.txt"), "same\n").unwrap();
        fs::write(root.join("edit.txt"), "one\ntwo\n").unwrap();
        fs::write(root.join("gone.txt"), "bye\n").unwrap();
        fs::create_dir(root.join(".git")).unwrap();
        fs::write(root.join(".git/HEAD"), "ref\n").unwrap();
        let before = Snapshot::take(root, SnapshotLimits::default()).unwrap();
        assert_eq!(before.len(), 3, "the .git directory is skipped");

        fs::write(root.join("edit.txt"), "one\nTWO\n").unwrap();
        fs::remove_file(root.join("gone.txt")).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub/new.txt"), "hello\n").unwrap();
        fs::write(root.join("bin.dat"), [0u8, 1, 2]).unwrap();
        fs::write(root.join(".git/HEAD"), "other\n").unwrap();
        let after = Snapshot::take(root, SnapshotLimits::default()).unwrap();

        let changes = before.changes_to(&after);
        let summary: Vec<(&str, FileChangeKind)> = changes
            .iter()
            .map(|c| (c.file.as_str(), c.action))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("bin.dat", FileChangeKind::Create),
                ("edit.txt", FileChangeKind::Modify),
                ("gone.txt", FileChangeKind::Delete),
                ("sub/new.txt", FileChangeKind::Create),
            ]
        );
        let edit = &changes[1];
        assert!(edit.diff.contains("--- a/edit.txt") && edit.diff.contains("+++ b/edit.txt"));
        assert!(
            edit.diff.contains("-two") && edit.diff.contains("+TWO"),
            "{}",
            edit.diff
        );
        assert!(changes[3].diff.contains("+hello"));
        assert!(changes[0].diff.contains("Binary"));
    }

    #[test]
    fn snapshot_respects_the_file_limit() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            fs::write(dir.path().join(format!("f{i}")), "x").unwrap();
        }
        let s = Snapshot::take(
            dir.path(),
            SnapshotLimits {
                max_files: 3,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(s.truncated);
        assert_eq!(s.len(), 3);
    }
}
