//! Running the `podnet` binary from the repository root, as a user runs it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (examples are named relative to it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `podnet ARGS` in the repository root: exit code, stdout, stderr.
pub fn podnet(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podnet"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("run podnet");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A copy of a repository file with one text replaced, in its own temporary directory
/// (removed on drop).
pub struct EditedCopy {
    dir: PathBuf,
    file: PathBuf,
}

impl EditedCopy {
    /// Copies `file` (relative to the repository root) with `from` replaced by `to`; panics
    /// when `from` is not in it.
    pub fn new(tag: &str, file: &str, from: &str, to: &str) -> Self {
        let text = std::fs::read_to_string(root().join(file)).expect("read the file to copy");
        assert!(text.contains(from), "{file} does not contain {from:?}");
        let dir = std::env::temp_dir().join(format!("podnet-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let name = Path::new(file).file_name().expect("a file name");
        let copy = dir.join(name);
        std::fs::write(&copy, text.replace(from, to)).unwrap();
        EditedCopy { dir, file: copy }
    }

    /// The copy's path.
    pub fn path(&self) -> &str {
        self.file.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for EditedCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
