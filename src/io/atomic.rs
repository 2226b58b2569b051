//! Saves that respect their destination and survive a crash (the save contract,
//! docs/ROBUSTNESS.md).
//!
//! - **Only our own entries.** A save writes its files (and the directories that hold them) into
//!   the destination and nothing else; it never removes or replaces anything it did not write
//!   there. What a save wrote is recorded in the destination's `.electra-manifest.json` (path,
//!   size, modification time). The next save into the same directory may replace or remove
//!   exactly those entries, while each is still the file we wrote: an export without a generator
//!   removes the previous export's generator, so no mixed pair can be loaded. Anything else in
//!   the way (a user's `config.json`, a directory where we would write a file) refuses the save
//!   before it changes anything.
//! - **The destination.** A path that exists and is not a directory is an error ("not a
//!   directory"); a symbolic link to a directory saves into the directory it points to.
//! - **Staging.** New entries are written and fsynced in a staging directory (`.electra-save-PID-N`
//!   inside the destination, or beside it while the destination does not exist yet), then moved
//!   into place by renames on one filesystem (checked first, so a destination whose
//!   subdirectories span mount points is refused before any change). The staging directory's
//!   `journal.json` lists the moves before the first one; a crash in the middle is finished by
//!   the next load or save of the destination (roll forward: every new file is complete before
//!   the first move), so a reader sees the old version or the new one, never a mix. A save that
//!   fails moves back what it moved and removes its staging directory: the destination is as it
//!   was and no temporary is left.
//! - **Our temporaries** are recognised by the journal inside them (our magic string), never by
//!   a name alone: a user's `.x.tmp-1` or `.electra-save-7` without our journal is never touched.
//!   Those of a process that is gone are removed (or finished) by the next save or load of the
//!   same destination.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Name prefix of our staging directories (recognised by their journal, not by this prefix).
const STAGE_PREFIX: &str = ".electra-save-";
const JOURNAL: &str = "journal.json";
/// The record of what the last save into a directory wrote there.
pub const MANIFEST: &str = ".electra-manifest.json";
const JOURNAL_MAGIC: &str = "electra: a save in progress (removed or finished by the next save or load)";
const MANIFEST_MAGIC: &str = "electra: the files the last save wrote into this directory";
/// How long a loader waits for another process's save into the same directory to finish.
const WAIT_FOR_SAVE: Duration = Duration::from_secs(60);

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

fn io_error(path: &Path, kind: ErrorKind, msg: String) -> Error {
    Error::io(path, std::io::Error::new(kind, msg))
}

/// Writes `bytes` to `path` atomically: staged beside it, fsynced, renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    check_path(path, "file to write")?;
    let (dir, name) = split(path)?;
    if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(io_error(path, ErrorKind::IsADirectory, "is a directory; expected a file path".into()));
    }
    clean_stale(&dir, &name);
    let stage = Stage::create(&dir, &name)?;
    let tmp = stage.dir.join("file");
    let result = (|| {
        write_synced(&tmp, bytes)?;
        fail_point(path)?;
        fs::rename(&tmp, path).map_err(|e| Error::io(path, e))?;
        sync_dir(&dir);
        Ok(())
    })();
    stage.finish(result)
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

/// Writes the directory `target` as one unit: `fill` writes every file of the new version into
/// the fresh directory it is given; then those entries are committed into `target` under the
/// save contract (see the module docs). On error `target` is as it was and nothing is left.
///
/// `unit` names what is saved ("model", "trainer"): a directory may hold one of each (a
/// checkpoint beside an export), and a save removes only entries of its own unit that its new
/// version no longer has.
pub fn commit_dir(target: &Path, unit: &str, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    check_path(target, "directory to write")?;
    match fs::metadata(target) {
        Ok(m) if m.is_dir() => {
            recover(target)?;
            // An existing directory needs no name of its own ("." and "/" are fine).
            if let Ok((parent, name)) = split(target) {
                clean_stale(&parent, &name);
            }
            merge_into(target, unit, fill)
        }
        Ok(_) => Err(io_error(
            target,
            ErrorKind::NotADirectory,
            "not a directory: a save writes a directory of files; pass a directory path (created if missing)".into(),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            if fs::symlink_metadata(target).is_ok() {
                return Err(io_error(target, ErrorKind::NotFound, "a symbolic link to nothing".into()));
            }
            let (parent, name) = split(target)?;
            create_new(target, &parent, &name, unit, fill)
        }
        Err(e) => Err(Error::io(target, e)),
    }
}

/// A new destination: staged beside it, then renamed into place in one step.
fn create_new(
    target: &Path,
    parent: &Path,
    name: &str,
    unit: &str,
    fill: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    let made = create_parents(parent)?;
    clean_stale(parent, name);
    let result = Stage::create(parent, name).and_then(|stage| {
        let new = stage.new_dir();
        let r = (|| {
            fs::create_dir(&new).map_err(|e| Error::io(&new, e))?;
            fill(&new)?;
            let (files, dirs) = entries(&new)?;
            write_manifest(&new, unit, &files, &dirs, None)?;
            crash_point(CommitStep::AfterFill)?;
            sync_tree(&new)?;
            crash_point(CommitStep::BeforeSwap)?;
            fs::rename(&new, target).map_err(|e| Error::io(target, e))?;
            sync_dir(parent);
            crash_point(CommitStep::BeforeRemoveOld)
        })();
        stage.finish(r)
    });
    if matches!(&result, Err(e) if !is_simulated_crash(e)) {
        for dir in made.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
    }
    result
}

/// Creates the missing ancestors of `dir` (and `dir`), returning those it created, outermost
/// first, so that a failed save can remove them again.
fn create_parents(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d.filter(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err()) {
        missing.push(p.to_path_buf());
        d = p.parent();
    }
    missing.reverse();
    let mut made = Vec::new();
    for p in missing {
        match fs::create_dir(&p) {
            Ok(()) => made.push(p),
            Err(e) if e.kind() == ErrorKind::AlreadyExists && p.is_dir() => {}
            Err(e) => {
                for m in made.iter().rev() {
                    let _ = fs::remove_dir(m);
                }
                return Err(Error::io(&p, e));
            }
        }
    }
    Ok(made)
}

/// An existing destination: our entries are moved in next to whatever else is there.
fn merge_into(target: &Path, unit: &str, fill: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let old = read_manifest(target)?;
    let mut stage = Stage::create(target, "")?;
    let r = (|| {
        let new = stage.new_dir();
        fs::create_dir(&new).map_err(|e| Error::io(&new, e))?;
        fill(&new)?;
        let (files, dirs) = entries(&new)?;
        let plan = plan(target, unit, old.as_ref(), &files, &dirs)?;
        check_one_filesystem(&stage.dir, target, &files)?;
        let kept: Vec<String> = old
            .iter()
            .flat_map(|m| &m.dirs)
            .filter(|d| d.unit == unit && dirs.contains(&d.path))
            .map(|d| d.path.clone())
            .chain(plan.made_dirs)
            .collect();
        write_manifest(&new, unit, &files, &kept, old.as_ref().map(|m| (m, target)))?;
        crash_point(CommitStep::AfterFill)?;
        sync_tree(&new)?;
        stage.journal.ops = plan.ops;
        stage.journal.phase = Phase::Committing;
        stage.write_journal()?;
        crash_point(CommitStep::BeforeSwap)?;
        apply(target, &stage)?;
        crash_point(CommitStep::BeforeRemoveOld)
    })();
    stage.finish(r)
}

/// The moves of one merge, in order, and the directories it creates.
struct Plan {
    ops: Vec<Op>,
    made_dirs: Vec<String>,
}

/// Decides every move and refuses, before any change, a save that would replace or remove
/// something it did not write.
fn plan(target: &Path, unit: &str, old: Option<&Manifest>, files: &[String], dirs: &[String]) -> Result<Plan> {
    let ours: HashMap<&str, &Written> = old.iter().flat_map(|m| &m.files).map(|w| (w.path.as_str(), w)).collect();
    let mut ops = Vec::new();
    let mut made_dirs = Vec::new();
    for d in dirs {
        let at = target.join(d);
        match fs::symlink_metadata(&at) {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                ops.push(Op::Mkdir(d.clone()));
                made_dirs.push(d.clone());
            }
            Err(e) => return Err(Error::io(&at, e)),
            Ok(_) if at.is_dir() => {}
            Ok(_) => {
                return Err(io_error(
                    &at,
                    ErrorKind::AlreadyExists,
                    "exists and is not a directory; the save needs a directory here and replaces nothing it did \
                     not write: move it away or save elsewhere"
                        .into(),
                ))
            }
        }
    }
    let mut places = Vec::new();
    for f in files {
        let at = target.join(f);
        match fs::symlink_metadata(&at) {
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&at, e)),
            Ok(m) => {
                let ours = m.is_file()
                    && (ours.get(f.as_str()).is_some_and(|w| still_ours(&at, w))
                        || (old.is_none() && legacy_ours(&at)));
                if !ours {
                    return Err(io_error(
                        &at,
                        ErrorKind::AlreadyExists,
                        "exists and was not written by electra's last save here (or was changed since); a save \
                         replaces nothing it did not write: move it away or save elsewhere"
                            .into(),
                    ));
                }
                ops.push(Op::Aside(f.clone()));
            }
        }
        places.push(Op::Place(f.clone()));
    }
    if old.is_some() {
        ops.push(Op::Aside(MANIFEST.into()));
    }
    ops.extend(places);
    ops.push(Op::Place(MANIFEST.into()));
    let wanted: BTreeSet<&str> = files.iter().map(String::as_str).collect();
    for w in old.iter().flat_map(|m| &m.files).filter(|w| w.unit == unit && !wanted.contains(w.path.as_str())) {
        if still_ours(&target.join(&w.path), w) {
            ops.push(Op::Remove(w.path.clone()));
        }
    }
    let kept_dirs: BTreeSet<&str> = dirs.iter().map(String::as_str).collect();
    let mut gone: Vec<&String> = old
        .iter()
        .flat_map(|m| &m.dirs)
        .filter(|d| d.unit == unit && !kept_dirs.contains(d.path.as_str()))
        .map(|d| &d.path)
        .collect();
    gone.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    ops.extend(gone.into_iter().map(|d| Op::Rmdir(d.clone())));
    Ok(Plan { ops, made_dirs })
}

/// A trainer checkpoint written before manifests existed: its header names our trainer state,
/// so it is ours to replace.
fn legacy_ours(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "trainer.safetensors")
        && super::safetensors::TensorFile::read_metadata(path).is_ok_and(|m| m.contains_key("electra_trainer"))
}

/// Refuses a merge whose renames would cross filesystems (a subdirectory that is a mount point,
/// or a symbolic link to another disk): checked before any change, since a rename there fails
/// half-way.
fn check_one_filesystem(stage: &Path, target: &Path, files: &[String]) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let dev = fs::metadata(stage).map_err(|e| Error::io(stage, e))?.dev();
        let mut seen = BTreeSet::new();
        for f in files {
            // The nearest existing directory that will hold `f`.
            let mut d = target.join(f);
            d.pop();
            while !d.exists() && d.pop() {}
            if seen.insert(d.clone()) {
                let m = fs::metadata(&d).map_err(|e| Error::io(&d, e))?;
                if m.dev() != dev {
                    return Err(io_error(
                        &d,
                        ErrorKind::CrossesDevices,
                        format!(
                            "is on another filesystem than {} (a mount point or a link to another disk): a save \
                             cannot commit across filesystems; save elsewhere",
                            target.display()
                        ),
                    ));
                }
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (stage, target, files);
    Ok(())
}

/// Runs the journal's moves; on an error, moves back what was moved (in reverse order).
fn apply(target: &Path, stage: &Stage) -> Result<()> {
    let ops = &stage.journal.ops;
    let first_place = ops.iter().position(|o| matches!(o, Op::Place(_)));
    for (i, op) in ops.iter().enumerate() {
        if let Err(e) = op.run(target, &stage.dir) {
            if !ops[..i].iter().rev().all(|o| o.undo(target, &stage.dir)) {
                // Cannot move back: the journal stays, and the next load rolls forward.
                stage.keep.set(true);
                return Err(undo_failed(e));
            }
            return Err(e);
        }
        if Some(i) == first_place {
            crash_point(CommitStep::MidSwap)?;
        }
    }
    for d in ops.iter().filter_map(|o| if let Op::Mkdir(d) = o { Some(d) } else { None }) {
        sync_dir(&target.join(d));
    }
    sync_dir(target);
    Ok(())
}

/// Says, in the error of a save that could not be moved back, that its journal finishes it.
fn undo_failed(e: Error) -> Error {
    const NOTE: &str = " (the save could not be undone; the next load or save of this directory finishes it)";
    match e {
        Error::Io { path, source } => {
            let msg = format!("{source}{NOTE}");
            Error::io(path, std::io::Error::new(source.kind(), msg))
        }
        other => other,
    }
}

// === Staging directories and their journal ===

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
enum Phase {
    /// Writing the new version; the destination is untouched.
    Filling,
    /// Moving entries; a crash here is rolled forward.
    Committing,
}

/// One step of a merge; paths are relative to the destination, `/`-separated.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(tag = "op", content = "path", rename_all = "snake_case")]
enum Op {
    /// Create a directory the new version needs.
    Mkdir(String),
    /// Move the previous version of an entry we rewrite into the staging directory's `old/`.
    Aside(String),
    /// Move a new entry from `new/` into place.
    Place(String),
    /// Move an entry the previous save wrote, absent from the new version, into `old/`.
    Remove(String),
    /// Remove a directory the previous save created, if it is empty now.
    Rmdir(String),
}

impl Op {
    fn run(&self, target: &Path, stage: &Path) -> Result<()> {
        match self {
            Op::Mkdir(p) => fs::create_dir(target.join(p)).map_err(|e| Error::io(target.join(p), e)),
            Op::Aside(p) | Op::Remove(p) => move_file(&target.join(p), &stage.join("old").join(p)),
            Op::Place(p) => move_file(&stage.join("new").join(p), &target.join(p)),
            Op::Rmdir(p) => {
                let _ = fs::remove_dir(target.join(p));
                Ok(())
            }
        }
    }

    /// Reverses a step that ran; false if that failed.
    fn undo(&self, target: &Path, stage: &Path) -> bool {
        match self {
            Op::Mkdir(p) => fs::remove_dir(target.join(p)).is_ok(),
            Op::Aside(p) | Op::Remove(p) => fs::rename(stage.join("old").join(p), target.join(p)).is_ok(),
            Op::Place(p) => fs::rename(target.join(p), stage.join("new").join(p)).is_ok(),
            Op::Rmdir(_) => true,
        }
    }

    /// Runs the step again after a crash, if it had not run (each step's result tells).
    fn roll_forward(&self, target: &Path, stage: &Path) -> Result<()> {
        match self {
            Op::Mkdir(p) if target.join(p).is_dir() => Ok(()),
            Op::Aside(p) | Op::Remove(p)
                if stage.join("old").join(p).exists() || fs::symlink_metadata(target.join(p)).is_err() =>
            {
                Ok(())
            }
            Op::Place(p) if fs::symlink_metadata(stage.join("new").join(p)).is_err() => Ok(()),
            op => op.run(target, stage),
        }
    }
}

fn move_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    fs::rename(from, to).map_err(|e| Error::io(to, e))
}

#[derive(Serialize, Deserialize)]
struct Journal {
    /// The marker that makes this directory ours: [`JOURNAL_MAGIC`].
    magic: String,
    pid: u32,
    /// The writer's start time (Linux), so that a reused process id is not taken for it.
    #[serde(default)]
    start: Option<u64>,
    /// The destination's name when the staging directory is beside it (a new directory, one
    /// file); empty when it is inside the destination.
    target: String,
    phase: Phase,
    #[serde(default)]
    ops: Vec<Op>,
}

/// Staging directories of this process still in use (a crash simulated by a test drops one
/// from here, which makes it stale as a dead process's would be).
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SEQ: AtomicU64 = AtomicU64::new(0);

struct Stage {
    dir: PathBuf,
    name: String,
    journal: Journal,
    /// Set when a failed merge could not move back what it moved: the journal must stay, so
    /// that the next load finishes the save.
    keep: std::cell::Cell<bool>,
}

impl Stage {
    /// A new staging directory in `dir`, its journal written before anything else.
    fn create(dir: &Path, target: &str) -> Result<Stage> {
        let pid = std::process::id();
        loop {
            let name = format!("{STAGE_PREFIX}{pid}-{}", SEQ.fetch_add(1, Ordering::Relaxed));
            let path = dir.join(&name);
            match fs::create_dir(&path) {
                Ok(()) => {
                    LIVE.lock().unwrap_or_else(|p| p.into_inner()).push(name.clone());
                    let journal = Journal {
                        magic: JOURNAL_MAGIC.into(),
                        pid,
                        start: start_time(pid),
                        target: target.into(),
                        phase: Phase::Filling,
                        ops: Vec::new(),
                    };
                    let stage = Stage { dir: path, name, journal, keep: Default::default() };
                    if let Err(e) = stage.write_journal() {
                        stage.discard();
                        return Err(e);
                    }
                    return Ok(stage);
                }
                // A leftover of an earlier process with our id: take the next number.
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }

    fn new_dir(&self) -> PathBuf {
        self.dir.join("new")
    }

    fn write_journal(&self) -> Result<()> {
        let json = serde_json::to_vec(&self.journal).map_err(|e| Error::Internal(format!("journal json: {e}")))?;
        let next = self.dir.join("journal.next");
        write_synced(&next, &json)?;
        fs::rename(&next, self.dir.join(JOURNAL)).map_err(|e| Error::io(&self.dir, e))?;
        sync_dir(&self.dir);
        Ok(())
    }

    fn unregister(&self) {
        LIVE.lock().unwrap_or_else(|p| p.into_inner()).retain(|n| n != &self.name);
    }

    fn discard(self) {
        let _ = fs::remove_dir_all(&self.dir);
        self.unregister();
    }

    /// Ends the save with `result`: the staging directory goes, except after a simulated crash
    /// (left as a killed process would leave it) or a save that could not be undone.
    fn finish(self, result: Result<()>) -> Result<()> {
        match &result {
            Err(e) if is_simulated_crash(e) || self.keep.get() => self.unregister(),
            _ => self.discard(),
        }
        result
    }
}

/// Our staging directories in `dir` (those holding our journal), with their journals.
fn stages(dir: &Path) -> Vec<(PathBuf, String, Journal)> {
    let Ok(entries) = fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<_> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            if !name.starts_with(STAGE_PREFIX) || !e.file_type().ok()?.is_dir() {
                return None;
            }
            let bytes = fs::read(e.path().join(JOURNAL)).ok()?;
            let j: Journal = serde_json::from_slice(&bytes).ok()?;
            (j.magic == JOURNAL_MAGIC).then(|| (e.path(), name, j))
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

fn writer_alive(name: &str, j: &Journal) -> bool {
    if j.pid == std::process::id() {
        return LIVE.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|n| n == name);
    }
    if !pid_alive(j.pid) {
        return false;
    }
    match (j.start, start_time(j.pid)) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    }
}

/// Removes the staging directories beside a destination named `name` in `dir` (a new
/// directory or a single file) whose writer is gone.
fn clean_stale(dir: &Path, name: &str) {
    for (path, stage, j) in stages(dir) {
        if j.target == name && !writer_alive(&stage, &j) {
            let _ = fs::remove_dir_all(path);
        }
    }
}

/// Finishes or removes the staging directories inside the destination `dir` whose writer is
/// gone, and waits (bounded) for one whose writer still moves entries.
fn recover(dir: &Path) -> Result<()> {
    let deadline = Instant::now() + WAIT_FOR_SAVE;
    loop {
        let mut busy = None;
        for (path, name, j) in stages(dir).into_iter().filter(|s| s.2.target.is_empty()) {
            if writer_alive(&name, &j) {
                if j.phase == Phase::Committing {
                    busy = Some(j.pid);
                }
                continue;
            }
            if j.phase == Phase::Committing {
                for op in &j.ops {
                    op.roll_forward(dir, &path)?;
                }
                sync_dir(dir);
            }
            let _ = fs::remove_dir_all(&path);
        }
        let Some(pid) = busy else { return Ok(()) };
        if Instant::now() >= deadline {
            return Err(io_error(
                dir,
                ErrorKind::WouldBlock,
                format!("process {pid} is saving into this directory; try again when it has finished"),
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Where `target` can be read: the same path, once a save that crashed while moving entries
/// into it has been finished (rolled forward), and after waiting (at most a minute) for a save
/// in flight in another process. Every loader calls it.
pub fn resolve(target: &Path) -> Result<PathBuf> {
    if !target.as_os_str().is_empty() && fs::metadata(target).is_ok_and(|m| m.is_dir()) {
        recover(target)?;
    }
    Ok(target.to_path_buf())
}

/// The process's start time in clock ticks since boot, where the OS tells.
fn start_time(pid: u32) -> Option<u64> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces and parentheses): the 22nd
        // field of the line, starttime, is the 20th after the closing parenthesis.
        s[s.rfind(')')? + 1..].split_whitespace().nth(19)?.parse().ok()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = pid;
        None
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
        // Without a cheap check, only our own process counts as alive.
        pid == std::process::id()
    }
}

// === The manifest ===

/// One file a save wrote, as it was when written (a file changed since is no longer ours).
#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
struct Written {
    path: String,
    /// Which save wrote it ("model", "trainer").
    #[serde(default)]
    unit: String,
    size: u64,
    mtime_s: i64,
    mtime_ns: u32,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    magic: String,
    files: Vec<Written>,
    /// Directories the saves created (removed once empty and no longer needed).
    dirs: Vec<Created>,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq, Debug)]
struct Created {
    path: String,
    unit: String,
}

/// The identity of the regular file at `path` (not following links), or `None`.
fn written(path: &Path) -> Option<Written> {
    let m = fs::symlink_metadata(path).ok()?;
    if !m.is_file() {
        return None;
    }
    let (mtime_s, mtime_ns) = mtime(&m)?;
    Some(Written { path: String::new(), unit: String::new(), size: m.len(), mtime_s, mtime_ns })
}

/// Whether the file at `path` is still the one a save wrote as `w`.
fn still_ours(path: &Path, w: &Written) -> bool {
    written(path).is_some_and(|now| (now.size, now.mtime_s, now.mtime_ns) == (w.size, w.mtime_s, w.mtime_ns))
}

fn mtime(m: &fs::Metadata) -> Option<(i64, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Some((m.mtime(), u32::try_from(m.mtime_nsec()).ok()?))
    }
    #[cfg(not(unix))]
    {
        let d = m.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
        Some((i64::try_from(d.as_secs()).ok()?, d.subsec_nanos()))
    }
}

/// The manifest of `dir`, if it has one; one that is not ours refuses the save (the name is
/// ours, but the file is not, so it must not be replaced).
fn read_manifest(dir: &Path) -> Result<Option<Manifest>> {
    let path = dir.join(MANIFEST);
    let m = match fs::symlink_metadata(&path) {
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
        Ok(m) => m,
    };
    let refuse = || {
        io_error(
            &path,
            ErrorKind::AlreadyExists,
            "is not a manifest electra wrote; a save replaces nothing it did not write: move it away".into(),
        )
    };
    if !m.is_file() || m.len() > 64 << 20 {
        return Err(refuse());
    }
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, e))?;
    match serde_json::from_slice::<Manifest>(&bytes) {
        Ok(man) if man.magic == MANIFEST_MAGIC => Ok(Some(man)),
        _ => Err(refuse()),
    }
}

/// Writes the manifest of the new version (`files` as they are in `new`) into `new`, keeping
/// what the old manifest lists of other units that is still in `target` and not replaced.
fn write_manifest(
    new: &Path,
    unit: &str,
    files: &[String],
    dirs: &[String],
    old: Option<(&Manifest, &Path)>,
) -> Result<()> {
    let mut listed = Vec::with_capacity(files.len());
    for f in files {
        let path = new.join(f);
        let mut w =
            written(&path).ok_or_else(|| Error::Internal(format!("{} vanished while saving", path.display())))?;
        w.path = f.clone();
        w.unit = unit.into();
        listed.push(w);
    }
    let mut created: Vec<Created> = dirs.iter().map(|d| Created { path: d.clone(), unit: unit.into() }).collect();
    if let Some((m, target)) = old {
        let replaced: BTreeSet<&str> = files.iter().map(String::as_str).collect();
        listed.extend(
            m.files
                .iter()
                .filter(|w| {
                    w.unit != unit && !replaced.contains(w.path.as_str()) && still_ours(&target.join(&w.path), w)
                })
                .cloned(),
        );
        created.extend(m.dirs.iter().filter(|d| d.unit != unit && target.join(&d.path).is_dir()).cloned());
    }
    let m = Manifest { magic: MANIFEST_MAGIC.into(), files: listed, dirs: created };
    let json = serde_json::to_vec_pretty(&m).map_err(|e| Error::Internal(format!("manifest json: {e}")))?;
    write_synced(&new.join(MANIFEST), &json)
}

/// Every file and directory under `root`, relative and `/`-separated, sorted (directories
/// before what they hold).
fn entries(root: &Path) -> Result<(Vec<String>, Vec<String>)> {
    fn walk(root: &Path, rel: &str, files: &mut Vec<String>, dirs: &mut Vec<String>) -> Result<()> {
        let here = if rel.is_empty() { root.to_path_buf() } else { root.join(rel) };
        for e in fs::read_dir(&here).map_err(|e| Error::io(&here, e))? {
            let e = e.map_err(|e| Error::io(&here, e))?;
            let name = e.file_name().into_string().map_err(|n| Error::Internal(format!("non-UTF-8 name {n:?}")))?;
            if rel.is_empty() && (name == MANIFEST || name.starts_with(STAGE_PREFIX)) {
                return Err(Error::Internal(format!("a save wrote {name}, a name reserved for the save itself")));
            }
            let path = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let kind = e.file_type().map_err(|err| Error::io(e.path(), err))?;
            if kind.is_dir() {
                dirs.push(path.clone());
                walk(root, &path, files, dirs)?;
            } else {
                files.push(path);
            }
        }
        Ok(())
    }
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    walk(root, "", &mut files, &mut dirs)?;
    files.sort();
    dirs.sort();
    Ok((files, dirs))
}

/// fsyncs every file and directory under `dir` (and `dir` itself), so that nothing is moved
/// into place while its contents are still only in the page cache.
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
    /// Every file of the new version is written, nothing moved yet.
    AfterFill,
    /// The new version is complete and synced, its moves journaled, none made.
    BeforeSwap,
    /// Some entries are moved into place, others not yet (merges only).
    MidSwap,
    /// The new version is in place, the staging directory (with the old one) not yet removed.
    BeforeRemoveOld,
}

thread_local! {
    static FAIL_WRITE: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    static CRASH_AT: std::cell::Cell<Option<CommitStep>> = const { std::cell::Cell::new(None) };
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
