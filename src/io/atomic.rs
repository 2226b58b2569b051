//! Crash-safe writes.
//!
//! - [`write_atomic`]: one file. A temporary file beside the target is written, fsynced and
//!   renamed over the target, then the directory is fsynced.
//! - [`commit_dir`]: a whole directory (a trainer checkpoint, an exported pair) as one unit. It
//!   is filled in a temporary directory beside the target (`.NAME.tmp-PID-N`), every file and
//!   directory fsynced, then swapped into place: on Linux with `renameat2(RENAME_EXCHANGE)`, a
//!   truly atomic exchange of the two directories; elsewhere (or on filesystems without it) by
//!   renaming the old version aside (`.NAME.old-PID-N`), the new one into place, and removing
//!   the old one. A crash between those two renames leaves NAME missing and the old version
//!   beside it, which [`resolve`] (called by every loader) restores. A crash or kill at any
//!   point therefore leaves either the old or the new directory, never a mix.
//!
//! Files in the old directory that the new version does not contain and that are not model
//! files we write (`config.json`, `model.safetensors`, `trainer.safetensors`) are carried into
//! the new version (hard-linked, or copied where links fail), so a user's `tokenizer.json`
//! placed next to an export survives the next export. Model files are never carried: an export
//! that no longer holds a generator must not inherit the old one (that would be a mixed pair).
//!
//! Temporaries left by a killed process (`.NAME.tmp-PID-*`, `.NAME.old-PID-*` and the per-file
//! `.FILE.tmp-PID` of [`write_atomic`]) whose PID is no longer alive are removed by the next
//! save of the same target.

use crate::error::{Error, Result};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Files our writers produce: never carried from an old version into a new one.
const MODEL_FILES: [&str; 3] = ["config.json", "model.safetensors", "trainer.safetensors"];

/// Refuses an empty path, naming the argument (`what`), before anything touches the disk (an
/// empty path would otherwise mean the current directory).
pub fn check_path(path: &Path, what: &str) -> Result<()> {
    if path.as_os_str().is_empty() {
        return Err(Error::arg(format!("{what}: the path is empty; pass the directory to write")));
    }
    Ok(())
}

/// The parent directory and file name of `path` (`.` when it has no parent).
fn split(path: &Path) -> Result<(PathBuf, String)> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::arg(format!("{} does not end in a file or directory name", path.display())))?;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    Ok((dir.to_path_buf(), name.to_string_lossy().into_owned()))
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    check_path(path, "file to write")?;
    let (dir, name) = split(path)?;
    remove_stale(&dir, &name, &["tmp"]);
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        write_synced(&tmp, bytes)?;
        fail_point(path)?;
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        sync_dir(&dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to a new file at `path` and fsyncs it (for files inside a directory that
/// [`commit_dir`] commits as a whole).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// Persists a directory's entries (renames, new files); not every filesystem supports fsync
/// on a directory, so failures are ignored.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Creates `dir` and its parents.
pub fn create_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
}

static COMMIT_SEQ: AtomicU64 = AtomicU64::new(0);

/// Writes the directory `target` as one unit: `fill` writes every file into the fresh
/// temporary directory it is given; then the result replaces `target` atomically (see the
/// module docs). On error `target` is unchanged and the temporary directory is removed.
pub fn commit_dir(target: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    check_path(target, "directory to write")?;
    let (parent, name) = split(target)?;
    create_dir(&parent)?;
    // A crash of an earlier save between its two renames: put the old version back first.
    resolve(target)?;
    remove_stale(&parent, &name, &["tmp", "old"]);
    let seq = COMMIT_SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = parent.join(format!(".{name}.tmp-{}-{seq}", std::process::id()));
    let old = parent.join(format!(".{name}.old-{}-{seq}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let prepared = (|| {
        fill(&tmp)?;
        crash_point(CommitStep::AfterFill)?;
        if target.is_dir() {
            carry(target, &tmp)?;
        }
        sync_tree(&tmp)?;
        crash_point(CommitStep::BeforeSwap)
    })();
    match prepared {
        Err(e) if is_simulated_crash(&e) => return Err(e),
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            return Err(e);
        }
        Ok(()) => {}
    }
    swap_into_place(&tmp, target, &old)?;
    sync_dir(&parent);
    Ok(())
}

/// Puts the filled `tmp` at `target`; the previous version (if any) is removed once the new
/// one is in place.
fn swap_into_place(tmp: &Path, target: &Path, old: &Path) -> Result<()> {
    if !target.exists() {
        fs::rename(tmp, target).map_err(|e| Error::io(target, e))?;
        return Ok(());
    }
    if exchange(tmp, target)? {
        // `tmp` now holds the previous version; a crash before this removal leaves a stale
        // temporary that the next save removes.
        sync_dir(target.parent().unwrap_or(Path::new(".")));
        crash_point(CommitStep::BeforeRemoveOld)?;
        remove_tree(tmp);
        return Ok(());
    }
    fs::rename(target, old).map_err(|e| {
        let _ = fs::remove_dir_all(tmp);
        Error::io(target, e)
    })?;
    crash_point(CommitStep::BetweenRenames)?;
    if let Err(e) = fs::rename(tmp, target) {
        // Put the old version back; if even that fails, `resolve` restores it on the next load.
        let _ = fs::rename(old, target);
        let _ = fs::remove_dir_all(tmp);
        return Err(Error::io(target, e));
    }
    sync_dir(target.parent().unwrap_or(Path::new(".")));
    crash_point(CommitStep::BeforeRemoveOld)?;
    remove_tree(old);
    Ok(())
}

/// Atomically exchanges two directories; `Ok(false)` where the OS or filesystem cannot (the
/// caller falls back to two renames).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> Result<bool> {
    use std::os::unix::ffi::OsStrExt;
    if FORCE_FALLBACK.with(|f| f.get()) {
        return Ok(false);
    }
    let cstr = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| Error::arg(format!("{} contains a NUL byte", p.display())))
    };
    let (ca, cb) = (cstr(a)?, cstr(b)?);
    // SAFETY: both pointers are valid NUL-terminated strings that outlive the call; the
    // syscall only reads them. AT_FDCWD resolves relative paths as rename(2) would.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP) => Ok(false),
        _ => Err(Error::io(b, err)),
    }
}

#[cfg(not(target_os = "linux"))]
fn exchange(_a: &Path, _b: &Path) -> Result<bool> {
    Ok(false)
}

/// Where `target` can be read: `target` itself, or, when a save crashed between its two
/// renames, the previous version left beside it as `.NAME.old-PID-N`. If that process is gone
/// the old version is renamed back to `target`; while it still runs, its path is returned as is
/// (the save is about to finish and must not be disturbed).
pub fn resolve(target: &Path) -> Result<PathBuf> {
    if target.exists() || target.as_os_str().is_empty() {
        return Ok(target.to_path_buf());
    }
    let Ok((parent, name)) = split(target) else { return Ok(target.to_path_buf()) };
    let Some((old, pid)) = temporaries(&parent, &name, "old").into_iter().next() else {
        return Ok(target.to_path_buf());
    };
    if pid_alive(pid) && pid != std::process::id() {
        return Ok(old);
    }
    fs::rename(&old, target).map_err(|e| Error::io(&old, e))?;
    sync_dir(&parent);
    Ok(target.to_path_buf())
}

/// Entries `.NAME.KIND-PID[-N]` in `dir`, with their PID.
fn temporaries(dir: &Path, name: &str, kind: &str) -> Vec<(PathBuf, u32)> {
    let prefix = format!(".{name}.{kind}-");
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(PathBuf, u32)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let file = e.file_name();
            let rest = file.to_str()?.strip_prefix(&prefix)?.to_string();
            let pid = rest.split('-').next()?.parse().ok()?;
            Some((e.path(), pid))
        })
        .collect();
    found.sort();
    found
}

/// Removes `.NAME.KIND-PID*` temporaries in `dir` whose process is gone.
fn remove_stale(dir: &Path, name: &str, kinds: &[&str]) {
    for kind in kinds {
        for (path, pid) in temporaries(dir, name, kind) {
            if !pid_alive(pid) {
                remove_tree(&path);
            }
        }
    }
}

/// Whether a process with this id exists (a process we may not signal still exists).
fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
        if pid <= 0 {
            return false;
        }
        // SAFETY: signal 0 performs only the existence and permission check; no signal is sent.
        let rc = unsafe { libc::kill(pid, 0) };
        rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
    }
    #[cfg(not(unix))]
    {
        // Without a cheap check, only our own temporaries count as alive.
        pid == std::process::id()
    }
}

fn remove_tree(path: &Path) {
    let _ = if path.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
}

/// Whether a file name is one of our temporaries (`.X.tmp-…`, `.X.old-…`).
fn is_temporary(name: &OsStr) -> bool {
    let n = name.to_string_lossy();
    n.starts_with('.') && (n.contains(".tmp-") || n.contains(".old-"))
}

/// Carries what the new version lacks from the old directory `from` into `to` (recursively),
/// except model files and temporaries (see the module docs).
fn carry(from: &Path, to: &Path) -> Result<()> {
    for entry in fs::read_dir(from).map_err(|e| Error::io(from, e))? {
        let entry = entry.map_err(|e| Error::io(from, e))?;
        let name = entry.file_name();
        if is_temporary(&name) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        let kind = entry.file_type().map_err(|e| Error::io(&src, e))?;
        if kind.is_dir() {
            let created = !dst.exists();
            if created {
                fs::create_dir(&dst).map_err(|e| Error::io(&dst, e))?;
            }
            if dst.is_dir() {
                carry(&src, &dst)?;
            }
            if created {
                // Nothing carried (an old tower's model files only): leave no empty directory.
                let _ = fs::remove_dir(&dst);
            }
        } else if !dst.exists()
            && !MODEL_FILES.iter().any(|m| name == OsStr::new(m))
            && fs::hard_link(&src, &dst).is_err()
        {
            fs::copy(&src, &dst).map_err(|e| Error::io(&dst, e))?;
        }
    }
    Ok(())
}

/// fsyncs every file and directory under `dir` (and `dir` itself), so that the swap never
/// publishes a directory whose contents are still only in the page cache.
fn sync_tree(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let path = entry.map_err(|e| Error::io(dir, e))?.path();
        if path.is_dir() {
            sync_tree(&path)?;
        } else {
            File::open(&path).and_then(|f| f.sync_all()).map_err(|e| Error::io(&path, e))?;
        }
    }
    sync_dir(dir);
    Ok(())
}

// === Test hooks ===

/// A point inside [`commit_dir`] where a simulated crash can be injected.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitStep {
    /// Every file of the new version is written, nothing carried or swapped yet.
    AfterFill,
    /// The new version is complete and synced, about to be swapped in.
    BeforeSwap,
    /// Two-rename fallback only: the old version is aside, the new one not yet in place.
    BetweenRenames,
    /// The new version is in place, the old one not yet removed.
    BeforeRemoveOld,
}

thread_local! {
    static FAIL_WRITE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    static CRASH_AT: std::cell::Cell<Option<CommitStep>> = const { std::cell::Cell::new(None) };
    static FORCE_FALLBACK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

const SIMULATED_CRASH: &str = "simulated crash";

/// Test hook: while set on this thread, writing a file whose path ends with these components
/// (`"trainer.safetensors"`, `"generator/model.safetensors"`) fails after its data is on disk
/// but before the rename, as a full disk would.
#[doc(hidden)]
pub fn simulate_write_failure(path_suffix: Option<&str>) {
    FAIL_WRITE.with(|f| *f.borrow_mut() = path_suffix.map(str::to_string));
}

/// Test hook: while set on this thread, [`commit_dir`] stops at this step as a `kill -9` would:
/// it returns an I/O error and cleans nothing up.
#[doc(hidden)]
pub fn simulate_crash(at: Option<CommitStep>) {
    CRASH_AT.with(|c| c.set(at));
}

/// Test hook: while set on this thread, [`commit_dir`] swaps with two renames instead of
/// `renameat2(RENAME_EXCHANGE)`, as on systems without it.
#[doc(hidden)]
pub fn force_rename_fallback(on: bool) {
    FORCE_FALLBACK.with(|f| f.set(on));
}

fn fail_point(path: &Path) -> Result<()> {
    let hit = FAIL_WRITE.with(|f| f.borrow().as_deref().is_some_and(|n| path.ends_with(n)));
    if hit {
        return Err(Error::io(path, std::io::Error::other("simulated failure before rename")));
    }
    Ok(())
}

fn crash_point(step: CommitStep) -> Result<()> {
    if CRASH_AT.with(|c| c.get()) == Some(step) {
        return Err(Error::io(format!("{step:?}"), std::io::Error::other(SIMULATED_CRASH)));
    }
    Ok(())
}

fn is_simulated_crash(e: &Error) -> bool {
    matches!(e, Error::Io { source, .. } if source.to_string() == SIMULATED_CRASH)
}
