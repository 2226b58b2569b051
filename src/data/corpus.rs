//! The ELECTRA pre-training data pipeline (`build_pretraining_dataset.py` of google-research/electra),
//! streamed from plain text files, with seeded shuffling, an exact resume cursor and a held-out split.
//!
//! # Input
//! UTF-8 text files (a directory means every `*.txt` below it, sorted; see [`super::text_files`]), read
//! line by line through a buffered reader, so a corpus may be far larger than memory. Each line is one
//! "sentence" (there is no sentence splitter); a blank line (only whitespace) ends a document, and so
//! does the end of a file. Bytes that are not UTF-8 are decoded lossily (U+FFFD, which the tokenizer
//! drops) and the line is counted in [`CorpusStats::invalid_utf8_lines`]. The input files must be
//! regular files (a FIFO or device is refused when the corpus is opened).
//!
//! No line is read whole into memory: a line longer than `line_piece_bytes` (16 KiB) is read in
//! pieces, split at a space, and each piece is a sentence of its own, so any layout (one 50 MB line,
//! a file without newlines) streams in one pass, at a cost linear in its size; of a line longer than
//! `max_line_bytes` (1 MiB), the rest is skipped and the line counted in [`CorpusStats::long_lines`].
//!
//! # Examples (exactly the original builder)
//! Tokenized lines accumulate until their token count reaches the target length (`max_seq_len`) or the
//! document ends; then one example is built from them and any text beyond the length is **dropped**,
//! not carried over:
//! - with probability `single_segment_prob` (0.1) everything goes into segment A; otherwise the A target
//!   is `(target − 3) / 2`. A line goes to A if A is empty, or if it keeps A under its target, or (when B
//!   is still empty and A is under target) with probability 0.5; otherwise to B;
//! - A is truncated to `max_seq_len − 2` tokens, B to `max_seq_len − len(A) − 3`;
//! - `input_ids = [CLS] A [SEP] (B [SEP])`, segment 0 for `[CLS] A [SEP]`, 1 for `B [SEP]`, then
//!   `[PAD]` (segment 0, attention mask 0) up to `max_seq_len`;
//! - with probability `short_seq_prob` (0.05) the *next* example's target is `randint(5, max_seq_len)`.
//!
//! The special ids come from the tokenizer's vocabulary.
//!
//! # Shuffling and the cursor
//! Training examples go through a shuffle buffer of `shuffle_buffer` examples: the buffer is filled,
//! permuted (Fisher–Yates with a seeded `ChaCha8Rng`) and emitted, then refilled. The training stream
//! cycles over the files forever (the packing RNG carries on, so each epoch packs differently).
//! A [`Cursor`] records the stream position where the current buffer started (file, byte offset, the
//! document counter), the packing and shuffle RNG states at that point, and how many of the buffer's
//! examples were already emitted; [`Corpus::restore`] seeks there, rebuilds the buffer (re-reading at
//! most a buffer's worth of text) and skips the emitted ones, so the batches that follow are identical.
//! The cursor is about a kilobyte of JSON (plus a line per input file), meant for `Trainer::data_cursor`.
//!
//! # Held-out split
//! With `eval_every_nth_doc = n > 0`, documents `n−1, 2n−1, …` of each pass (counted over all files in
//! order) are held out: the training stream skips them and [`Corpus::eval_batches`] reads only them,
//! unshuffled, once, with a fixed packing seed.
//!
//! # Shards (data-parallel training)
//! With `num_shards = N > 1`, N corpora opened on the same files with `shard_index` 0..N read
//! disjoint sets of training documents that together make up the training split: the training
//! document with ordinal k in its pass (counting training documents only, held-out ones skipped)
//! belongs to shard `k % N`; the others are skipped untokenized and counted in
//! [`CorpusStats::other_shard_documents`]. The held-out split is not sharded: every shard's
//! [`Corpus::eval_batches`] reads all of it, with the same batches. Each shard has its own packing
//! and shuffle RNG streams (see [`CorpusOptions::shard_index`]); shard 0 of any N uses exactly the
//! streams of an unsharded corpus.

use super::lines::{LineReader, Piece};
use super::tokenizer::{SpecialIds, Tokenizer};
use crate::io::read::open_regular;
use crate::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Settings of the example builder, the shuffle and the split. Stored in every [`Cursor`]; a cursor
/// only restores into a corpus opened with equal options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorpusOptions {
    /// Sequence length T of every example, `[CLS]`/`[SEP]` and padding included (≥ 8).
    pub max_seq_len: usize,
    /// Seed of the packing and shuffle RNGs.
    pub seed: u64,
    /// Probability that the next example gets a random target length in `5..=max_seq_len` (0.05).
    pub short_seq_prob: f64,
    /// Probability that an example has only segment A (0.1).
    pub single_segment_prob: f64,
    /// Hold out every n-th document for evaluation (20); 0 holds out nothing; 1 is refused.
    pub eval_every_nth_doc: usize,
    /// Examples per shuffle buffer (1000); 0 or 1 turns shuffling off.
    pub shuffle_buffer: usize,
    /// Whether a blank line ends a document (true); when false each file is one document (the
    /// original's setting for OpenWebText).
    pub blank_lines_separate_documents: bool,
    /// Longer lines are cut to this many bytes (the rest of the line is skipped unread into memory and
    /// counted in [`CorpusStats::long_lines`]); 1 MiB by default, far beyond what one example can use.
    pub max_line_bytes: usize,
    /// Longer lines are read in pieces of at most this many bytes, each taken as a sentence of its
    /// own (split at a space where there is one; counted in [`CorpusStats::split_lines`]); 16 KiB by
    /// default, far above a normal sentence or paragraph, so such corpora read exactly as if lines
    /// were never split. Without it a corpus of a few huge lines would build one example per line
    /// and re-read, re-tokenize the whole file for every few examples.
    pub line_piece_bytes: usize,
    /// Number of disjoint shards the training documents are dealt into, one per data-parallel rank
    /// (1: no sharding). Cursors written before shards existed restore as 1 shard.
    pub num_shards: usize,
    /// Which shard this corpus reads, `0..num_shards`: the training documents whose training ordinal
    /// k (in their pass) has `k % num_shards == shard_index`. Shard s packs and shuffles with the
    /// ChaCha8 streams `3s + 1` and `3s + 2` of `seed` (the held-out stream, shared by all shards,
    /// is 3), so shard 0 reads exactly as an unsharded corpus and no two streams coincide.
    pub shard_index: usize,
}

impl Default for CorpusOptions {
    fn default() -> Self {
        CorpusOptions {
            max_seq_len: 128,
            seed: 0,
            short_seq_prob: 0.05,
            single_segment_prob: 0.1,
            eval_every_nth_doc: 20,
            shuffle_buffer: 1000,
            blank_lines_separate_documents: true,
            max_line_bytes: super::lines::DEFAULT_MAX_LINE_BYTES,
            line_piece_bytes: super::lines::DEFAULT_LINE_PIECE_BYTES,
            num_shards: 1,
            shard_index: 0,
        }
    }
}

impl CorpusOptions {
    fn validate(&self) -> Result<()> {
        if self.max_seq_len < 8 {
            return Err(Error::arg(format!("max_seq_len {} is below 8", self.max_seq_len)));
        }
        for (name, p) in [("short_seq_prob", self.short_seq_prob), ("single_segment_prob", self.single_segment_prob)] {
            if !(0.0..=1.0).contains(&p) {
                return Err(Error::arg(format!("{name} {p} is not a probability")));
            }
        }
        if self.eval_every_nth_doc == 1 {
            return Err(Error::arg("eval_every_nth_doc 1 would hold out every document"));
        }
        if self.max_line_bytes < 16 {
            return Err(Error::arg(format!("max_line_bytes {} is below 16", self.max_line_bytes)));
        }
        if self.line_piece_bytes < 64 {
            return Err(Error::arg(format!("line_piece_bytes {} is below 64", self.line_piece_bytes)));
        }
        if self.num_shards == 0 {
            return Err(Error::arg("num_shards 0: a corpus is at least 1 shard"));
        }
        // Keeps the RNG stream numbers 3s + 2 far from overflowing u64.
        if self.num_shards > u32::MAX as usize {
            return Err(Error::arg(format!("num_shards {} is above 2^32 - 1", self.num_shards)));
        }
        if self.shard_index >= self.num_shards {
            return Err(Error::arg(format!(
                "shard_index {} is not below num_shards {} (shards are numbered from 0)",
                self.shard_index, self.num_shards
            )));
        }
        Ok(())
    }

    /// "shard_index i of num_shards n", for messages.
    fn shard_label(&self) -> String {
        format!("shard_index {} of num_shards {}", self.shard_index, self.num_shards)
    }
}

/// The ChaCha8 streams (of `seed`) of a shard's packing and shuffle RNGs: `3s + 1` and `3s + 2`.
/// Stream 3 is the held-out split's packing RNG, the same for every shard; `3s + 3` is left unused
/// for s > 0, so every stream is distinct and shard 0 keeps the unsharded corpus's 1 and 2.
fn shard_streams(shard_index: usize) -> (u64, u64) {
    let base = 3 * shard_index as u64;
    (base + 1, base + 2)
}

/// The training ordinal of the document at `doc_index` in its pass (how many training documents
/// precede it), or `None` for a held-out one. Held-out documents n−1, 2n−1, … do not count, so
/// dealing ordinals round-robin gives every shard its share whatever n is (dealing `doc_index`
/// would leave a shard empty when n and the number of shards share a factor).
fn training_ordinal(doc_index: u64, eval_every_nth_doc: usize) -> Option<u64> {
    let n = eval_every_nth_doc as u64;
    let held_out = n > 0 && doc_index % n == n - 1;
    (!held_out).then(|| training_documents_before(doc_index, eval_every_nth_doc))
}

/// How many of the documents `0..doc_index` of a pass are training documents.
fn training_documents_before(doc_index: u64, eval_every_nth_doc: usize) -> u64 {
    match eval_every_nth_doc as u64 {
        0 => doc_index,
        n => doc_index - doc_index / n,
    }
}

/// How many of `training` documents (ordinals `0..training`) shard `s` of `shards` gets.
fn shard_share(training: u64, shards: u64, s: u64) -> u64 {
    training / shards + u64::from(training % shards > s)
}

/// The ChaCha8 stream of the held-out split's packing RNG (not sharded).
const EVAL_STREAM: u64 = 3;

/// Counters of one stream (training: cumulative over all epochs since the start, restored with the
/// cursor; evaluation: one pass).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorpusStats {
    /// Input files.
    pub files: u64,
    /// Input files of zero bytes (skipped).
    pub empty_files: u64,
    /// Lines read, of every kind.
    pub lines: u64,
    /// Lines of only whitespace.
    pub blank_lines: u64,
    /// Non-blank lines (or pieces of split lines) that tokenized to nothing (e.g. only control
    /// characters).
    pub skipped_lines: u64,
    /// Lines (or pieces of split lines) with bytes that are not UTF-8 (decoded lossily, still used).
    pub invalid_utf8_lines: u64,
    /// Lines longer than `max_line_bytes` (cut).
    pub long_lines: u64,
    /// Lines longer than `line_piece_bytes` (read in pieces).
    pub split_lines: u64,
    /// Lines of documents that belong to the other split (not tokenized).
    pub other_split_lines: u64,
    /// Documents completed (both splits).
    pub documents: u64,
    /// Of those, documents that belong to the other split.
    pub other_split_documents: u64,
    /// Lines of training documents that belong to other shards (not tokenized).
    pub other_shard_lines: u64,
    /// Documents of the training split that belong to other shards (skipped; 0 with one shard).
    pub other_shard_documents: u64,
    /// Examples built.
    pub examples: u64,
    /// Tokens dropped by the truncation of A and B (text beyond an example's length).
    pub truncated_tokens: u64,
    /// Completed passes over all files (training stream).
    pub epochs: u64,
}

/// A batch of padded examples the corpus reader owns, row-major `[batch, seq_len]`; borrowed as
/// the model's input by [`TokenBatch::as_model_input`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    /// Token ids; `[PAD]` after the last `[SEP]`.
    pub input_ids: Vec<i32>,
    /// 1 on real tokens, 0 on padding.
    pub attention_mask: Vec<i32>,
    /// Segment ids: 0 for `[CLS] A [SEP]` and padding, 1 for `B [SEP]`.
    pub token_type_ids: Vec<i32>,
    /// Rows B.
    pub batch: usize,
    /// Columns T (= `max_seq_len`).
    pub seq_len: usize,
}

impl TokenBatch {
    /// Borrows the batch as the model's input type.
    pub fn as_model_input(&self) -> crate::batch::Batch<'_> {
        crate::batch::Batch {
            input_ids: &self.input_ids,
            attention_mask: Some(&self.attention_mask),
            token_type_ids: Some(&self.token_type_ids),
            batch: self.batch,
            seq_len: self.seq_len,
        }
    }

    /// The ids of row `r` up to and including its last `[SEP]` (no padding).
    pub fn row(&self, r: usize) -> &[i32] {
        let row = &self.input_ids[r * self.seq_len..(r + 1) * self.seq_len];
        let n = self.attention_mask[r * self.seq_len..(r + 1) * self.seq_len].iter().filter(|&&m| m != 0).count();
        &row[..n]
    }
}

/// One input file as recorded in a cursor: its name (for messages) and size (checked on restore).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    /// The path as opened.
    pub path: String,
    /// Size in bytes when opened.
    pub bytes: u64,
}

/// Where a stream is: enough to reopen the reader and continue the document bookkeeping.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamPos {
    /// Completed passes over the files.
    pub epoch: u64,
    /// Index into the file list.
    pub file_index: usize,
    /// Byte offset of the next line (or piece of a line) to read in that file.
    pub byte_offset: u64,
    /// How far into its line `byte_offset` is (0 at a line start, the only case before lines were
    /// read in pieces, hence absent from the JSON then).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub line_offset: u64,
    /// Index (within the pass) of the document the next non-blank line belongs to.
    pub doc_index: u64,
    /// Whether that document already has lines (the next line continues it).
    pub in_document: bool,
    /// Examples built so far in this pass (a pass that builds none is an error, not an endless loop).
    pub examples_in_epoch: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// The exact state of the training stream, serialisable to JSON (see the module docs). Produced by
/// [`Corpus::cursor`], consumed by [`Corpus::restore`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// Format version (1).
    pub version: u32,
    /// The files, in order (a restore checks their number and sizes).
    pub files: Vec<FileId>,
    /// The options (a restore requires equal ones).
    pub options: CorpusOptions,
    /// A hash of the tokenizer's vocabulary (a restore requires the same).
    pub vocab_fingerprint: String,
    /// Stream position where the current shuffle buffer started filling.
    pub pos: StreamPos,
    /// Packing RNG at that point.
    pub pack_rng: ChaCha8Rng,
    /// Target length of the example being built at that point.
    pub target_len: usize,
    /// Stream counters at that point.
    pub stats: CorpusStats,
    /// Shuffle RNG before the buffer's permutation.
    pub shuffle_rng: ChaCha8Rng,
    /// Examples of that buffer already emitted.
    pub emitted_in_buffer: usize,
    /// Examples emitted by `next_batch` since the start, including those.
    pub examples_emitted: u64,
}

impl Cursor {
    /// The cursor as a JSON value (for `Trainer::data_cursor`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a cursor always serialises")
    }

    /// Parses a cursor from [`Cursor::to_json`]'s output.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the value is not a cursor of a known version.
    pub fn from_json(value: &serde_json::Value) -> Result<Cursor> {
        let c: Cursor =
            serde_json::from_value(value.clone()).map_err(|e| Error::arg(format!("not a corpus cursor: {e}")))?;
        if c.version != 1 {
            return Err(Error::arg(format!("corpus cursor version {} is not supported", c.version)));
        }
        Ok(c)
    }
}

/// One unpadded example.
#[derive(Clone, Debug)]
struct Example {
    /// `[CLS] A [SEP] (B [SEP])`.
    ids: Vec<i32>,
    /// Length of `[CLS] A [SEP]` (segment 0).
    len_a: usize,
}

/// Which documents a stream reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    Train,
    Eval,
}

/// Whether the current document is read by a stream, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Membership {
    Read,
    OtherSplit,
    OtherShard,
}

struct Line {
    /// What the line reader says about it.
    piece: Piece,
    /// The decoded line (or piece) without its line ending.
    text: String,
    invalid_utf8: bool,
}

/// The example builder over the file list (one per split).
struct Stream {
    files: Vec<(PathBuf, u64)>,
    opts: CorpusOptions,
    special: SpecialIds,
    tokenizer: Tokenizer,
    split: Split,
    cycle: bool,
    pos: StreamPos,
    reader: Option<LineReader>,
    line_buf: Vec<u8>,
    rng: ChaCha8Rng,
    target_len: usize,
    pending: Vec<Vec<i32>>,
    pending_len: usize,
    /// State before the first line of `pending` (None while `pending` is empty).
    pending_start: Option<(StreamPos, CorpusStats)>,
    stats: CorpusStats,
    finished: bool,
}

/// What a stream needs to continue exactly from a point where nothing is pending.
#[derive(Clone)]
struct StreamState {
    pos: StreamPos,
    stats: CorpusStats,
    rng: ChaCha8Rng,
    target_len: usize,
}

impl Stream {
    fn new(
        corpus_files: &[(PathBuf, u64)],
        opts: &CorpusOptions,
        tok: &Tokenizer,
        split: Split,
        rng: ChaCha8Rng,
    ) -> Self {
        let stats = CorpusStats {
            files: corpus_files.len() as u64,
            empty_files: corpus_files.iter().filter(|f| f.1 == 0).count() as u64,
            ..Default::default()
        };
        Stream {
            files: corpus_files.to_vec(),
            opts: opts.clone(),
            special: tok.special_ids(),
            tokenizer: tok.clone(),
            split,
            cycle: split == Split::Train,
            pos: StreamPos::default(),
            reader: None,
            line_buf: Vec::new(),
            rng,
            target_len: opts.max_seq_len,
            pending: Vec::new(),
            pending_len: 0,
            pending_start: None,
            stats,
            finished: false,
        }
    }

    /// The state to restart from so that the same examples follow: the start of the pending lines.
    fn state(&self) -> StreamState {
        let (pos, stats) = match &self.pending_start {
            Some((p, s)) => (p.clone(), s.clone()),
            None => (self.pos.clone(), self.stats.clone()),
        };
        StreamState { pos, stats, rng: self.rng.clone(), target_len: self.target_len }
    }

    fn set_state(&mut self, s: StreamState) {
        self.pos = s.pos;
        self.stats = s.stats;
        self.rng = s.rng;
        self.target_len = s.target_len;
        self.reader = None;
        self.pending.clear();
        self.pending_len = 0;
        self.pending_start = None;
        self.finished = false;
    }

    /// Whether the document at `doc_index` is this stream's: of its split and, for training, of
    /// its shard.
    fn membership(&self) -> Membership {
        match (training_ordinal(self.pos.doc_index, self.opts.eval_every_nth_doc), self.split) {
            (None, Split::Eval) => Membership::Read,
            (Some(k), Split::Train) if k % self.opts.num_shards as u64 == self.opts.shard_index as u64 => {
                Membership::Read
            }
            (Some(_), Split::Train) => Membership::OtherShard,
            _ => Membership::OtherSplit,
        }
    }

    /// Reads the next line (or piece of a long line) of the current file; `None` at its end.
    fn read_line(&mut self) -> Result<Option<Line>> {
        let (path, _) = &self.files[self.pos.file_index];
        if self.reader.is_none() {
            self.reader = Some(LineReader::open(path, self.pos.byte_offset, self.pos.line_offset)?);
        }
        let r = self.reader.as_mut().expect("opened above");
        let Some(piece) = r.next_piece(&mut self.line_buf, self.opts.max_line_bytes, self.opts.line_piece_bytes)?
        else {
            return Ok(None);
        };
        let mut bytes: &[u8] = &self.line_buf;
        if self.pos.byte_offset == 0 && bytes.starts_with(b"\xef\xbb\xbf") {
            bytes = &bytes[3..]; // UTF-8 byte-order mark
        }
        if piece.cut {
            // The cut may have split the last character: drop that partial sequence, not count it.
            if let Err(e) = std::str::from_utf8(bytes) {
                if e.error_len().is_none() {
                    bytes = &bytes[..e.valid_up_to()];
                }
            }
        }
        let (text, invalid_utf8) = match std::str::from_utf8(bytes) {
            Ok(s) => (s.to_owned(), false),
            Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
        };
        Ok(Some(Line { piece, text, invalid_utf8 }))
    }

    /// Closes the current document (if one is open) and builds an example from what is pending.
    fn end_document(&mut self) -> Option<Example> {
        if self.pos.in_document {
            self.pos.in_document = false;
            self.stats.documents += 1;
            match self.membership() {
                Membership::Read => {}
                Membership::OtherSplit => self.stats.other_split_documents += 1,
                Membership::OtherShard => self.stats.other_shard_documents += 1,
            }
            self.pos.doc_index += 1;
        }
        if self.pending_len > 0 {
            Some(self.create_example())
        } else {
            None
        }
    }

    /// The next example; `None` only for a finite (evaluation) stream at its end.
    fn next_example(&mut self) -> Result<Option<Example>> {
        if self.finished {
            return Ok(None);
        }
        loop {
            if self.pos.file_index >= self.files.len() {
                // End of a pass.
                if !self.cycle {
                    self.finished = true;
                    return Ok(None);
                }
                if self.pos.examples_in_epoch == 0 {
                    return Err(self.no_examples_error());
                }
                self.stats.epochs += 1;
                self.pos = StreamPos { epoch: self.pos.epoch + 1, ..Default::default() };
                continue;
            }
            let before = if self.pending.is_empty() { Some((self.pos.clone(), self.stats.clone())) } else { None };
            let Some(line) = self.read_line()? else {
                // End of file: ends the document.
                let ex = self.end_document();
                self.pos.file_index += 1;
                self.pos.byte_offset = 0;
                self.pos.line_offset = 0;
                self.reader = None;
                if let Some(ex) = ex {
                    return Ok(Some(ex));
                }
                continue;
            };
            let piece = line.piece;
            self.pos.byte_offset += piece.consumed;
            self.pos.line_offset = self.reader.as_ref().map_or(0, LineReader::line_offset);
            self.stats.lines += piece.ends_line as u64;
            self.stats.invalid_utf8_lines += line.invalid_utf8 as u64;
            self.stats.long_lines += piece.cut as u64;
            self.stats.split_lines += piece.split as u64;
            let text = line.text.trim();
            if text.is_empty() && !(piece.starts_line && piece.ends_line) {
                continue; // a stretch of spaces inside a long line: not a blank line
            }
            if text.is_empty() {
                self.stats.blank_lines += 1;
                if self.opts.blank_lines_separate_documents {
                    if let Some(ex) = self.end_document() {
                        return Ok(Some(ex));
                    }
                }
                continue;
            }
            self.pos.in_document = true;
            match self.membership() {
                Membership::Read => {}
                Membership::OtherSplit => {
                    self.stats.other_split_lines += 1;
                    continue;
                }
                Membership::OtherShard => {
                    self.stats.other_shard_lines += 1;
                    continue;
                }
            }
            let ids = self.tokenizer.encode(text)?;
            if ids.is_empty() {
                self.stats.skipped_lines += 1;
                continue;
            }
            if let Some(b) = before {
                self.pending_start = Some(b);
            }
            self.pending_len += ids.len();
            self.pending.push(ids);
            if self.pending_len >= self.target_len {
                return Ok(Some(self.create_example()));
            }
        }
    }

    /// The error for a pass without a training example; with shards, it says which shard and how many
    /// of the pass's training documents it got.
    fn no_examples_error(&self) -> Error {
        let o = &self.opts;
        let what = format!(
            "{} files, {} documents, {} held out",
            self.files.len(),
            self.stats.documents,
            self.stats.other_split_documents
        );
        if o.num_shards == 1 {
            return Error::arg(format!("the corpus yields no training examples ({what})"));
        }
        // At the end of a pass doc_index is the number of its documents.
        let training = training_documents_before(self.pos.doc_index, o.eval_every_nth_doc);
        let shards = o.num_shards as u64;
        let mine = shard_share(training, shards, o.shard_index as u64);
        let hint = if training < shards {
            format!("; {shards} shards need at least {shards} training documents: use fewer shards or a larger corpus")
        } else {
            String::new()
        };
        Error::arg(format!(
            "{}: the corpus yields no training examples for this shard ({mine} of the pass's {training} training \
             documents; {what}){hint}",
            o.shard_label()
        ))
    }

    /// `_create_example` of the original, RNG draws in the same order.
    fn create_example(&mut self) -> Example {
        let max = self.opts.max_seq_len;
        let first_target = if self.rng.random::<f64>() < self.opts.single_segment_prob {
            usize::MAX
        } else {
            (self.target_len - 3) / 2
        };
        let mut a: Vec<i32> = Vec::new();
        let mut b: Vec<i32> = Vec::new();
        for s in &self.pending {
            if a.is_empty()
                || a.len() + s.len() < first_target
                || (b.is_empty() && a.len() < first_target && self.rng.random::<f64>() < 0.5)
            {
                a.extend_from_slice(s);
            } else {
                b.extend_from_slice(s);
            }
        }
        let total = a.len() + b.len();
        a.truncate(max - 2);
        b.truncate(max.saturating_sub(a.len() + 3));
        self.stats.truncated_tokens += (total - a.len() - b.len()) as u64;

        self.pending.clear();
        self.pending_len = 0;
        self.pending_start = None;
        self.target_len =
            if self.rng.random::<f64>() < self.opts.short_seq_prob { self.rng.random_range(5..=max) } else { max };
        self.stats.examples += 1;
        self.pos.examples_in_epoch += 1;

        let mut ids = Vec::with_capacity(a.len() + b.len() + 3);
        ids.push(self.special.cls);
        ids.extend_from_slice(&a);
        ids.push(self.special.sep);
        let len_a = ids.len();
        if !b.is_empty() {
            ids.extend_from_slice(&b);
            ids.push(self.special.sep);
        }
        Example { ids, len_a }
    }
}

/// The buffer being emitted and the state it was filled from.
struct Buffer {
    examples: Vec<Example>,
    next: usize,
    start: StreamState,
    shuffle_rng: ChaCha8Rng,
    emitted_before: u64,
}

/// A pre-training corpus: an endless, shuffled stream of training batches, a held-out evaluation set,
/// and a resume cursor. See the module docs.
pub struct Corpus {
    files: Vec<(PathBuf, u64)>,
    opts: CorpusOptions,
    tokenizer: Tokenizer,
    vocab_fingerprint: String,
    train: Stream,
    shuffle_rng: ChaCha8Rng,
    buffer: Option<Buffer>,
    examples_emitted: u64,
}

fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// FNV-1a over the vocabulary (or, for a tokenizer without a dense vocabulary, its size and specials).
fn vocab_fingerprint(tok: &Tokenizer) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    match tok.vocab() {
        Ok(v) => v.iter().for_each(|t| {
            eat(t.as_bytes());
            eat(b"\n");
        }),
        Err(_) => eat(format!("{} {:?}", tok.vocab_size(), tok.special_ids()).as_bytes()),
    }
    format!("{h:016x}")
}

impl Corpus {
    /// Opens the corpus in `paths` (files and directories, see [`super::text_files`]) for `tokenizer`.
    /// Nothing is read yet except file sizes.
    ///
    /// # Errors
    /// [`Error::Io`] for a missing or unreadable path; [`Error::InvalidArgument`] for bad options, no
    /// text files, or files that are all empty.
    pub fn open<P: AsRef<Path>>(paths: &[P], opts: CorpusOptions, tokenizer: &Tokenizer) -> Result<Corpus> {
        // Generic only in this shim (see `Tokenizer::train`).
        let paths: Vec<&Path> = paths.iter().map(AsRef::as_ref).collect();
        Self::open_paths(&paths, opts, tokenizer)
    }

    fn open_paths(paths: &[&Path], opts: CorpusOptions, tokenizer: &Tokenizer) -> Result<Corpus> {
        opts.validate()?;
        let mut files = Vec::new();
        for f in super::text_files(paths)? {
            // A regular file (a FIFO would block the reader forever), readable now.
            let len = open_regular(&f)?.metadata().map_err(|e| Error::io(&f, e))?.len();
            files.push((f, len));
        }
        if files.iter().all(|f| f.1 == 0) {
            return Err(Error::arg(format!("all {} input files are empty", files.len())));
        }
        let (pack_stream, shuffle_stream) = shard_streams(opts.shard_index);
        let train = Stream::new(&files, &opts, tokenizer, Split::Train, rng(opts.seed, pack_stream));
        Ok(Corpus {
            vocab_fingerprint: vocab_fingerprint(tokenizer),
            shuffle_rng: rng(opts.seed, shuffle_stream),
            files,
            opts,
            tokenizer: tokenizer.clone(),
            train,
            buffer: None,
            examples_emitted: 0,
        })
    }

    /// The options the corpus was opened with.
    pub fn options(&self) -> &CorpusOptions {
        &self.opts
    }

    /// The input files, in reading order.
    pub fn files(&self) -> Vec<&Path> {
        self.files.iter().map(|f| f.0.as_path()).collect()
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Counters of the training stream (cumulative since the start, carried by the cursor). They count
    /// what has been read so far, which runs ahead of what was emitted by up to one shuffle buffer.
    pub fn stats(&self) -> &CorpusStats {
        &self.train.stats
    }

    /// Training examples emitted by [`Corpus::next_batch`] since the start (carried by the cursor).
    pub fn examples_emitted(&self) -> u64 {
        self.examples_emitted
    }

    fn fill_buffer(&mut self) -> Result<()> {
        let start = self.train.state();
        let shuffle_rng = self.shuffle_rng.clone();
        let n = self.opts.shuffle_buffer.max(1);
        let mut examples = Vec::with_capacity(n);
        while examples.len() < n {
            match self.train.next_example()? {
                Some(e) => examples.push(e),
                None => break, // unreachable for the cycling training stream
            }
        }
        for i in (1..examples.len()).rev() {
            let j = self.shuffle_rng.random_range(0..=i);
            examples.swap(i, j);
        }
        self.buffer = Some(Buffer { examples, next: 0, start, shuffle_rng, emitted_before: self.examples_emitted });
        Ok(())
    }

    fn next_example(&mut self) -> Result<Example> {
        loop {
            if let Some(buf) = &mut self.buffer {
                if buf.next < buf.examples.len() {
                    buf.next += 1;
                    self.examples_emitted += 1;
                    return Ok(buf.examples[buf.next - 1].clone());
                }
            }
            self.fill_buffer()?;
        }
    }

    /// The next `batch_size` training examples, padded to `max_seq_len`. The stream never ends: it
    /// cycles over the files, epoch after epoch.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `batch_size` 0 or a corpus without a single training example;
    /// [`Error::Io`] when a file cannot be read.
    pub fn next_batch(&mut self, batch_size: usize) -> Result<TokenBatch> {
        if batch_size == 0 {
            return Err(Error::arg("batch_size is 0"));
        }
        let mut examples = Vec::with_capacity(batch_size);
        for _ in 0..batch_size {
            examples.push(self.next_example()?);
        }
        Ok(pad(&examples, self.opts.max_seq_len, self.train.special.pad))
    }

    /// The exact position of the training stream; [`Corpus::restore`] continues from it with the
    /// same batches.
    pub fn cursor(&self) -> Cursor {
        let (pos_state, shuffle_rng, emitted_in_buffer, emitted_before) = match &self.buffer {
            Some(b) if b.next < b.examples.len() => (b.start.clone(), b.shuffle_rng.clone(), b.next, b.emitted_before),
            // Nothing buffered: the next buffer will start here.
            _ => (self.train.state(), self.shuffle_rng.clone(), 0, self.examples_emitted),
        };
        Cursor {
            version: 1,
            files: self.files.iter().map(|(p, n)| FileId { path: p.display().to_string(), bytes: *n }).collect(),
            options: self.opts.clone(),
            vocab_fingerprint: self.vocab_fingerprint.clone(),
            pos: pos_state.pos,
            pack_rng: pos_state.rng,
            target_len: pos_state.target_len,
            stats: pos_state.stats,
            shuffle_rng,
            emitted_in_buffer,
            examples_emitted: emitted_before + emitted_in_buffer as u64,
        }
    }

    /// Continues the training stream from `cursor` (made by [`Corpus::cursor`] on a corpus with the
    /// same files, options and vocabulary; the files may have moved).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the cursor does not belong to this corpus (different files,
    /// file sizes, options or vocabulary) or is inconsistent; [`Error::Io`] when re-reading fails.
    pub fn restore(&mut self, cursor: &Cursor) -> Result<()> {
        if cursor.version != 1 {
            return Err(Error::arg(format!("corpus cursor version {} is not supported", cursor.version)));
        }
        if cursor.options != self.opts {
            return Err(options_mismatch(&cursor.options, &self.opts));
        }
        if cursor.vocab_fingerprint != self.vocab_fingerprint {
            return Err(Error::arg("the cursor was made with another vocabulary"));
        }
        let sizes: Vec<u64> = self.files.iter().map(|f| f.1).collect();
        let theirs: Vec<u64> = cursor.files.iter().map(|f| f.bytes).collect();
        if sizes != theirs {
            return Err(Error::arg(format!(
                "the cursor was made on other files ({} files, sizes {:?}…) than these ({} files, sizes {:?}…)",
                theirs.len(),
                &theirs[..theirs.len().min(4)],
                sizes.len(),
                &sizes[..sizes.len().min(4)]
            )));
        }
        let p = &cursor.pos;
        if p.file_index > self.files.len()
            || (p.file_index < self.files.len() && p.byte_offset > self.files[p.file_index].1)
            || p.line_offset > p.byte_offset
            || p.line_offset >= self.opts.max_line_bytes as u64
            || cursor.target_len < 5
            || cursor.target_len > self.opts.max_seq_len
        {
            return Err(Error::arg(format!("inconsistent corpus cursor position {p:?}")));
        }
        self.train.set_state(StreamState {
            pos: cursor.pos.clone(),
            stats: cursor.stats.clone(),
            rng: cursor.pack_rng.clone(),
            target_len: cursor.target_len,
        });
        self.shuffle_rng = cursor.shuffle_rng.clone();
        self.buffer = None;
        self.examples_emitted = cursor
            .examples_emitted
            .checked_sub(cursor.emitted_in_buffer as u64)
            .ok_or_else(|| Error::arg("inconsistent corpus cursor: emitted counts"))?;
        if cursor.emitted_in_buffer > 0 {
            self.fill_buffer()?;
            let buf = self.buffer.as_mut().expect("just filled");
            if cursor.emitted_in_buffer > buf.examples.len() {
                return Err(Error::arg("inconsistent corpus cursor: more emitted than buffered"));
            }
            buf.next = cursor.emitted_in_buffer;
            self.examples_emitted = cursor.examples_emitted;
        }
        Ok(())
    }

    /// The held-out documents as padded batches: read once, in file order, unshuffled, packed with a
    /// fixed seed (the same batches on every call), at most `max_batches` of them (`None`: all). The
    /// last batch may have fewer rows. Does not touch the training stream.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for `batch_size` 0 or when `eval_every_nth_doc` is 0 (no held-out
    /// split); [`Error::Io`] when a file cannot be read.
    pub fn eval_batches(&self, batch_size: usize, max_batches: Option<usize>) -> Result<Vec<TokenBatch>> {
        Ok(self.eval_set(batch_size, max_batches)?.0)
    }

    /// [`Corpus::eval_batches`] plus the evaluation stream's counters.
    ///
    /// # Errors
    /// As [`Corpus::eval_batches`].
    pub fn eval_set(&self, batch_size: usize, max_batches: Option<usize>) -> Result<(Vec<TokenBatch>, CorpusStats)> {
        if batch_size == 0 {
            return Err(Error::arg("batch_size is 0"));
        }
        if self.opts.eval_every_nth_doc == 0 {
            return Err(Error::arg("eval_every_nth_doc is 0: there is no held-out split"));
        }
        let mut s =
            Stream::new(&self.files, &self.opts, &self.tokenizer, Split::Eval, rng(self.opts.seed, EVAL_STREAM));
        let mut batches = Vec::new();
        let max_batches = max_batches.unwrap_or(usize::MAX);
        let mut examples = Vec::with_capacity(batch_size);
        while batches.len() < max_batches {
            match s.next_example()? {
                Some(e) => examples.push(e),
                None => break,
            }
            if examples.len() == batch_size {
                batches.push(pad(&examples, self.opts.max_seq_len, s.special.pad));
                examples.clear();
            }
        }
        if !examples.is_empty() && batches.len() < max_batches {
            batches.push(pad(&examples, self.opts.max_seq_len, s.special.pad));
        }
        Ok((batches, s.stats))
    }
}

/// The error for a cursor made with other options: a different shard is named first (the likely
/// mistake of a data-parallel run: a rank given another rank's cursor, or another number of ranks).
fn options_mismatch(theirs: &CorpusOptions, ours: &CorpusOptions) -> Error {
    let unsharded = |o: &CorpusOptions| CorpusOptions { num_shards: 1, shard_index: 0, ..o.clone() };
    let others = unsharded(theirs) != unsharded(ours);
    if (theirs.num_shards, theirs.shard_index) == (ours.num_shards, ours.shard_index) {
        return Error::arg(format!("the cursor was made with other corpus options: {theirs:?} != {ours:?}"));
    }
    let mut msg = format!(
        "the cursor was made by {} but this corpus is {}: each shard resumes only from its own cursor, \
         with the same number of shards",
        theirs.shard_label(),
        ours.shard_label()
    );
    if others {
        msg.push_str(&format!(", and other corpus options differ too: {theirs:?} != {ours:?}"));
    }
    Error::arg(msg)
}

fn pad(examples: &[Example], t: usize, pad_id: i32) -> TokenBatch {
    let b = examples.len();
    let mut input_ids = vec![pad_id; b * t];
    let mut attention_mask = vec![0; b * t];
    let mut token_type_ids = vec![0; b * t];
    for (r, e) in examples.iter().enumerate() {
        let row = r * t;
        input_ids[row..row + e.ids.len()].copy_from_slice(&e.ids);
        attention_mask[row..row + e.ids.len()].fill(1);
        token_type_ids[row + e.len_a..row + e.ids.len()].fill(1);
    }
    TokenBatch { input_ids, attention_mask, token_type_ids, batch: b, seq_len: t }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn training_ordinals_skip_the_held_out_documents() {
        let got: Vec<Option<u64>> = (0..7).map(|d| training_ordinal(d, 2)).collect();
        assert_eq!(got, [Some(0), None, Some(1), None, Some(2), None, Some(3)]);
        assert_eq!((0..5).map(|d| training_ordinal(d, 0)).collect::<Vec<_>>(), (0..5).map(Some).collect::<Vec<_>>());
        assert_eq!(training_ordinal(18, 20), Some(18));
        assert_eq!(training_ordinal(19, 20), None);
        assert_eq!(training_ordinal(20, 20), Some(19));
        assert_eq!(training_ordinal(40, 20), Some(38));
        assert_eq!(training_documents_before(40, 20), 38);
        assert_eq!(training_documents_before(39, 20), 38);
        assert_eq!(training_documents_before(7, 2), 4);
        // Consecutive training documents get consecutive ordinals, for every n.
        for n in [0, 2, 3, 20] {
            let ks: Vec<u64> = (0..200).filter_map(|d| training_ordinal(d, n)).collect();
            assert_eq!(ks, (0..ks.len() as u64).collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn shard_shares_add_up_to_the_training_documents() {
        for shards in 1..6 {
            for training in 0..20 {
                let shares: Vec<u64> = (0..shards).map(|s| shard_share(training, shards, s)).collect();
                let brute: Vec<u64> =
                    (0..shards).map(|s| (0..training).filter(|k| k % shards == s).count() as u64).collect();
                assert_eq!(shares, brute, "{training} documents, {shards} shards");
            }
        }
    }

    #[test]
    fn every_shard_has_its_own_rng_streams() {
        assert_eq!(shard_streams(0), (1, 2), "shard 0 reads as an unsharded corpus");
        let mut seen = std::collections::BTreeSet::from([EVAL_STREAM]);
        for s in 0..1000 {
            let (pack, shuffle) = shard_streams(s);
            assert!(seen.insert(pack) && seen.insert(shuffle), "shard {s} reuses a stream");
        }
    }

    #[test]
    fn validate_refuses_impossible_shards() {
        let o = |num_shards, shard_index| CorpusOptions { num_shards, shard_index, ..Default::default() };
        assert!(o(1, 0).validate().is_ok());
        assert!(o(3, 2).validate().is_ok());
        let msg = |num_shards, shard_index| o(num_shards, shard_index).validate().unwrap_err().to_string();
        assert!(msg(0, 0).contains("num_shards 0"), "{}", msg(0, 0));
        assert!(msg(2, 2).contains("shard_index 2 is not below num_shards 2"), "{}", msg(2, 2));
        assert!(msg(1, 5).contains("shard_index 5"), "{}", msg(1, 5));
        if let Some(too_many) = (u32::MAX as usize).checked_add(1) {
            assert!(msg(too_many, 0).contains("num_shards"), "{}", msg(too_many, 0));
        }
    }
}
