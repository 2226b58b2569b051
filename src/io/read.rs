//! Reading input files defensively: a model file, checkpoint, tokenizer file or corpus must be a
//! regular file (a FIFO or device would block or never end), and whole-file reads are bounded.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Opens `path` for reading, refusing anything that is not a regular file (directory, FIFO,
/// socket, device) with a clear error. The open itself does not block on a FIFO.
pub fn open_regular(path: &Path) -> Result<File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever. It has no
        // effect on reads of a regular file, the only kind we go on to read.
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let f = opts.open(path).map_err(|e| Error::io(path, e))?;
    let meta = f.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        let kind = if meta.is_dir() { "a directory" } else { "not a regular file (a FIFO, socket or device?)" };
        return Err(Error::format(path, format!("expected a regular file, this is {kind}")));
    }
    Ok(f)
}

/// Reads all of the regular file `path`, refusing one larger than `max_bytes` before reading
/// anything, and reserving the buffer fallibly.
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let mut f = open_regular(path)?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > max_bytes {
        return Err(Error::format(path, format!("file is {len} bytes, more than the limit of {max_bytes}")));
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(len as usize)
        .map_err(|_| Error::OutOfMemory(format!("{}: could not allocate {len} bytes", path.display())))?;
    // take(): a file that grows while we read stays within the limit.
    f.by_ref().take(max_bytes + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(Error::format(path, format!("file grew past the limit of {max_bytes} bytes while reading")));
    }
    Ok(bytes)
}
