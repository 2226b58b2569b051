//! `ElectraConfig`: the HF `config.json` of one ELECTRA model, validated, plus the paper's presets.
//!
//! Field names and defaults are those of `transformers.ElectraConfig`, whose defaults are the
//! Small discriminator; fields we do not use are kept in `extra` so a config round-trips.

use crate::error::{Error, Result};
use crate::layers::Activation;
use serde::{Deserialize, Serialize};
use std::path::Path;

// Some configs write `"pad_token_id": null`; HF then behaves as 0.
fn null_as_zero<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Ok(Option::<usize>::deserialize(d)?.unwrap_or(0))
}

fn d_vocab() -> usize {
    30522
}
fn d_emb() -> usize {
    128
}
fn d_hidden() -> usize {
    256
}
fn d_layers() -> usize {
    12
}
fn d_heads() -> usize {
    4
}
fn d_inter() -> usize {
    1024
}
fn d_act() -> String {
    "gelu".into()
}
fn d_drop() -> f32 {
    0.1
}
fn d_maxpos() -> usize {
    512
}
fn d_types() -> usize {
    2
}
fn d_init() -> f32 {
    0.02
}
fn d_eps() -> f64 {
    1e-12
}
fn d_pos_type() -> String {
    "absolute".into()
}
fn d_true() -> bool {
    true
}
fn d_model_type() -> String {
    "electra".into()
}

/// config.json key of a classifier's pooling.
const POOLING_KEY: &str = "classifier_pooling";

/// What a sequence classifier reads from the encoder: the first ([CLS]) token's state, as HF's
/// `ElectraForSequenceClassification`, or the mean of the non-padding tokens' states (saved as
/// `"classifier_pooling": "mean"` in config.json; HF's ELECTRA class keeps the key but still pools
/// [CLS], so in PyTorch such a checkpoint needs the masked mean: scripts/hf_classify.py takes it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The first token's state (default).
    #[default]
    Cls,
    /// The masked mean over the sequence's tokens.
    Mean,
}

impl Pooling {
    /// The config.json and options spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Cls => "cls",
            Pooling::Mean => "mean",
        }
    }
}

impl std::str::FromStr for Pooling {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        [Pooling::Cls, Pooling::Mean]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| Error::arg(format!("pooling {s:?}: expected \"cls\" or \"mean\"")))
    }
}

/// config.json key of a discriminator's replaced-token-detection head.
const RTD_HEAD_KEY: &str = "rtd_head";

/// What a discriminator's replaced-token-detection head reads at each token: that token's final
/// state, as HF's `ElectraDiscriminatorPredictions` (the default), or `LayerNorm(h_[CLS] + h_i)`,
/// DeBERTa's RTD head, which gives the [CLS] state a gradient from every token's detection
/// (special tokens are never replaced, so the plain head teaches [CLS] nothing). Saved as
/// `"rtd_head": "cls"` in config.json, with the LayerNorm as
/// `discriminator_predictions.LayerNorm.{weight,bias}`; HF loads such a checkpoint's encoder
/// unchanged (it reports the two tensors as unused, and its own head then skips the LayerNorm).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtdHead {
    /// Each token's own state (HF's head).
    #[default]
    Plain,
    /// `LayerNorm(h_[CLS] + h_i)` before HF's head.
    Cls,
}

impl RtdHead {
    /// The config.json and options spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RtdHead::Plain => "plain",
            RtdHead::Cls => "cls",
        }
    }
}

/// One ELECTRA model's configuration, as in HF `config.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ElectraConfig {
    /// HF architecture names, e.g. `["ElectraForPreTraining"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Always "electra".
    #[serde(default = "d_model_type")]
    pub model_type: String,
    /// V: vocabulary size.
    #[serde(default = "d_vocab")]
    pub vocab_size: usize,
    /// E: width of the embeddings (projected to H when different).
    #[serde(default = "d_emb")]
    pub embedding_size: usize,
    /// H: hidden width of the encoder.
    #[serde(default = "d_hidden")]
    pub hidden_size: usize,
    /// L: number of encoder layers.
    #[serde(default = "d_layers")]
    pub num_hidden_layers: usize,
    /// NH: attention heads; must divide H.
    #[serde(default = "d_heads")]
    pub num_attention_heads: usize,
    /// I: feed-forward width.
    #[serde(default = "d_inter")]
    pub intermediate_size: usize,
    /// Activation name (see [`Activation::from_name`]).
    #[serde(default = "d_act")]
    pub hidden_act: String,
    /// Dropout after embeddings, attention output and feed-forward (training only).
    #[serde(default = "d_drop")]
    pub hidden_dropout_prob: f32,
    /// Dropout on attention probabilities (training only).
    #[serde(default = "d_drop")]
    pub attention_probs_dropout_prob: f32,
    /// T_max: largest sequence length.
    #[serde(default = "d_maxpos")]
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[serde(default = "d_types")]
    pub type_vocab_size: usize,
    /// Standard deviation of the weight initialisation.
    #[serde(default = "d_init")]
    pub initializer_range: f32,
    /// LayerNorm epsilon.
    #[serde(default = "d_eps")]
    pub layer_norm_eps: f64,
    /// The [PAD] id; its embedding row gets no gradient from the lookup (as HF `padding_idx`).
    #[serde(default, deserialize_with = "null_as_zero")]
    pub pad_token_id: usize,
    /// Only "absolute" is supported.
    #[serde(default = "d_pos_type")]
    pub position_embedding_type: String,
    /// Whether the generator's output projection is its input word embedding matrix.
    #[serde(default = "d_true")]
    pub tie_word_embeddings: bool,
    /// Every other field, kept so that saving preserves it.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Default for ElectraConfig {
    fn default() -> Self {
        serde_json::from_str("{}").expect("empty config parses")
    }
}

/// The largest dimension (vocabulary, widths, layers, positions, types, heads) a config may
/// have: 2^24. Anything larger is a corrupt or hostile file, not a model.
///
/// cbindgen:ignore
pub const MAX_DIM: usize = 1 << 24;

/// Preset names accepted by [`ElectraConfig::preset`].
pub const PRESETS: &[&str] = &["tiny", "small", "base", "large"];

impl ElectraConfig {
    /// Parameters of one encoder tower with either head (the larger of the discriminator's and an
    /// untied generator's), an upper bound of what `Model::new` registers for this config; an
    /// error when the count overflows.
    pub fn tower_params(&self) -> Result<usize> {
        let what = "model parameters";
        let sum = |terms: &[&[usize]]| -> Result<usize> {
            terms.iter().try_fold(0usize, |acc, t| {
                acc.checked_add(crate::alloc::count(t, what)?)
                    .ok_or_else(|| Error::OutOfMemory(format!("{what} overflow")))
            })
        };
        let (v, e, h, i) = (self.vocab_size, self.embedding_size, self.hidden_size, self.intermediate_size);
        let (p, tt, l) = (self.max_position_embeddings, self.type_vocab_size, self.num_hidden_layers);
        let rows = sum(&[&[v], &[p], &[tt]])?;
        let layer = sum(&[&[4, h, h], &[2, h, i], &[9, h], &[1, i]])?;
        let embeddings = sum(&[&[rows, e], &[2, e], &[e, h], &[1, h]])?;
        // Generator head: dense H→E, LayerNorm, an untied E→V projection and its bias; the
        // discriminator's head (H·H + 2H + 1) is smaller whenever V·E ≥ H·H, and both are counted
        // to stay an upper bound either way.
        let heads = sum(&[&[h, e], &[3, e], &[v, e], &[1, v], &[h, h], &[2, h], &[1, 1]])?;
        sum(&[&[embeddings], &[l, layer], &[heads]])
    }

    /// Parses and validates a `config.json` string.
    pub fn from_json_str(s: &str) -> Result<Self> {
        let cfg: ElectraConfig = serde_json::from_str(s).map_err(|e| Error::Config(format!("config.json: {e}")))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a `config.json` file.
    pub fn from_file(path: &Path) -> Result<Self> {
        // A regular file of at most 1 MiB (a FIFO or a huge file is refused); not UTF-8 is a format error.
        let s = crate::io::read::read_regular_utf8(path, crate::io::read::MAX_CONFIG_BYTES)?;
        Self::from_json_at(&s, path)
    }

    /// Parses and validates a `config.json` held as text; errors are format errors naming `path`.
    pub fn from_json_at(s: &str, path: &Path) -> Result<Self> {
        let cfg: ElectraConfig =
            serde_json::from_str(s).map_err(|e| Error::format(path, format!("config.json: {e}")))?;
        cfg.validate().map_err(|e| Error::format(path, e.to_string()))?;
        Ok(cfg)
    }

    /// Serialises to pretty JSON as HF writes it.
    pub fn to_json_string(&self) -> String {
        serde_json::to_string_pretty(self).expect("config serialises")
    }

    /// Checks every numeric invariant the model relies on.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("embedding_size", self.embedding_size),
            ("hidden_size", self.hidden_size),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ];
        for (name, v) in positive.into_iter().chain([("num_hidden_layers", self.num_hidden_layers)]) {
            if v == 0 && name != "num_hidden_layers" {
                return Err(Error::Config(format!("{name} must be positive")));
            }
            if v > MAX_DIM {
                return Err(Error::Config(format!(
                    "{name} = {v} is absurdly large (at most {MAX_DIM}); check the config"
                )));
            }
        }
        // Every product of the layout must be representable: a config whose parameter count
        // overflows is not a model (one that merely exceeds memory is checked on allocation).
        self.tower_params()
            .map_err(|_| Error::Config("the parameter count of this config overflows the address space".into()))?;
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(Error::Config(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            )));
        }
        Activation::from_name(&self.hidden_act)?;
        self.classifier_pooling()?;
        self.rtd_head()?;
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(Error::Config(format!("layer_norm_eps must be positive, got {}", self.layer_norm_eps)));
        }
        for (name, p) in [
            ("hidden_dropout_prob", self.hidden_dropout_prob),
            ("attention_probs_dropout_prob", self.attention_probs_dropout_prob),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(Error::Config(format!("{name} must be in [0, 1), got {p}")));
            }
        }
        if self.position_embedding_type != "absolute" {
            return Err(Error::Config(format!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                self.position_embedding_type
            )));
        }
        if self.pad_token_id >= self.vocab_size {
            return Err(Error::Config(format!(
                "pad_token_id {} is outside the vocabulary ({})",
                self.pad_token_id, self.vocab_size
            )));
        }
        Ok(())
    }

    /// The parsed `hidden_act`.
    pub fn activation(&self) -> Result<Activation> {
        Activation::from_name(&self.hidden_act)
    }

    /// The encoder's dropout probabilities `(hidden_dropout_prob, attention_probs_dropout_prob)`.
    pub fn dropout_probs(&self) -> (f32, f32) {
        (self.hidden_dropout_prob, self.attention_probs_dropout_prob)
    }

    /// The classification head's, in the same form: HF's `classifier_dropout` when set, else
    /// `hidden_dropout_prob` (the head has no attention).
    pub fn classifier_dropout_probs(&self) -> (f32, f32) {
        let p = self.extra.get("classifier_dropout").and_then(|v| v.as_f64());
        (p.map_or(self.hidden_dropout_prob, |p| p as f32), 0.0)
    }

    /// How a classification head pools the encoder's states: `classifier_pooling` (`"cls"`,
    /// the default and HF `ElectraForSequenceClassification`'s, or `"mean"`), the key and
    /// values HF's ModernBERT config uses for the same choice.
    pub fn classifier_pooling(&self) -> Result<Pooling> {
        self.choice(POOLING_KEY, "\"cls\" or \"mean\"")
    }

    /// Sets `classifier_pooling` (left out for `cls`, so that a [CLS] classifier's config.json
    /// is HF's own).
    pub fn set_classifier_pooling(&mut self, p: Pooling) {
        self.set_choice(POOLING_KEY, p);
    }

    /// A choice kept in `extra` under `key`: its default when absent or null, else the value,
    /// which must be one of `expected` (for the message).
    fn choice<T: serde::de::DeserializeOwned + Default>(&self, key: &str, expected: &str) -> Result<T> {
        match self.extra.get(key) {
            None | Some(serde_json::Value::Null) => Ok(T::default()),
            Some(v) => serde_json::from_value(v.clone())
                .map_err(|_| Error::Config(format!("{key} must be {expected}, got {v}"))),
        }
    }

    /// Sets the choice under `key`, leaving the key out for the default (so that such a
    /// config.json is HF's own).
    fn set_choice<T: Serialize + Default + PartialEq>(&mut self, key: &str, v: T) {
        if v == T::default() {
            self.extra.remove(key);
        } else if let Ok(json) = serde_json::to_value(v) {
            self.extra.insert(key.into(), json);
        }
    }

    /// The discriminator's detection head: `rtd_head` (`"plain"`, the default and HF's, or
    /// `"cls"`; see [`RtdHead`]).
    pub fn rtd_head(&self) -> Result<RtdHead> {
        self.choice(RTD_HEAD_KEY, "\"plain\" or \"cls\"")
    }

    /// Sets `rtd_head` (left out for `plain`, so that such a config.json is HF's own).
    pub fn set_rtd_head(&mut self, h: RtdHead) {
        self.set_choice(RTD_HEAD_KEY, h);
    }

    /// HD: width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }

    /// A discriminator preset: `tiny` (for tests and demos), `small`, `base` or `large` (the paper's).
    pub fn preset(name: &str) -> Result<Self> {
        let (layers, hidden, emb) = match name {
            "tiny" => (2, 128, 64),
            "small" => (12, 256, 128),
            "base" => (12, 768, 768),
            "large" => (24, 1024, 1024),
            other => return Err(Error::arg(format!("unknown preset {other:?} (expected one of {PRESETS:?})"))),
        };
        let mut cfg = ElectraConfig {
            num_hidden_layers: layers,
            hidden_size: hidden,
            embedding_size: emb,
            num_attention_heads: (hidden / 64).max(1),
            intermediate_size: 4 * hidden,
            architectures: vec!["ElectraForPreTraining".into()],
            ..Default::default()
        };
        if name == "tiny" {
            cfg.max_position_embeddings = 128;
        }
        Ok(cfg)
    }

    /// The paper's generator fraction for a preset: 1/4 for small and large, 1/3 for base.
    pub fn paper_generator_fraction(preset: &str) -> f64 {
        if preset == "base" {
            1.0 / 3.0
        } else {
            0.25
        }
    }

    /// The generator config for this discriminator, by the original code's size rule:
    /// hidden = round(H·fraction), intermediate = 4·hidden, heads = max(1, hidden/64), same depth
    /// and the discriminator's embedding_size (so embeddings can be shared).
    pub fn generator_config(&self, hidden_fraction: f64) -> Result<Self> {
        if !(hidden_fraction > 0.0 && hidden_fraction <= 1.0) {
            return Err(Error::arg(format!("generator_hidden_fraction must be in (0, 1], got {hidden_fraction}")));
        }
        let hidden = ((self.hidden_size as f64 * hidden_fraction).round() as usize).max(1);
        let heads = (hidden / 64).max(1);
        if !hidden.is_multiple_of(heads) {
            return Err(Error::Config(format!("generator hidden {hidden} is not a multiple of its {heads} heads")));
        }
        let mut g = self.clone();
        g.hidden_size = hidden;
        g.intermediate_size = 4 * hidden;
        g.num_attention_heads = heads;
        g.architectures = vec!["ElectraForMaskedLM".into()];
        // The detection head is the discriminator's alone.
        g.set_rtd_head(RtdHead::Plain);
        g.validate()?;
        Ok(g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_hf_small() {
        let c = ElectraConfig::from_json_str("{}").unwrap();
        assert_eq!((c.vocab_size, c.embedding_size, c.hidden_size), (30522, 128, 256));
        assert_eq!((c.num_hidden_layers, c.num_attention_heads, c.intermediate_size), (12, 4, 1024));
        assert_eq!(c.layer_norm_eps, 1e-12);
        assert_eq!(c.activation().unwrap(), Activation::Gelu);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        for bad in [
            r#"{"hidden_size": 100, "num_attention_heads": 3}"#,
            r#"{"hidden_act": "bogus"}"#,
            r#"{"position_embedding_type": "relative_key"}"#,
            r#"{"vocab_size": 0}"#,
            r#"{"layer_norm_eps": -1.0}"#,
            r#"{"hidden_size": "wide"}"#,
            r#"{"hidden_size": 1000000000, "num_attention_heads": 1}"#,
            r#"{"vocab_size": 1000000000}"#,
            r#"{"num_hidden_layers": 1000000000}"#,
            r#"{"num_attention_heads": 1000000000}"#,
            r#"{"max_position_embeddings": 2305843009213693952}"#,
            r#"{"intermediate_size": 18446744073709551615}"#,
        ] {
            assert!(ElectraConfig::from_json_str(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn presets_and_generator_rule() {
        let small = ElectraConfig::preset("small").unwrap();
        let g = small.generator_config(0.25).unwrap();
        assert_eq!((g.hidden_size, g.num_attention_heads, g.intermediate_size), (64, 1, 256));
        assert_eq!((g.embedding_size, g.num_hidden_layers), (128, 12));
        let base = ElectraConfig::preset("base").unwrap();
        let g = base.generator_config(ElectraConfig::paper_generator_fraction("base")).unwrap();
        assert_eq!((g.hidden_size, g.num_attention_heads, g.intermediate_size), (256, 4, 1024));
        let large = ElectraConfig::preset("large").unwrap();
        assert_eq!(large.num_attention_heads, 16);
        assert_eq!(large.generator_config(0.25).unwrap().hidden_size, 256);
    }

    #[test]
    fn unknown_fields_round_trip() {
        let c =
            ElectraConfig::from_json_str(r#"{"summary_type": "first", "hidden_size": 64, "num_attention_heads": 1}"#)
                .unwrap();
        let back = ElectraConfig::from_json_str(&c.to_json_string()).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.extra["summary_type"], "first");
    }
}
