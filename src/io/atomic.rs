//! Crash-safe file writes: write a temporary file beside the target, fsync it, rename it over
//! the target, fsync the directory. A failure at any point leaves the old file intact.

use crate::error::{Error, Result};
use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| Error::arg(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        drop(f);
        fail_point(path)?;
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        // Persist the rename itself; not every filesystem supports fsync on a directory.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

thread_local! {
    static FAIL_WRITE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Test hook: while set on this thread, writing a file with this name fails after its data is
/// on disk but before the rename, as a crash at the worst moment would.
#[doc(hidden)]
pub fn simulate_write_failure(file_name: Option<&str>) {
    FAIL_WRITE.with(|f| *f.borrow_mut() = file_name.map(str::to_string));
}

fn fail_point(path: &Path) -> Result<()> {
    let hit = FAIL_WRITE
        .with(|f| f.borrow().as_deref().is_some_and(|n| path.file_name().is_some_and(|p| p.to_string_lossy() == n)));
    if hit {
        return Err(Error::io(path, std::io::Error::other("simulated failure before rename")));
    }
    Ok(())
}

/// Creates `dir` and its parents.
pub fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}
