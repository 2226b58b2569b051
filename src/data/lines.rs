//! Bounded line reading, shared by the corpus reader and vocabulary training, so that no line,
//! however long (a 200 MB line, a file without a single newline), is ever read whole into memory.
//!
//! A line is handed out in **pieces** of at most `piece_bytes` bytes: a line that fits is one
//! piece; a longer one is split at the last ASCII whitespace in the second half of the piece (or,
//! without one there, at a UTF-8 character boundary), and its text continues in the next piece.
//! Of a line longer than `max_line_bytes`, only the first `max_line_bytes` are handed out; the
//! rest is skipped without being kept (the piece that reaches the limit says `cut`).

use crate::io::read::open_regular;
use crate::{Error, Result};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Lines longer than this are cut; the rest of the line is skipped (1 MiB).
/// cbindgen:ignore
pub const DEFAULT_MAX_LINE_BYTES: usize = 1 << 20;

/// Lines longer than this are handed out in pieces of at most this size (16 KiB: far above a
/// sentence or paragraph, far more text than one example of 512 tokens uses).
/// cbindgen:ignore
pub const DEFAULT_LINE_PIECE_BYTES: usize = 16 << 10;

/// What [`LineReader::next_piece`] read.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Piece {
    /// Bytes of the file consumed (line ending and skipped rest included).
    pub consumed: u64,
    /// The piece starts a line.
    pub starts_line: bool,
    /// The piece ends its line (a newline or the end of the file followed).
    pub ends_line: bool,
    /// The line was longer than `max_line_bytes`: this piece ends at the limit, the rest was skipped.
    pub cut: bool,
    /// The line is longer than `piece_bytes` and this is its first piece.
    pub split: bool,
}

/// A buffered reader of one regular file that hands out bounded pieces of lines.
pub(crate) struct LineReader {
    r: BufReader<File>,
    path: PathBuf,
    /// Bytes of the current line handed out so far (0 at the start of a line).
    line_offset: u64,
}

fn is_continuation(b: u8) -> bool {
    b & 0xC0 == 0x80
}

impl LineReader {
    /// Opens the regular file `path` at `byte_offset`, which is `line_offset` bytes into its line.
    pub fn open(path: &Path, byte_offset: u64, line_offset: u64) -> Result<Self> {
        let mut f = open_regular(path)?;
        if byte_offset > 0 {
            f.seek(SeekFrom::Start(byte_offset)).map_err(|e| Error::io(path, e))?;
        }
        Ok(LineReader { r: BufReader::with_capacity(1 << 16, f), path: path.to_path_buf(), line_offset })
    }

    /// Bytes of the current line already handed out (0 when the next piece starts a line).
    pub fn line_offset(&self) -> u64 {
        self.line_offset
    }

    /// Reads the next piece into `buf` (without its line ending; a `\r` before the newline is
    /// dropped); `None` at the end of the file.
    pub fn next_piece(
        &mut self,
        buf: &mut Vec<u8>,
        max_line_bytes: usize,
        piece_bytes: usize,
    ) -> Result<Option<Piece>> {
        buf.clear();
        let starts_line = self.line_offset == 0;
        let room = (max_line_bytes as u64).saturating_sub(self.line_offset) as usize;
        let limit = piece_bytes.min(room).max(1);
        let mut p = Piece { starts_line, ..Piece::default() };
        let mut at_eof = false;
        loop {
            let avail = self.r.fill_buf().map_err(|e| Error::io(&self.path, e))?;
            if avail.is_empty() {
                at_eof = true;
                break;
            }
            let want = limit - buf.len();
            // The newline may sit just after `want` bytes: the line then fits exactly.
            let scan = &avail[..avail.len().min(want + 1)];
            if let Some(i) = memchr(scan) {
                buf.extend_from_slice(&avail[..i]);
                self.r.consume(i + 1);
                p.consumed += i as u64 + 1;
                p.ends_line = true;
                break;
            }
            let take = avail.len().min(want);
            buf.extend_from_slice(&avail[..take]);
            self.r.consume(take);
            p.consumed += take as u64;
            if buf.len() == limit {
                break;
            }
        }
        if at_eof {
            if p.consumed == 0 && starts_line {
                return Ok(None);
            }
            // The end of the file ends the line (possibly with an empty last piece).
            p.ends_line = true;
        }
        if !p.ends_line {
            // At the limit: does the line end right here?
            let next = self.r.fill_buf().map_err(|e| Error::io(&self.path, e))?.first().copied();
            match next {
                None => p.ends_line = true,
                Some(b'\n') => {
                    self.r.consume(1);
                    p.consumed += 1;
                    p.ends_line = true;
                }
                Some(_) if limit >= room => {
                    p.consumed += self.skip_rest_of_line()?;
                    p.cut = true;
                    p.ends_line = true;
                }
                Some(b) => self.split(buf, b, &mut p)?,
            }
        }
        if p.ends_line {
            self.line_offset = 0;
            if !p.cut && buf.last() == Some(&b'\r') {
                buf.pop();
            }
        } else {
            self.line_offset += p.consumed;
        }
        Ok(Some(p))
    }

    /// Ends a full piece of a line that goes on (`next` is its next byte) at a word boundary, or
    /// else at a character boundary, and gives the bytes after that boundary back to the reader.
    fn split(&mut self, buf: &mut Vec<u8>, next: u8, p: &mut Piece) -> Result<()> {
        let n = buf.len();
        let at_space = buf[n / 2..].iter().rposition(|b| b.is_ascii_whitespace()).map(|i| n / 2 + i + 1);
        let k = at_space.unwrap_or_else(|| {
            // Back off over at most 3 continuation bytes so that no character is split; bytes that
            // are not UTF-8 anyway are cut at the limit.
            let byte_at = |k: usize| if k == n { next } else { buf[k] };
            let mut k = n;
            while k > 0 && n - k < 3 && is_continuation(byte_at(k)) {
                k -= 1;
            }
            if k == 0 || is_continuation(byte_at(k)) {
                n
            } else {
                k
            }
        });
        let back = n - k;
        if back > 0 {
            self.r.seek_relative(-(back as i64)).map_err(|e| Error::io(&self.path, e))?;
            buf.truncate(k);
            p.consumed -= back as u64;
        }
        p.split = self.line_offset == 0;
        Ok(())
    }

    /// Consumes the rest of the current line, newline included, without keeping it.
    fn skip_rest_of_line(&mut self) -> Result<u64> {
        let mut skipped = 0u64;
        loop {
            let avail = self.r.fill_buf().map_err(|e| Error::io(&self.path, e))?;
            if avail.is_empty() {
                return Ok(skipped);
            }
            let (take, done) = match memchr(avail) {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            self.r.consume(take);
            skipped += take as u64;
            if done {
                return Ok(skipped);
            }
        }
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &[u8], max_line: usize, piece: usize) -> Vec<(String, Piece)> {
        let d = std::env::temp_dir().join(format!("electra-lines-{}-{}", std::process::id(), text.len()));
        std::fs::write(&d, text).unwrap();
        let mut r = LineReader::open(&d, 0, 0).unwrap();
        let mut out = Vec::new();
        let mut buf = Vec::new();
        let mut total = 0;
        while let Some(p) = r.next_piece(&mut buf, max_line, piece).unwrap() {
            total += p.consumed;
            out.push((String::from_utf8_lossy(&buf).into_owned(), p));
        }
        assert_eq!(total, text.len() as u64, "every byte consumed once");
        std::fs::remove_file(&d).unwrap();
        out
    }

    #[test]
    fn lines_pieces_and_cuts() {
        let p = pieces(b"ab\r\ncd\n\nlast", 100, 100);
        let texts: Vec<&str> = p.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(texts, ["ab", "cd", "", "last"]);
        assert!(p.iter().all(|x| x.1.starts_line && x.1.ends_line && !x.1.cut && !x.1.split));
        // Split at the last space of the second half; a line of exactly the limit is not split.
        let p = pieces(b"aaaa bbbb cccc dd\n0123456789\n", 100, 10);
        let texts: Vec<&str> = p.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(texts, ["aaaa bbbb ", "cccc dd", "0123456789"]);
        assert!(p[0].1.split && !p[0].1.ends_line && !p[1].1.starts_line && p[1].1.ends_line);
        assert!(!p[2].1.split && !p[2].1.cut);
        // No space: cut at a character boundary (é is 2 bytes).
        let p = pieces("aaaaaaaaaé".as_bytes(), 100, 10);
        assert_eq!(p[0].0, "aaaaaaaaa");
        assert_eq!(p[1].0, "é");
        // Longer than max_line: cut, the rest skipped, the next line read normally.
        let p = pieces(b"aaaa bbbb cccc dddd eeee\nnext", 12, 10);
        let texts: Vec<&str> = p.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(texts, ["aaaa bbbb ", "cc", "next"]);
        assert!(p[1].1.cut && p[1].1.ends_line && !p[2].1.cut);
    }
}
