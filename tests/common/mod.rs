//! Where the tests find shared data.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The golden files made by the original implementation (`tests/data/golden`,
/// or `$POLYPHONY_GOLDEN_DIR`).
pub fn golden_dir() -> PathBuf {
    let dir = std::env::var_os("POLYPHONY_GOLDEN_DIR").map(PathBuf::from).unwrap_or_else(|| data_dir().join("golden"));
    assert!(
        dir.join("SUMMARY.md").is_file(),
        "golden files not found at {}: they live in tests/data/golden, or set POLYPHONY_GOLDEN_DIR",
        dir.display()
    );
    dir
}

/// The test data kept in the repository (`tests/data`, see its README).
pub fn data_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
}

/// Every golden piece's folder, sorted.
pub fn golden_pieces() -> Vec<PathBuf> {
    let mut pieces: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("golden dir readable")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("events.txt").is_file())
        .collect();
    pieces.sort();
    assert!(pieces.len() >= 9, "expected at least 9 golden pieces, found {}", pieces.len());
    pieces
}

/// The source score of a golden piece (`source.mxl` or `source.xml`).
pub fn golden_source(piece: &std::path::Path) -> PathBuf {
    ["source.mxl", "source.xml"]
        .iter()
        .map(|name| piece.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no source file in {}", piece.display()))
}

/// The Bach chorales of the music21 wheel, fetched by `./build.sh corpus`
/// into `~/.cache/polyphony/bach` (or `$POLYPHONY_BACH_DIR`).
pub fn bach_dir() -> PathBuf {
    let dir = std::env::var_os("POLYPHONY_BACH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache/polyphony/bach"));
    assert!(
        dir.join("bwv66.6.mxl").is_file(),
        "the Bach corpus is missing at {}: run `./build.sh corpus` (downloads the music21==10.5.1 wheel \
         from PyPI and extracts music21/corpus/bach), or set POLYPHONY_BACH_DIR",
        dir.display()
    );
    dir
}

/// A test's own scratch directory (under the system's temp dir, named
/// `polyphony-{name}-{pid}`, so that tests and test binaries running at the
/// same time never share one), made empty; removed when the guard is
/// dropped after the test passed, and kept after a failure, to look at.
/// Keep the guard alive for as long as the directory is used.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("polyphony-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("scratch directory {}: {e}", dir.display()));
        Scratch(dir)
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
