//! `get_changes`: the workspace against its base (or a checkpoint) as one
//! git diff, with renames found, deletions, and binary files as git binary
//! patches, so `git apply` takes it in the caller's checkout. Large diffs
//! come in pages: each page is a consecutive piece of the same diff, cut
//! between files where one fits, and the cursor names the workspace state
//! it belongs to, so a workspace that changed between pages is noticed
//! instead of stitched together wrongly.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::checkpoints::split_z;
use super::error::WorkspaceError;
use super::WorkspaceRepo;

/// Default and largest page of diff text, in bytes.
pub const DEFAULT_PAGE_BYTES: usize = 256 << 10;
pub const MAX_PAGE_BYTES: usize = 4 << 20;
/// Smallest page honoured.
pub const MIN_PAGE_BYTES: usize = 128;

/// One changed file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangedFile {
    pub path: String,
    /// added, modified, deleted, renamed, copied or type_changed.
    pub status: String,
    /// The path before a rename or copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_path: Option<String>,
}

/// One page of the workspace's changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ChangesPage {
    /// What the diff is against: `base` or a checkpoint id.
    pub against: String,
    pub against_commit: String,
    /// Every changed file (all pages').
    pub files: Vec<ChangedFile>,
    /// This page of the diff (`git apply` takes the pages concatenated in order).
    pub diff: String,
    /// Byte offset of this page in the whole diff.
    pub offset: usize,
    /// Size of the whole diff in bytes.
    pub total_bytes: usize,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Where the page starting at `offset` ends (at most `max` bytes): after
/// the last whole file that fits, else after the last whole line, else at
/// a character boundary.
pub fn page_end(diff: &str, offset: usize, max: usize) -> usize {
    let max = max.max(1);
    if diff.len() - offset <= max {
        return diff.len();
    }
    let mut limit = offset + max;
    while !diff.is_char_boundary(limit) {
        limit -= 1;
    }
    let window = &diff[offset..limit];
    if let Some(i) = window.rfind("\ndiff --git ").filter(|i| *i > 0) {
        return offset + i + 1;
    }
    if let Some(i) = window.rfind('\n') {
        return offset + i + 1;
    }
    if limit > offset {
        limit
    } else {
        // A single character longer than the page: take it whole.
        offset + diff[offset..].chars().next().map_or(1, char::len_utf8)
    }
}

/// The paths (as the diff names them) of the files whose part of `diff` is
/// not UTF-8: text in another encoding.
pub fn non_utf8_paths(diff: &[u8]) -> Vec<String> {
    const HEADER: &[u8] = b"diff --git ";
    let mut starts: Vec<usize> = (0..diff.len())
        .filter(|&i| diff[i..].starts_with(HEADER) && (i == 0 || diff[i - 1] == b'\n'))
        .collect();
    starts.push(diff.len());
    starts
        .windows(2)
        .filter(|w| std::str::from_utf8(&diff[w[0]..w[1]]).is_err())
        .filter_map(|w| {
            let section = &diff[w[0]..w[1]];
            let line = section.split(|b| *b == b'\n').next()?;
            let line = String::from_utf8_lossy(line);
            line.rsplit_once(" b/").map(|(_, p)| p.to_owned())
        })
        .collect()
}

/// The diff `args` ask for, as text. JSON carries only UTF-8, so files in
/// another encoding go as binary patches (their bytes intact, which
/// `git apply` restores) instead of being mangled into UTF-8.
fn utf8_diff(git: &super::git::Git, args: &[&str]) -> Result<String, WorkspaceError> {
    let raw = git.run(args).map_err(WorkspaceError::Diff)?;
    let raw = match String::from_utf8(raw) {
        Ok(text) => return Ok(text),
        Err(e) => e.into_bytes(),
    };
    let paths = non_utf8_paths(&raw);
    // gitattributes patterns cannot hold every path: any that is not plain
    // makes every file binary, which still applies exactly.
    let plain = |p: &String| {
        !p.is_empty()
            && !p
                .chars()
                .any(|c| c.is_whitespace() || "*?[]\\\"#!".contains(c))
    };
    let attributes = if !paths.is_empty() && paths.iter().all(plain) {
        paths.iter().map(|p| format!("/{p} -diff\n")).collect()
    } else {
        "* -diff\n".to_owned()
    };
    let scratch = super::git::scratch_dir().map_err(WorkspaceError::Diff)?;
    let file = scratch.path().join("attributes");
    std::fs::write(&file, attributes)
        .map_err(|e| WorkspaceError::Diff(super::git::GitError::Scratch(e)))?;
    let setting = format!("core.attributesFile={}", file.display());
    let mut binary = vec!["-c", setting.as_str()];
    binary.extend_from_slice(args);
    let raw = git.run(&binary).map_err(WorkspaceError::Diff)?;
    String::from_utf8(raw).map_err(|_| {
        WorkspaceError::NotUtf8(
            "a changed file's path is not UTF-8, which a JSON answer cannot carry".into(),
        )
    })
}

/// `STATE:OFFSET`.
pub fn cursor(state: &str, offset: usize) -> String {
    format!("{state}:{offset}")
}

pub fn parse_cursor(c: &str) -> Result<(String, usize), WorkspaceError> {
    c.rsplit_once(':')
        .and_then(|(s, o)| Some((s.to_owned(), o.parse().ok()?)))
        .ok_or_else(|| {
            WorkspaceError::Cursor(format!("{c:?} is not a cursor get_changes returned"))
        })
}

fn status_name(code: &str) -> &'static str {
    match code.chars().next() {
        Some('A') => "added",
        Some('D') => "deleted",
        Some('R') => "renamed",
        Some('C') => "copied",
        Some('T') => "type_changed",
        _ => "modified",
    }
}

/// `git diff-tree --name-status -z -M` output as files.
pub fn parse_name_status(out: &[u8]) -> Vec<ChangedFile> {
    let fields = split_z(out);
    let mut files = Vec::new();
    let mut it = fields.into_iter();
    while let Some(code) = it.next() {
        let two_paths = code.starts_with('R') || code.starts_with('C');
        let Some(first) = it.next() else { break };
        let (path, old_path) = if two_paths {
            match it.next() {
                Some(new) => (new, Some(first)),
                None => (first, None),
            }
        } else {
            (first, None)
        };
        files.push(ChangedFile {
            path,
            status: status_name(&code).to_owned(),
            old_path,
        });
    }
    files
}

/// The page of the workspace's changes against `against_commit` that
/// starts at `cursor` (the first without one).
pub fn changes(
    repo: &WorkspaceRepo,
    against: String,
    against_commit: String,
    cursor_arg: Option<&str>,
    page_bytes: Option<usize>,
) -> Result<ChangesPage, WorkspaceError> {
    let git = repo.git();
    let tree = git.snapshot_tree().map_err(WorkspaceError::Diff)?;
    let state = format!(
        "{}.{}",
        &tree[..tree.len().min(12)],
        &against_commit[..against_commit.len().min(12)]
    );
    let offset = match cursor_arg {
        None => 0,
        Some(c) => {
            let (was, offset) = parse_cursor(c)?;
            if was != state {
                return Err(WorkspaceError::Cursor(
                    "the workspace (or what it is compared with) changed since the first page; \
                     call get_changes again without a cursor"
                        .into(),
                ));
            }
            offset
        }
    };
    let common = ["diff-tree", "-r", "-M", "--no-color", "--full-index"];
    let mut diff_args = common.to_vec();
    diff_args.extend(["-p", "--binary", &against_commit, &tree]);
    let diff = utf8_diff(&git, &diff_args)?;
    let mut status_args = common.to_vec();
    status_args.extend(["-z", "--name-status", &against_commit, &tree]);
    let files = parse_name_status(&git.run(&status_args).map_err(WorkspaceError::Diff)?);
    if offset > diff.len() || !diff.is_char_boundary(offset) {
        return Err(WorkspaceError::Cursor(format!(
            "offset {offset} is not in the diff of {} bytes",
            diff.len()
        )));
    }
    let max = page_bytes
        .unwrap_or(DEFAULT_PAGE_BYTES)
        .clamp(MIN_PAGE_BYTES, MAX_PAGE_BYTES);
    let end = page_end(&diff, offset, max);
    Ok(ChangesPage {
        against,
        against_commit,
        files,
        offset,
        total_bytes: diff.len(),
        next_cursor: (end < diff.len()).then(|| cursor(&state, end)),
        diff: diff[offset..end].to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, lines: usize) -> String {
        let mut s = format!("diff --git a/{name} b/{name}\n--- a/{name}\n+++ b/{name}\n");
        for i in 0..lines {
            s.push_str(&format!("+line {i}\n"));
        }
        s
    }

    #[test]
    fn pages_cut_between_files_and_cover_the_diff_exactly() {
        let diff = [file("a", 3), file("b", 3), file("c", 3)].concat();
        let one = file("a", 3).len();
        assert_eq!(page_end(&diff, 0, diff.len()), diff.len());
        assert_eq!(
            page_end(&diff, 0, one + 10),
            one,
            "the second file does not fit"
        );
        let mut offset = 0;
        let mut pages = Vec::new();
        while offset < diff.len() {
            let end = page_end(&diff, offset, one + 10);
            pages.push(&diff[offset..end]);
            offset = end;
        }
        assert_eq!(pages.len(), 3);
        assert!(pages.iter().all(|p| p.starts_with("diff --git")));
        assert_eq!(pages.concat(), diff);
    }

    #[test]
    fn a_file_larger_than_a_page_is_cut_at_lines() {
        let diff = file("big", 100);
        let end = page_end(&diff, 0, 50);
        assert!(end <= 50 && diff[..end].ends_with('\n'), "{end}");
        let s = "ééé";
        assert_eq!(page_end(s, 0, 3), 2, "never inside a character");
        assert_eq!(page_end(s, 0, 1), 2);
    }

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        assert_eq!(
            parse_cursor(&cursor("ab.cd", 42)).unwrap(),
            ("ab.cd".into(), 42)
        );
        assert!(parse_cursor("nope").is_err());
    }

    #[test]
    fn files_that_are_not_utf8_are_found_by_their_section() {
        let mut diff = file("ok.txt", 1).into_bytes();
        diff.extend_from_slice(b"diff --git a/l1.txt b/l1.txt\n+caf\xe9\n");
        diff.extend_from_slice(file("also ok", 1).as_bytes());
        assert_eq!(non_utf8_paths(&diff), ["l1.txt"]);
        assert!(non_utf8_paths(file("x", 2).as_bytes()).is_empty());
    }

    #[test]
    fn name_status_reads_renames() {
        let out = b"M\0a.txt\0R100\0old.txt\0new.txt\0D\0gone\0A\0bin.png\0";
        let files = parse_name_status(out);
        assert_eq!(files.len(), 4);
        assert_eq!(files[1].status, "renamed");
        assert_eq!(files[1].old_path.as_deref(), Some("old.txt"));
        assert_eq!(files[1].path, "new.txt");
        assert_eq!(files[2].status, "deleted");
    }
}
