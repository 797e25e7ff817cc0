//! Output paths checked before the work: every command that writes checks where it will
//! write first, so a long training or evaluation never ends in "cannot write". A check
//! creates nothing but the output directory the command would create anyway, and proves
//! the directory writable by creating and removing a probe file in it.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why an output path cannot be written; one line naming the path.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// A file is expected, a directory is there.
    #[error("cannot write {}: it is a directory", path.display())]
    IsDirectory {
        /// The output file.
        path: PathBuf,
    },
    /// The file's directory is missing.
    #[error("cannot write {}: directory {} does not exist", path.display(), dir.display())]
    NoDirectory {
        /// The output file.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
    },
    /// Something that is not a directory is where a directory is expected.
    #[error("cannot write {}: {} is not a directory", path.display(), dir.display())]
    NotADirectory {
        /// The output file or directory.
        path: PathBuf,
        /// The path component that is not a directory.
        dir: PathBuf,
    },
    /// The output directory could not be created.
    #[error("cannot create output directory {}: {cause}", dir.display())]
    Create {
        /// The directory.
        dir: PathBuf,
        /// Why (in the message, not also `source()`).
        cause: io::Error,
    },
    /// The directory exists but a file cannot be created in it.
    #[error("cannot write {}: {cause}", path.display())]
    NotWritable {
        /// The output file or directory.
        path: PathBuf,
        /// Why (in the message, not also `source()`).
        cause: io::Error,
    },
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates and removes a probe file in `dir` (the real test of writability: permission
/// bits do not tell for root, ACLs or read-only mounts).
fn probe(dir: &Path) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let p = dir.join(format!(".sgmrl-write-probe-{}-{n}", std::process::id()));
    OpenOptions::new().write(true).create_new(true).open(&p)?;
    std::fs::remove_file(&p)
}

/// Checks that the file `path` can be written: not a directory, in an existing, writable
/// directory. Creates nothing.
pub fn check_file(path: &Path) -> Result<(), OutputError> {
    if path.is_dir() {
        return Err(OutputError::IsDirectory {
            path: path.to_path_buf(),
        });
    }
    let dir = parent_dir(path);
    if !dir.exists() {
        return Err(OutputError::NoDirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    if !dir.is_dir() {
        return Err(OutputError::NotADirectory {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    probe(dir).map_err(|cause| OutputError::NotWritable {
        path: path.to_path_buf(),
        cause,
    })
}

/// Creates the output directory `dir` if needed and checks that files can be written in it.
pub fn check_dir(dir: &Path) -> Result<(), OutputError> {
    if dir.exists() && !dir.is_dir() {
        return Err(OutputError::NotADirectory {
            path: dir.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(dir).map_err(|cause| {
        // Name the component that is in the way rather than the OS's "File exists".
        match dir.ancestors().skip(1).find(|a| a.exists()) {
            Some(a) if !a.is_dir() => OutputError::NotADirectory {
                path: dir.to_path_buf(),
                dir: a.to_path_buf(),
            },
            _ => OutputError::Create {
                dir: dir.to_path_buf(),
                cause,
            },
        }
    })?;
    probe(dir).map_err(|cause| OutputError::NotWritable {
        path: dir.to_path_buf(),
        cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sgmrl-outputs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn files_need_an_existing_writable_directory_and_leave_nothing() {
        let d = scratch("file");
        check_file(&d.join("out.json")).unwrap();
        assert_eq!(
            std::fs::read_dir(&d).unwrap().count(),
            0,
            "probe left behind"
        );
        let e = check_file(&d).unwrap_err().to_string();
        assert_eq!(
            e,
            format!("cannot write {}: it is a directory", d.display())
        );
        let e = check_file(&d.join("missing/out.json"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            format!(
                "cannot write {0}/missing/out.json: directory {0}/missing does not exist",
                d.display()
            )
        );
        std::fs::write(d.join("f"), b"x").unwrap();
        let e = check_file(&d.join("f/out.json")).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "cannot write {0}/f/out.json: {0}/f is not a directory",
                d.display()
            )
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn directories_are_created_and_a_file_in_the_way_is_named() {
        let d = scratch("dir");
        check_dir(&d.join("a/b")).unwrap();
        assert!(d.join("a/b").is_dir());
        std::fs::write(d.join("f"), b"x").unwrap();
        for bad in [d.join("f"), d.join("f/sub/run")] {
            let e = check_dir(&bad).unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "cannot write {}: {}/f is not a directory",
                    bad.display(),
                    d.display()
                )
            );
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    /// /proc refuses new files even to root: the probe, not permission bits, decides.
    #[test]
    fn an_unwritable_directory_is_refused() {
        let p = Path::new("/proc/sgmrl-out.json");
        if !Path::new("/proc/self").exists() {
            return;
        }
        let e = check_file(p).unwrap_err().to_string();
        assert!(e.starts_with("cannot write /proc/sgmrl-out.json: "), "{e}");
    }
}
