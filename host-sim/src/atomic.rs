//! Atomic file replacement: every output (checkpoint, bundle, export, plot, report) is
//! written to a temporary file in the destination's directory, flushed to disk, and
//! renamed over the destination. A crash leaves either the old file or the new one,
//! never a truncated file that a later run would load; at worst a stray `.*.tmp-*` file.
//!
//! Append-only logs (`log.csv`) are the one exception: rows are appended as they are
//! produced, and a resumed run rewrites the log (atomically) to the rows of the
//! iterations its checkpoint covers, which also drops a partial last line.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A failed atomic write, naming the destination.
///
/// The cause is part of the message and not also returned as `source()`, so a chain
/// printer (`anyhow`'s `{:#}`) shows it once.
#[derive(Debug, thiserror::Error)]
#[error("cannot write {}: {cause}", path.display())]
pub struct WriteError {
    /// The destination.
    pub path: PathBuf,
    /// The underlying failure.
    pub cause: io::Error,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temporary sibling of `path`: `.<stem>.tmp-<pid>-<n>.<ext>` (the extension is kept
/// so that writers that infer the format from it, like plotters' PNG backend, work).
fn temp_path(path: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let name = match path.extension() {
        Some(ext) => format!(".{stem}.tmp-{pid}-{n}.{}", ext.to_string_lossy()),
        None => format!(".{stem}.tmp-{pid}-{n}"),
    };
    path.with_file_name(name)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Replaces `path` with `bytes` atomically.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_with(path, |tmp| {
        let mut f = File::create(tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })
    .map_err(|cause| WriteError {
        path: path.to_path_buf(),
        cause,
    })
}

/// Replaces `path` atomically with whatever `produce` writes to the temporary path it is
/// given. On error the temporary file is removed and `path` is untouched.
pub fn write_with<E: From<io::Error>>(
    path: &Path,
    produce: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = temp_path(path);
    let result = produce(&tmp).and_then(|()| {
        // The producer may not have synced (e.g. a library writing the file itself).
        File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(parent_dir(path))?;
        Ok(())
    });
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Makes a rename durable: on Unix the directory entry is flushed too.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sgmrl-atomic-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect()
    }

    #[test]
    fn writes_and_replaces_without_leftovers() {
        let d = scratch("replace");
        let p = d.join("out.bin");
        write(&p, b"first").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"first");
        write(&p, b"second, longer").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second, longer");
        assert!(leftovers(&d).is_empty());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn failed_producer_keeps_the_old_file_and_cleans_up() {
        let d = scratch("fail");
        let p = d.join("keep.txt");
        write(&p, b"old").unwrap();
        let r: Result<(), io::Error> = write_with(&p, |tmp| {
            // Half a file, then a crash-like failure.
            fs::write(tmp, b"ne")?;
            Err(io::Error::other("simulated crash"))
        });
        assert!(r.is_err());
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert!(leftovers(&d).is_empty());
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn temp_keeps_extension_and_directory() {
        let t = temp_path(Path::new("runs/a/plot.png"));
        assert_eq!(t.parent(), Some(Path::new("runs/a")));
        assert_eq!(t.extension().unwrap(), "png");
        assert!(
            t.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".plot.tmp-")
        );
    }

    #[test]
    fn unwritable_destination_names_the_path() {
        let p = Path::new("/nonexistent-dir-sgmrl/x.bin");
        let e = write(p, b"x").unwrap_err();
        assert!(
            e.to_string().contains("/nonexistent-dir-sgmrl/x.bin"),
            "{e}"
        );
    }
}
