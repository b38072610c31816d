//! Writing files so that nothing written is lost (native only): a file that
//! replaces another appears whole or not at all, and an output never
//! replaces an existing file.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The suffix of the temporary files [`write_atomic`] renames into place.
const TEMP_SUFFIX: &str = ".partial";

/// Writes `bytes` to `path` atomically: into a temporary file beside it,
/// flushed to disk, renamed over `path`, and the folder flushed too, so a
/// crash, a kill or a full disk never leaves a half-written file where a
/// good one was. Errors name the path.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let temp = temp_path(path);
    let written = write_synced(&temp, bytes).and_then(|()| std::fs::rename(&temp, path)).and_then(|()| sync_folder(path));
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written.map_err(|e| in_path(path, e))
}

/// Removes the temporary files a killed [`write_atomic`] left in `folder`.
pub fn clear_stale_temps(folder: &Path) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Ok(()) };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(TEMP_SUFFIX) {
            std::fs::remove_file(entry.path()).map_err(|e| in_path(&entry.path(), e))?;
        }
    }
    Ok(())
}

/// Writes a new file at `path`, or, when that name is taken, at the first
/// free `stem-2.ext`, `stem-3.ext`, ...: never over an existing file, even
/// one another process creates at the same moment. Returns the path written.
pub fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    for n in 1u32.. {
        let candidate = if n == 1 { path.to_path_buf() } else { numbered(path, n) };
        match std::fs::OpenOptions::new().write(true).create_new(true).open(&candidate) {
            Ok(mut file) => {
                file.write_all(bytes).and_then(|()| file.sync_all()).map_err(|e| in_path(&candidate, e))?;
                return Ok(candidate);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(in_path(&candidate, e)),
        }
    }
    unreachable!("some number is free")
}

/// Checks before any work that `folder` exists or can be made, is a folder
/// and takes new files.
pub fn check_output_folder(folder: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(folder).map_err(|e| in_path(folder, e))?;
    let probe = folder.join(format!(".polyphony-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| in_path(folder, e))?;
    std::fs::remove_file(&probe).map_err(|e| in_path(folder, e))
}

/// `out.mid` → `out-2.mid`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let stem = path.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{n}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{n}"),
    };
    path.with_file_name(name)
}

fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or("file".into(), |n| n.to_string_lossy());
    path.with_file_name(format!(".{name}.{}{TEMP_SUFFIX}", std::process::id()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Flushes the folder holding `path`, so a rename into it survives a crash.
fn sync_folder(path: &Path) -> std::io::Result<()> {
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(folder)?.sync_all()
}

fn in_path(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A test's own empty folder; each test removes it as its last step, so
    /// that a failed test's is kept to look at (as tests/common's `Scratch`).
    fn folder(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("polyphony-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn new_files_never_replace_old_ones() {
        let dir = folder("new");
        let first = write_new(&dir.join("a.mid"), b"1").unwrap();
        let second = write_new(&dir.join("a.mid"), b"2").unwrap();
        assert_eq!((first.file_name().unwrap(), second.file_name().unwrap()), ("a.mid".as_ref(), "a-2.mid".as_ref()));
        assert_eq!(std::fs::read(&first).unwrap(), b"1");
        assert_eq!(std::fs::read(&second).unwrap(), b"2");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temp() {
        let dir = folder("atomic");
        let path = dir.join("checkpoint.safetensors");
        write_atomic(&path, b"old").unwrap();
        write_atomic(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        std::fs::write(temp_path(&path), b"left by a kill").unwrap();
        clear_stale_temps(&dir).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("checkpoint.safetensors")]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_output_folder_that_is_a_file_is_refused_before_any_work() {
        let dir = folder("check");
        let file = dir.join("taken");
        std::fs::write(&file, b"").unwrap();
        assert!(check_output_folder(&file).unwrap_err().to_string().contains("taken"));
        check_output_folder(&dir.join("made")).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
