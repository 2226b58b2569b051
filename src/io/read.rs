//! Reading input files defensively: a model file, checkpoint, tokenizer file or corpus must be a
//! regular file (a FIFO or device would block or never end), and whole-file reads are bounded.
//!
//! The caps below are far above any real file of each kind; a larger file is refused before
//! anything is read (a `config.json` of a gigabyte is a mistake or an attack, not a model).

use crate::error::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// Largest `config.json` (and other small JSON files such as `tokenizer_config.json`): 1 MiB.
/// cbindgen:ignore
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;
/// Largest `tokenizer.json`: 64 MiB (a 250k-entry multilingual tokenizer is about 20 MB).
/// cbindgen:ignore
pub const MAX_TOKENIZER_JSON_BYTES: u64 = 64 << 20;
/// Largest `vocab.txt`: 16 MiB (BERT's 30k-entry vocabulary is 230 KB).
/// cbindgen:ignore
pub const MAX_VOCAB_TXT_BYTES: u64 = 16 << 20;
/// Largest safetensors JSON header: 100 MB, the limit of the `safetensors` crate itself.
/// cbindgen:ignore
pub const MAX_SAFETENSORS_HEADER_BYTES: u64 = 100_000_000;

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
/// anything, and reserving the buffer fallibly. `u64::MAX` means no cap (the file's length still
/// decides the one allocation).
pub fn read_regular(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    let mut f = open_regular(path)?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    if len > max_bytes {
        return Err(Error::format(
            path,
            format!("file is {len} bytes, more than the limit of {max_bytes} for this kind of file"),
        ));
    }
    let mut bytes = Vec::new();
    let reserve = usize::try_from(len)
        .map_err(|_| Error::OutOfMemory(format!("{}: {len} bytes do not fit in the address space", path.display())))?;
    bytes
        .try_reserve_exact(reserve)
        .map_err(|_| Error::OutOfMemory(format!("{}: could not allocate {len} bytes", path.display())))?;
    // take(): a file that grows while we read stays within the limit (and within what we reserved,
    // plus one byte to notice the growth).
    let limit = max_bytes.min(len).saturating_add(1);
    f.by_ref().take(limit).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > len {
        return Err(Error::format(path, format!("file grew past its {len} bytes while being read; try again")));
    }
    Ok(bytes)
}

/// [`read_regular`] for a text file: bytes that are not UTF-8 are an [`Error::Format`] naming the
/// file and the offset, not an I/O error.
pub fn read_regular_utf8(path: &Path, max_bytes: u64) -> Result<String> {
    let bytes = read_regular(path, max_bytes)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::format(path, format!("not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_kinds() {
        let d = std::env::temp_dir().join(format!("electra-read-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let f = d.join("a.txt");
        std::fs::write(&f, b"hello").unwrap();
        assert_eq!(read_regular(&f, 5).unwrap(), b"hello");
        assert_eq!(read_regular(&f, u64::MAX).unwrap(), b"hello");
        assert!(matches!(read_regular(&f, 4), Err(Error::Format { .. })));
        assert!(matches!(read_regular(&d, 100), Err(Error::Format { .. })));
        std::fs::write(&f, b"h\xffi").unwrap();
        let e = read_regular_utf8(&f, 100).unwrap_err();
        assert!(matches!(e, Error::Format { .. }) && e.to_string().contains("offset 1"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
