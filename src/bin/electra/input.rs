//! What the command line reads and where it writes, under the library's rules: a file it reads
//! must be a regular file (a FIFO would block the open or the read forever, a device such as
//! /dev/zero never ends), it is bounded in size before it is read, and no line is longer than the
//! library's corpus cap; standard input is streamed a line at a time under the same line cap.
//! Output directories are checked before the work that fills them.

use electra::data::CorpusOptions;
use electra::error::{Error, Result};
use electra::io::read::read_regular;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Largest text file the CLI reads whole (training/evaluation TSV or CSV, `predict --input`,
/// metrics.jsonl): 1 GiB, far above any labelled data set (MNLI's training file is ~80 MB).
pub const MAX_TEXT_FILE_BYTES: u64 = 1 << 30;

/// The longest line the CLI accepts: the library's cap on a corpus line (1 MiB), so one rule
/// holds for every text electra reads.
pub fn max_line_bytes() -> usize {
    CorpusOptions::default().max_line_bytes
}

/// Reads the regular file `path` (at most `max_bytes`) as UTF-8 text whose lines are each at most
/// [`max_line_bytes`]; `what` names the flag in messages.
pub fn read_text(path: &Path, max_bytes: u64, what: &str) -> Result<String> {
    let bytes = read_lines_bytes(path, max_bytes, what)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::format(path, format!("not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()))
    })
}

/// [`read_text`] without the UTF-8 check (for readers that decode lossily).
pub fn read_lines_bytes(path: &Path, max_bytes: u64, what: &str) -> Result<Vec<u8>> {
    let bytes = read_regular(path, max_bytes).map_err(|e| flagged(e, what))?;
    let cap = max_line_bytes();
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.len() > cap {
            return Err(Error::format(
                path,
                format!(
                    "{what}: line {} is {} bytes, longer than the limit of {cap} bytes per line",
                    i + 1,
                    line.len()
                ),
            ));
        }
    }
    Ok(bytes)
}

/// Prefixes a file error with the flag that named the file.
fn flagged(e: Error, what: &str) -> Error {
    match e {
        Error::Format { path, msg } => Error::Format { path, msg: format!("{what}: {msg}") },
        e => e,
    }
}

/// Standard input as lines, each at most [`max_line_bytes`], read one at a time (constant
/// memory however long the stream; /dev/zero is an error at its first line, not an abort).
pub struct StdinLines {
    line: usize,
}

impl StdinLines {
    pub fn new() -> Self {
        StdinLines { line: 0 }
    }
}

impl Iterator for StdinLines {
    type Item = Result<String>;

    fn next(&mut self) -> Option<Result<String>> {
        let stdin = std::io::stdin();
        let mut r = stdin.lock();
        let cap = max_line_bytes();
        let mut buf = Vec::new();
        self.line += 1;
        loop {
            let avail = match r.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Some(Err(Error::io("<stdin>", e))),
            };
            if avail.is_empty() {
                if buf.is_empty() {
                    return None;
                }
                break;
            }
            let (take, done) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (i, true),
                None => (avail.len(), false),
            };
            if buf.len() + take > cap {
                return Some(Err(Error::format(
                    "<stdin>",
                    format!("line {} is longer than the limit of {cap} bytes per line", self.line),
                )));
            }
            buf.extend_from_slice(&avail[..take]);
            r.consume(take + usize::from(done));
            if done {
                break;
            }
        }
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
        Some(String::from_utf8(buf).map_err(|_| Error::format("<stdin>", format!("line {} is not UTF-8", self.line))))
    }
}

/// Checks, before any work, that `out` can be written as an output directory: it must name a
/// directory of its own (not `.`, `..` or `/`) when `named` is set, must not be an existing
/// non-directory, and its nearest existing ancestor must be a writable directory.
/// `flag` names the argument in messages.
pub fn check_out_dir(out: &Path, flag: &str, named: bool) -> Result<()> {
    let show = out.display();
    if out.as_os_str().is_empty() {
        return Err(Error::arg(format!("{flag}: the path is empty; pass the directory to write")));
    }
    // The library saves into `.` or `/` too (beside what is there); the command line asks for
    // a directory of the model's own, so that a run's output is one directory to move or delete.
    let bad_end = out.file_name().is_none();
    if named && bad_end {
        return Err(Error::arg(format!(
            "{flag} {show}: name the output directory itself (for example {flag} ./classifier), not . / .. or /"
        )));
    }
    match std::fs::metadata(out) {
        Ok(m) if !m.is_dir() => {
            return Err(Error::arg(format!("{flag} {show}: not a directory (an existing file is in the way)")))
        }
        Ok(_) => return writable(out, flag),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(out, e)),
        Err(_) => {}
    }
    // The directory will be created: its nearest existing ancestor must be a writable directory.
    let mut up: PathBuf = out.to_path_buf();
    loop {
        up = match up.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match std::fs::metadata(&up) {
            Ok(m) if m.is_dir() => return writable(&up, flag),
            Ok(_) => {
                return Err(Error::arg(format!("{flag} {show}: {} is not a directory", up.display())));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && up.as_os_str() != "." => continue,
            Err(e) => return Err(Error::io(&up, e)),
        }
    }
}

/// Whether `dir` takes a new entry: a directory made and removed at once (access(2) would not
/// do: root passes its permission checks where a mount still refuses, e.g. /proc or /sys).
fn writable(dir: &Path, flag: &str) -> Result<()> {
    // A name already taken (the user's, or a probe of a killed run) is left alone: try the next.
    for n in 0..64 {
        let probe = dir.join(format!(".electra-write-check-{}-{n}", std::process::id()));
        match std::fs::create_dir(&probe) {
            Ok(()) => {
                let _ = std::fs::remove_dir(&probe);
                return Ok(());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::arg(format!("{flag}: cannot write in {}: {e}", dir.display()))),
        }
    }
    Err(Error::arg(format!("{flag}: cannot write in {}: 64 probe names are taken", dir.display())))
}
