//! BERT-uncased WordPiece tokenization, a thin wrapper over the HF `tokenizers` crate.
//!
//! The pipeline is exactly `transformers.BertTokenizerFast` for an uncased `vocab.txt`:
//! `BertNormalizer` (clean text: drop NUL, U+FFFD and control characters, whitespace → space; put
//! spaces around CJK ideographs; lowercase; strip accents by NFD + dropping Mn), `BertPreTokenizer`
//! (split on whitespace and on every punctuation character), then greedy longest-match WordPiece with
//! the `##` continuation prefix, where a word longer than 100 characters, or one with no match at
//! some position, becomes `[UNK]`. The five special tokens are registered as added tokens, so a
//! literal `[MASK]` in the text encodes to the mask id, as in HF. A `tokenizer.json` is used as
//! saved, except that truncation and padding are always switched off (HF model folders often carry
//! `truncation: 128` and fixed padding, which would silently cut or pad every text).
//!
//! Special ids are read from the vocabulary ([`Tokenizer::special_ids`]); nothing else in the crate
//! may assume numbers for them (BERT's own vocabulary has `[PAD]=0, [UNK]=100, [CLS]=101, [SEP]=102,
//! [MASK]=103`, vocabularies trained here have them at 0..4).

use super::lines::{LineReader, DEFAULT_LINE_PIECE_BYTES, DEFAULT_MAX_LINE_BYTES};
use crate::io::atomic::write_atomic;
use crate::io::read::{read_regular, read_regular_utf8, MAX_TOKENIZER_JSON_BYTES, MAX_VOCAB_TXT_BYTES};
use crate::{Error, Result};
use ahash::{AHashMap, AHashSet};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::bpe::{BpeTrainer, BPE};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, Model, NormalizedString, Normalizer, OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer,
};

/// The special tokens, in the order [`Tokenizer::train`] gives them ids 0..4.
pub const SPECIAL_TOKENS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

/// Words longer than this many characters encode to `[UNK]` (HF `max_input_chars_per_word`).
pub const MAX_INPUT_CHARS_PER_WORD: usize = 100;

/// The largest alphabet (distinct single characters) [`Tokenizer::train`] keeps; rarer characters
/// are left out of the vocabulary, as with HF `BertWordPieceTokenizer.train(limit_alphabet=1000)`.
pub const TRAIN_ALPHABET_LIMIT: usize = 1000;

/// The ids of the five special tokens, as found in the vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecialIds {
    /// `[PAD]`: padding; its attention-mask entry is 0.
    pub pad: i32,
    /// `[UNK]`: unknown word.
    pub unk: i32,
    /// `[CLS]`: first token of every sequence.
    pub cls: i32,
    /// `[SEP]`: ends each segment.
    pub sep: i32,
    /// `[MASK]`: the masked-LM placeholder.
    pub mask: i32,
}

impl SpecialIds {
    /// True for any of the five special ids.
    pub fn contains(&self, id: i32) -> bool {
        [self.pad, self.unk, self.cls, self.sep, self.mask].contains(&id)
    }
}

/// One row of [`Tokenizer::encode_batch`]: a text, or a pair of texts (two segments, as
/// sentence-pair tasks read them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextInput<'a> {
    /// One text.
    Single(&'a str),
    /// Two texts: token type 0, then 1.
    Pair(&'a str, &'a str),
}

/// How [`Tokenizer::encode_batch`] encodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Add the special tokens of the tokenizer's post-processor (`[CLS]`, `[SEP]`). Default true.
    pub add_special_tokens: bool,
    /// Cut each row to at most this many tokens, special tokens included (0: no limit). Default 0.
    pub max_length: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions { add_special_tokens: true, max_length: 0 }
    }
}

/// A batch encoded by [`Tokenizer::encode_batch`]: `batch` rows of `seq_len` tokens, row-major,
/// padded to the longest row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Encoded {
    /// Rows.
    pub batch: usize,
    /// Tokens per row (the longest row's length).
    pub seq_len: usize,
    /// Token ids; `[PAD]` past a row's length.
    pub input_ids: Vec<i32>,
    /// 1 for a token, 0 for padding.
    pub attention_mask: Vec<i32>,
    /// 0 for the first text's tokens (and `[CLS]`), 1 for the second text's.
    pub token_type_ids: Vec<i32>,
    /// `[start, end)` byte offsets of each token in its text; `[0, 0]` for special and padding
    /// tokens.
    pub offsets: Vec<[u32; 2]>,
    /// The index of each token's word within its text (words as the pre-tokenizer splits them:
    /// whitespace and punctuation), -1 for special and padding tokens.
    pub words: Vec<i32>,
    /// Real tokens per row (the attention mask's ones).
    pub lengths: Vec<usize>,
    /// Whether the row was cut to `max_length`.
    pub truncated: Vec<bool>,
}

/// The tokenizer saved beside a model: absent, loaded, or there but unreadable (kept as a
/// message, so that a model used with token ids loads anyway and a text call says why it cannot).
#[derive(Clone, Debug, Default)]
pub enum AttachedTokenizer {
    /// The model's directory holds no tokenizer.json or vocab.txt (or it came from memory).
    #[default]
    Absent,
    /// The tokenizer, checked against the model's vocabulary.
    Loaded(std::sync::Arc<Tokenizer>),
    /// Why the tokenizer beside the model could not be used.
    Broken(String),
}

impl AttachedTokenizer {
    /// The tokenizer, or why there is none.
    pub fn get(&self) -> Result<&std::sync::Arc<Tokenizer>> {
        match self {
            AttachedTokenizer::Loaded(t) => Ok(t),
            AttachedTokenizer::Absent => Err(Error::Unsupported(
                "the model has no tokenizer (no tokenizer.json or vocab.txt beside its weights): load one with \
                 electra_tokenizer_load and pass it"
                    .into(),
            )),
            AttachedTokenizer::Broken(why) => Err(Error::Unsupported(format!("the model's tokenizer: {why}"))),
        }
    }
}

impl Encoded {
    /// Single rows (each a batch of one, unpadded) stacked into one batch padded with `pad` to
    /// the longest row (at least one column).
    pub fn stack(rows: &[&Encoded], pad: i32) -> Encoded {
        let seq_len = rows.iter().map(|r| r.seq_len).max().unwrap_or(0).max(1);
        let n = rows.len() * seq_len;
        let mut e = Encoded {
            batch: rows.len(),
            seq_len,
            input_ids: vec![pad; n],
            attention_mask: vec![0; n],
            token_type_ids: vec![0; n],
            offsets: vec![[0, 0]; n],
            words: vec![-1; n],
            lengths: rows.iter().map(|r| r.lengths[0]).collect(),
            truncated: rows.iter().map(|r| r.truncated[0]).collect(),
        };
        for (i, r) in rows.iter().enumerate() {
            let (at, l) = (i * seq_len, r.lengths[0]);
            e.input_ids[at..at + l].copy_from_slice(&r.input_ids[..l]);
            e.attention_mask[at..at + l].copy_from_slice(&r.attention_mask[..l]);
            e.token_type_ids[at..at + l].copy_from_slice(&r.token_type_ids[..l]);
            e.offsets[at..at + l].copy_from_slice(&r.offsets[..l]);
            e.words[at..at + l].copy_from_slice(&r.words[..l]);
        }
        e
    }
}

/// A WordPiece tokenizer (see the module docs for the exact pipeline).
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    special: SpecialIds,
    source: PathBuf,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("special", &self.special)
            .field("source", &self.source)
            .finish()
    }
}

fn bert_normalizer() -> BertNormalizer {
    // clean_text, handle_chinese_chars, strip_accents = None (follows lowercase), lowercase
    BertNormalizer::new(true, true, None, true)
}

impl Tokenizer {
    /// Loads a tokenizer from `path`: a `tokenizer.json` (any file ending in `.json`), a BERT
    /// `vocab.txt` (any other file; built as BERT-uncased), or a directory holding either (a
    /// `tokenizer.json` there wins over a `vocab.txt`).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read, [`Error::Format`] when it is not a regular file,
    /// is larger than its cap (`tokenizer.json` 64 MiB, `vocab.txt` 16 MiB, see [`crate::io::read`]),
    /// cannot be parsed, names no special token `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]` or `[MASK]`, or a directory holds neither file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            let json = path.join("tokenizer.json");
            let vocab = path.join("vocab.txt");
            // exists(), not is_file(): a FIFO named tokenizer.json gets "not a regular file".
            if json.exists() {
                Self::from_tokenizer_json(&json)
            } else if vocab.exists() {
                Self::from_vocab_file(&vocab)
            } else {
                Err(Error::format(path, "directory holds neither tokenizer.json nor vocab.txt"))
            }
        } else if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("json")) {
            Self::from_tokenizer_json(path)
        } else {
            Self::from_vocab_file(path)
        }
    }

    /// Loads an HF `tokenizer.json`, with truncation and padding switched off.
    ///
    /// # Errors
    /// As [`Tokenizer::from_file`].
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = read_regular(path, MAX_TOKENIZER_JSON_BYTES)?;
        Self::from_json_bytes(&bytes, path)
    }

    /// Parses the bytes of an HF `tokenizer.json` (as [`Tokenizer::from_tokenizer_json`] reads
    /// them from a file); `source` names it in messages.
    ///
    /// # Errors
    /// [`Error::Format`] when the bytes exceed the tokenizer.json cap (64 MiB), are not a
    /// tokenizer.json, or name no special token.
    pub fn from_json_bytes(bytes: &[u8], source: impl AsRef<Path>) -> Result<Self> {
        let path = source.as_ref();
        if bytes.len() as u64 > MAX_TOKENIZER_JSON_BYTES {
            return Err(Error::format(
                path,
                format!("{} bytes exceed the tokenizer.json limit of {MAX_TOKENIZER_JSON_BYTES}", bytes.len()),
            ));
        }
        // Check the JSON first, strings and escapes included (a `serde_json::Value` validates what
        // `IgnoredAny` skips, e.g. a lone surrogate `\ud800`): `tokenizers` 0.23 panics ("Helper")
        // on such an error inside the "decoder" object instead of returning it (found by
        // fuzz/tokenizer). The parse is bounded by the file cap above.
        serde_json::from_slice::<serde_json::Value>(bytes)
            .map_err(|e| Error::format(path, format!("tokenizer.json is not valid JSON: {e}")))?;
        // Any other panic of the third-party parser on hostile input is a format error too, not
        // a panic through the caller (the Rust API has no FFI guard).
        let parsed = std::panic::catch_unwind(|| tokenizers::Tokenizer::from_bytes(bytes)).map_err(|_| {
            Error::format(path, "tokenizer.json could not be parsed (the tokenizers crate gave up on it)")
        })?;
        let mut inner = parsed.map_err(|e| Error::format(path, e.to_string()))?;
        inner.with_truncation(None).map_err(|e| Error::format(path, e.to_string()))?;
        inner.with_padding(None);
        Self::wrap(inner, path)
    }

    /// Loads a BERT `vocab.txt` (one token per line, the line number is the id) and builds the
    /// BERT-uncased pipeline around it.
    ///
    /// # Errors
    /// As [`Tokenizer::from_file`]; also [`Error::Format`] for an empty file or invalid UTF-8.
    pub fn from_vocab_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = read_regular_utf8(path, MAX_VOCAB_TXT_BYTES)?;
        // Same reading as tokenizers' WordPiece::read_file: `lines()`, each token `trim_end()`ed.
        let tokens: Vec<String> = text.lines().map(|l| l.trim_end().to_owned()).collect();
        Self::from_tokens(tokens, path)
    }

    /// Builds the BERT-uncased pipeline over `tokens` (token `i` gets id `i`). `source` is only
    /// used in messages. A repeated token keeps its last id, as in HF.
    ///
    /// # Errors
    /// [`Error::Format`] when `tokens` is empty or lacks a special token.
    pub fn from_tokens(tokens: Vec<String>, source: impl AsRef<Path>) -> Result<Self> {
        let source = source.as_ref();
        if tokens.is_empty() {
            return Err(Error::format(source, "empty vocabulary"));
        }
        let vocab: AHashMap<String, u32> = tokens.into_iter().enumerate().map(|(i, t)| (t, i as u32)).collect();
        let model = WordPiece::builder()
            .vocab(vocab)
            .unk_token("[UNK]".into())
            .continuing_subword_prefix("##".into())
            .max_input_chars_per_word(MAX_INPUT_CHARS_PER_WORD)
            .build()
            .map_err(|e| Error::format(source, e.to_string()))?;
        let mut inner = tokenizers::Tokenizer::new(model);
        inner.with_normalizer(Some(bert_normalizer())).map_err(|e| Error::format(source, e.to_string()))?;
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_decoder(Some(WordPieceDecoder::new("##".into(), true)));
        let present: Vec<AddedToken> = SPECIAL_TOKENS
            .iter()
            .filter(|t| inner.get_model().token_to_id(t).is_some())
            .map(|t| AddedToken::from(*t, true))
            .collect();
        inner.add_special_tokens(present).map_err(|e| Error::format(source, e.to_string()))?;
        if let (Some(cls), Some(sep)) = (inner.token_to_id("[CLS]"), inner.token_to_id("[SEP]")) {
            // Only used by HF when it encodes with special tokens; we never do, but a saved
            // tokenizer.json should behave like BertTokenizerFast's.
            let post = TemplateProcessing::builder()
                .try_single("[CLS]:0 $A:0 [SEP]:0")
                .and_then(|b| b.try_pair("[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1"))
                .map_err(|e| Error::Internal(e.to_string()))?
                .special_tokens(vec![("[CLS]", cls), ("[SEP]", sep)])
                .build()
                .map_err(|e| Error::Internal(e.to_string()))?;
            inner.with_post_processor(Some(post));
        }
        Self::wrap(inner, source)
    }

    fn wrap(inner: tokenizers::Tokenizer, source: &Path) -> Result<Self> {
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .map(|i| i as i32)
                .ok_or_else(|| Error::format(source, format!("the vocabulary has no {t} token")))
        };
        let special = SpecialIds {
            pad: id("[PAD]")?,
            unk: id("[UNK]")?,
            cls: id("[CLS]")?,
            sep: id("[SEP]")?,
            mask: id("[MASK]")?,
        };
        Ok(Tokenizer { inner, special, source: source.to_path_buf() })
    }

    /// Token ids of `text`, without `[CLS]`/`[SEP]` (HF `encode(text, add_special_tokens=False)`).
    ///
    /// # Errors
    /// [`Error::Internal`] if the underlying tokenizer fails (it does not for a WordPiece model).
    pub fn encode(&self, text: &str) -> Result<Vec<i32>> {
        let enc = self.inner.encode_fast(text, false).map_err(|e| Error::Internal(format!("tokenizer: {e}")))?;
        Ok(enc.get_ids().iter().map(|&i| i as i32).collect())
    }

    /// Encodes a batch of texts (or text pairs) as a model reads them: special tokens (the
    /// tokenizer's post-processor: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` for BERT) when
    /// `opts.add_special_tokens`, cut to `opts.max_length` tokens (specials included; pairs cut
    /// longest first, as HF's default), and padded with `[PAD]` to the longest row. The result
    /// equals HF `tokenizers` with `enable_truncation(max_length)` and `enable_padding()` on the
    /// same tokenizer.json. Offsets are byte offsets into the row's own text (the second text's
    /// for its tokens); special and padding tokens have `(0, 0)`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty batch, a text of 4 GiB or more (offsets are 32-bit),
    /// or a `max_length` below the number of special tokens added;
    /// [`Error::Internal`] if the underlying tokenizer fails.
    pub fn encode_batch(&self, inputs: &[TextInput<'_>], opts: &EncodeOptions) -> Result<Encoded> {
        if inputs.is_empty() {
            return Err(Error::arg("no texts to encode"));
        }
        let rows = inputs.iter().map(|input| self.encode_row(input, opts)).collect::<Result<Vec<_>>>()?;
        let seq_len = rows.iter().map(|r| r.seq_len).max().unwrap_or(0).max(1);
        rows.len().checked_mul(seq_len).ok_or_else(|| Error::arg("batch too large"))?;
        Ok(Encoded::stack(&rows.iter().collect::<Vec<_>>(), self.special.pad))
    }

    /// One input as an unpadded row.
    fn encode_row(&self, input: &TextInput<'_>, opts: &EncodeOptions) -> Result<Encoded> {
        let enc = self.encode_one(input, opts)?;
        let special = enc.get_special_tokens_mask();
        let (offsets, words) = enc
            .get_offsets()
            .iter()
            .zip(enc.get_word_ids())
            .zip(special)
            // Lengths were checked to fit in u32 in `encode_one`.
            .map(
                |((&(s, t), w), &sp)| {
                    if sp == 0 {
                        ([s as u32, t as u32], w.map_or(-1, |w| w as i32))
                    } else {
                        ([0, 0], -1)
                    }
                },
            )
            .unzip();
        let len = enc.get_ids().len();
        Ok(Encoded {
            batch: 1,
            seq_len: len,
            input_ids: enc.get_ids().iter().map(|&i| i as i32).collect(),
            attention_mask: vec![1; len],
            token_type_ids: enc.get_type_ids().iter().map(|&t| t as i32).collect(),
            offsets,
            words,
            lengths: vec![len],
            truncated: vec![!enc.get_overflowing().is_empty()],
        })
    }

    fn encode_one(&self, input: &TextInput<'_>, opts: &EncodeOptions) -> Result<tokenizers::Encoding> {
        let internal = |e: tokenizers::Error| Error::Internal(format!("tokenizer: {e}"));
        let (a, b) = match *input {
            TextInput::Single(a) => (a, None),
            TextInput::Pair(a, b) => (a, Some(b)),
        };
        for t in [Some(a), b].into_iter().flatten() {
            if u32::try_from(t.len()).is_err() {
                return Err(Error::arg(format!(
                    "a text of {} bytes: offsets are 32-bit, texts must be below 4 GiB",
                    t.len()
                )));
            }
        }
        let ea = self.inner.encode(a, false).map_err(internal)?;
        let eb = b.map(|b| self.inner.encode(b, false)).transpose().map_err(internal)?;
        let (ea, eb) = if opts.max_length > 0 {
            let added = if opts.add_special_tokens {
                self.inner.get_post_processor().map_or(0, |p| {
                    use tokenizers::PostProcessor;
                    p.added_tokens(eb.is_some())
                })
            } else {
                0
            };
            if opts.max_length < added + 1 {
                return Err(Error::arg(format!(
                    "max_length {} leaves no room for text beside the {added} special tokens",
                    opts.max_length
                )));
            }
            let params = tokenizers::TruncationParams { max_length: opts.max_length - added, ..Default::default() };
            tokenizers::utils::truncation::truncate_encodings(ea, eb, &params).map_err(internal)?
        } else {
            (ea, eb)
        };
        self.inner.post_process(ea, eb, opts.add_special_tokens).map_err(internal)
    }

    /// The text of `ids`: tokens joined by spaces, `##` pieces glued to the previous token, and
    /// the spaces BERT puts before punctuation and around contractions removed (HF `decode` with
    /// `clean_up_tokenization_spaces`). Special tokens are left out when `skip_special_tokens`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an id outside `0..vocab_size()`.
    pub fn decode(&self, ids: &[i32], skip_special_tokens: bool) -> Result<String> {
        let n = self.vocab_size();
        let ids: Vec<u32> = ids
            .iter()
            .map(|&i| {
                if i < 0 || i as usize >= n {
                    Err(Error::arg(format!("token id {i} outside the vocabulary (size {n})")))
                } else {
                    Ok(i as u32)
                }
            })
            .collect::<Result<_>>()?;
        self.inner.decode(&ids, skip_special_tokens).map_err(|e| Error::Internal(format!("tokenizer: {e}")))
    }

    /// The token with id `id`, if any.
    pub fn id_to_token(&self, id: i32) -> Option<String> {
        u32::try_from(id).ok().and_then(|i| self.inner.id_to_token(i))
    }

    /// The id of `token` (a vocabulary entry such as `"##ing"`, not text), if any.
    pub fn token_to_id(&self, token: &str) -> Option<i32> {
        self.inner.token_to_id(token).map(|i| i as i32)
    }

    /// Number of ids (largest id + 1 for a `vocab.txt`); the model's vocabulary must be at least this.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The ids of `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]` and `[MASK]`.
    pub fn special_ids(&self) -> SpecialIds {
        self.special
    }

    /// Where this tokenizer was loaded from (or `"<trained>"`).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// All tokens in id order, i.e. the lines of `vocab.txt`.
    ///
    /// # Errors
    /// [`Error::Format`] when some id below [`Tokenizer::vocab_size`] has no token (a `tokenizer.json`
    /// with gaps, or a `vocab.txt` with repeated tokens), so no `vocab.txt` can represent it.
    pub fn vocab(&self) -> Result<Vec<String>> {
        (0..self.vocab_size() as u32)
            .map(|i| {
                self.inner.id_to_token(i).ok_or_else(|| {
                    Error::format(&self.source, format!("id {i} has no token; ids must be 0..{}", self.vocab_size()))
                })
            })
            .collect()
    }

    /// Writes `tokenizer.json` and `vocab.txt` into `dir` (created if needed), plus a
    /// `tokenizer_config.json` naming `BertTokenizer` unless `dir` already has one, so that both
    /// [`Tokenizer::from_file`] and HF `AutoTokenizer.from_pretrained(dir)` load it. Each file is
    /// written atomically.
    ///
    /// # Errors
    /// [`Error::Io`] on a write failure; [`Error::Format`] as in [`Tokenizer::vocab`].
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        let vocab = self.vocab()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let json_path = dir.join("tokenizer.json");
        let json = self.inner.to_string(true).map_err(|e| Error::format(&json_path, e.to_string()))?;
        write_atomic(&json_path, json.as_bytes())?;
        let mut txt = vocab.join("\n");
        txt.push('\n');
        write_atomic(&dir.join("vocab.txt"), txt.as_bytes())?;
        let config = dir.join("tokenizer_config.json");
        if !config.exists() {
            let c = serde_json::json!({
                "tokenizer_class": "BertTokenizer",
                "do_lower_case": true,
                "tokenize_chinese_chars": true,
                "strip_accents": null,
                "unk_token": "[UNK]",
                "sep_token": "[SEP]",
                "pad_token": "[PAD]",
                "cls_token": "[CLS]",
                "mask_token": "[MASK]",
            });
            let s = serde_json::to_string_pretty(&c).map_err(|e| Error::Internal(e.to_string()))?;
            write_atomic(&config, s.as_bytes())?;
        }
        Ok(())
    }

    /// Trains a BERT-uncased WordPiece vocabulary on `paths` (files, or directories of `*.txt`, see
    /// [`crate::data::text_files`]), read line by line, and returns its tokenizer.
    ///
    /// Words are counted after BERT normalization and pre-tokenization, then the `tokenizers` crate's
    /// WordPiece trainer (BPE-style merges of the most frequent adjacent pieces, `##` continuation
    /// prefix) runs until the vocabulary has `vocab_size` entries or no pair occurs `min_frequency`
    /// times. The vocabulary is: `[PAD] [UNK] [CLS] [SEP] [MASK]` (ids 0..4), the alphabet (at most
    /// [`TRAIN_ALPHABET_LIMIT`] most frequent characters, by code point), their `##` forms, then the
    /// merged pieces in merge order. It can exceed `vocab_size` only when the alphabet alone does.
    /// Undecodable bytes are replaced by U+FFFD (which the normalizer drops). The files must be
    /// regular files; lines are read as the corpus reads them (see [`crate::data::corpus`]): in
    /// pieces of at most 16 KiB split at spaces (the same words), and of a line longer than 1 MiB
    /// only its first 1 MiB counts.
    ///
    /// The result is deterministic: the same files and arguments give the same vocabulary, run
    /// after run (the word counts are kept in a fixed-seed map, since the trainer's tie-breaking
    /// follows the map's iteration order).
    ///
    /// # Errors
    /// [`Error::Io`] for unreadable paths, [`Error::InvalidArgument`] for `vocab_size < 6` or
    /// input without a single word.
    pub fn train<P: AsRef<Path>>(paths: &[P], vocab_size: usize, min_frequency: u64) -> Result<Tokenizer> {
        // Generic only in this shim: the trainer's code is instantiated once, in this crate,
        // not again in every crate that calls it (each test binary, the CLI).
        let paths: Vec<&Path> = paths.iter().map(AsRef::as_ref).collect();
        Self::train_paths(&paths, vocab_size, min_frequency)
    }

    fn train_paths(paths: &[&Path], vocab_size: usize, min_frequency: u64) -> Result<Tokenizer> {
        if vocab_size <= SPECIAL_TOKENS.len() {
            return Err(Error::arg(format!("vocab_size {vocab_size} leaves no room beyond the 5 special tokens")));
        }
        let files = super::text_files(paths)?;
        let normalizer = bert_normalizer();
        let mut counts: AHashMap<CompactString, u64> =
            AHashMap::with_hasher(ahash::RandomState::with_seeds(0x656c_6563, 0x7472_6120, 0x766f_6361, 0x6220_0001));
        let mut line = Vec::new();
        for file in &files {
            // Bounded pieces of lines, as the corpus reader reads them: a huge line costs no memory.
            let mut r = LineReader::open(file, 0, 0)?;
            while r.next_piece(&mut line, DEFAULT_MAX_LINE_BYTES, DEFAULT_LINE_PIECE_BYTES)?.is_some() {
                let text = String::from_utf8_lossy(&line);
                let mut n = NormalizedString::from(text.as_ref());
                normalizer.normalize(&mut n).map_err(|e| Error::Internal(e.to_string()))?;
                let mut pre = PreTokenizedString::from(n);
                BertPreTokenizer.pre_tokenize(&mut pre).map_err(|e| Error::Internal(e.to_string()))?;
                for (word, _, _) in pre.get_splits(OffsetReferential::Original, OffsetType::Byte) {
                    *counts.entry(CompactString::from(word)).or_default() += 1;
                }
            }
        }
        if counts.is_empty() {
            return Err(Error::arg("the training files contain no words"));
        }

        // The alphabet: the most frequent characters, ties by code point. Passing exactly these as the
        // initial alphabet with the same limit makes the trainer drop precisely the others.
        let mut chars: AHashMap<char, u64> = AHashMap::new();
        for (w, c) in &counts {
            for ch in w.chars() {
                *chars.entry(ch).or_default() += c;
            }
        }
        let mut chars: Vec<(char, u64)> = chars.into_iter().collect();
        chars.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        chars.truncate(TRAIN_ALPHABET_LIMIT);
        let alphabet: std::collections::HashSet<char> = chars.iter().map(|c| c.0).collect();

        let trainer = BpeTrainer::builder()
            .vocab_size(vocab_size)
            .min_frequency(min_frequency)
            .show_progress(false)
            .special_tokens(SPECIAL_TOKENS.iter().map(|t| AddedToken::from(*t, true)).collect())
            .limit_alphabet(alphabet.len())
            .initial_alphabet(alphabet)
            .continuing_subword_prefix("##".into())
            .build();
        let mut bpe = BPE::default();
        trainer.do_train(&counts, &mut bpe).map_err(|e| Error::Internal(format!("WordPiece training: {e}")))?;
        let vocab = WordPiece::from_bpe(&bpe).get_vocab();
        let mut tokens = vec![String::new(); vocab.len()];
        let mut seen: AHashSet<usize> = AHashSet::new();
        for (t, i) in vocab {
            let i = i as usize;
            if i >= tokens.len() || !seen.insert(i) {
                return Err(Error::Internal(format!("trained vocabulary has non-contiguous id {i}")));
            }
            tokens[i] = t;
        }
        Self::from_tokens(tokens, "<trained>")
    }
}
