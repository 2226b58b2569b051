//! `Model`: one flat parameter store holding a discriminator, a generator, or both (the
//! pre-training pair, whose embeddings are shared as in the original code).

pub mod classifier;
pub mod encoder;
pub mod heads;
pub mod layers;

use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::params::{ParamId, ParamStore};
use encoder::Encoder;
use heads::{DiscHead, GenHead};
use layers::Registrar;
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// The replaced-token detector (HF `ElectraForPreTraining`).
#[derive(Clone, Debug)]
pub struct Discriminator {
    /// Its config.json.
    pub config: ElectraConfig,
    /// `electra.*`.
    pub encoder: Encoder,
    /// `discriminator_predictions.*`.
    pub head: DiscHead,
    /// (HF name, id) of every tensor of its checkpoint, in HF order.
    pub names: Vec<(String, ParamId)>,
}

/// The masked-LM generator (HF `ElectraForMaskedLM`).
#[derive(Clone, Debug)]
pub struct Generator {
    /// Its config.json.
    pub config: ElectraConfig,
    /// `electra.*`.
    pub encoder: Encoder,
    /// `generator_predictions.*` and `generator_lm_head.*`.
    pub head: GenHead,
    /// (HF name, id) of every tensor of its checkpoint, in HF order (a tied lm head weight is
    /// not listed: transformers omits it from the file).
    pub names: Vec<(String, ParamId)>,
}

/// A discriminator, a generator, or both, over one [`ParamStore`].
#[derive(Clone, Debug)]
pub struct Model {
    /// Every weight.
    pub params: ParamStore,
    /// The discriminator, if present.
    pub disc: Option<Discriminator>,
    /// The generator, if present.
    pub gen: Option<Generator>,
    /// A sequence classifier (fine-tuning), if present.
    pub cls: Option<classifier::Classifier>,
    /// Whether the generator reads the discriminator's embedding tables.
    pub shared_embeddings: bool,
    /// Inference's copy of the weights with Linear layers in `[in, out]` layout.
    inout: InOutCache,
}

/// The parameters with every encoder Linear weight transposed to `[in, out]`, which the matrix
/// kernel multiplies faster at inference's row counts. Built on first use by a [`Session`]
/// (crate::session::Session) and shared by all sessions of the model; never copied by `clone`,
/// because a clone may be trained and the copy would then be stale.
#[derive(Default)]
struct InOutCache(std::sync::OnceLock<Vec<f32>>);

impl Clone for InOutCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for InOutCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InOutCache {{ built: {} }}", self.0.get().is_some())
    }
}

impl Model {
    /// Allocates a zero-filled model. With both towers and `share_embeddings`, the generator uses
    /// the discriminator's word, position and type tables and embedding LayerNorm (the original
    /// ELECTRA code's sharing), which requires equal vocab, embedding_size, positions and types.
    pub fn new(disc: Option<ElectraConfig>, gen: Option<ElectraConfig>, share_embeddings: bool) -> Result<Self> {
        if disc.is_none() && gen.is_none() {
            return Err(Error::arg("a model needs a discriminator, a generator, or both"));
        }
        let mut params = ParamStore::new();
        let disc = disc.map(|cfg| {
            cfg.validate()?;
            let mut names = Vec::new();
            let mut reg = Registrar { store: &mut params, scope: "discriminator", names: &mut names };
            let encoder = Encoder::register(&mut reg, &cfg, None);
            let head = DiscHead::register(&mut reg, &cfg);
            Ok::<_, Error>(Discriminator { config: cfg, encoder, head, names })
        });
        let disc = disc.transpose()?;
        let share = share_embeddings && disc.is_some() && gen.is_some();
        let gen = match gen {
            None => None,
            Some(cfg) => {
                cfg.validate()?;
                if let (true, Some(d)) = (share, &disc) {
                    let dc = &d.config;
                    let same = dc.vocab_size == cfg.vocab_size
                        && dc.embedding_size == cfg.embedding_size
                        && dc.max_position_embeddings == cfg.max_position_embeddings
                        && dc.type_vocab_size == cfg.type_vocab_size;
                    if !same {
                        return Err(Error::Config(
                            "shared embeddings need equal vocab_size, embedding_size, max_position_embeddings and \
                             type_vocab_size in generator and discriminator"
                                .into(),
                        ));
                    }
                }
                let mut names = Vec::new();
                let mut reg = Registrar { store: &mut params, scope: "generator", names: &mut names };
                let shared = match (share, &disc) {
                    (true, Some(d)) => Some((&d.encoder.emb, d.names.as_slice())),
                    _ => None,
                };
                let encoder = Encoder::register(&mut reg, &cfg, shared);
                let word_id = reg
                    .names
                    .iter()
                    .find(|(n, _)| n == "electra.embeddings.word_embeddings.weight")
                    .expect("registered")
                    .1;
                let head = GenHead::register(&mut reg, &cfg, cfg.tie_word_embeddings.then_some(word_id));
                Some(Generator { config: cfg, encoder, head, names })
            }
        };
        Ok(Model { params, disc, gen, cls: None, shared_embeddings: share, inout: InOutCache::default() })
    }

    /// A zero-filled sequence classifier (HF `ElectraForSequenceClassification`); `cfg` says the
    /// number of labels through `id2label` (see [`classifier::set_labels`]).
    pub fn new_classifier(cfg: ElectraConfig) -> Result<Self> {
        cfg.validate()?;
        let num_labels = classifier::num_labels(&cfg)?;
        let mut params = ParamStore::new();
        let mut names = Vec::new();
        let mut reg = Registrar { store: &mut params, scope: "classifier", names: &mut names };
        let encoder = Encoder::register(&mut reg, &cfg, None);
        let head = classifier::ClsHead::register(&mut reg, cfg.hidden_size, num_labels);
        let cls = classifier::Classifier { config: cfg, encoder, head, num_labels, names };
        Ok(Model {
            params,
            disc: None,
            gen: None,
            cls: Some(cls),
            shared_embeddings: false,
            inout: InOutCache::default(),
        })
    }

    /// HF-style random initialisation from `seed`: normal(0, initializer_range) for Linear and
    /// embedding weights, zero biases, LayerNorm 1/0, and a zero [PAD] row in the word table.
    pub fn init_weights(&mut self, seed: u64) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let std = self
            .disc
            .as_ref()
            .map(|d| d.config.initializer_range)
            .or(self.gen.as_ref().map(|g| g.config.initializer_range))
            .or(self.cls.as_ref().map(|c| c.config.initializer_range))
            .unwrap_or(0.02);
        let normal = Normal::new(0.0f32, std).expect("valid std");
        let pad = self.pad_id();
        let infos: Vec<_> = self.params.infos().to_vec();
        for info in &infos {
            let vals = &mut self.params.data[info.offset..info.offset + info.len];
            if info.name.contains("LayerNorm") {
                let one = info.name.ends_with(".weight");
                vals.fill(if one { 1.0 } else { 0.0 });
            } else if info.name.ends_with("bias") {
                vals.fill(0.0);
            } else {
                for v in vals.iter_mut() {
                    *v = normal.sample(&mut rng);
                }
                if info.name.ends_with("word_embeddings.weight") {
                    let e = info.shape[1];
                    vals[pad * e..(pad + 1) * e].fill(0.0);
                }
            }
        }
    }

    fn pad_id(&self) -> usize {
        self.input_config().pad_token_id
    }

    /// The config that describes the model's inputs (the discriminator's, else the generator's).
    pub fn input_config(&self) -> &ElectraConfig {
        match (&self.disc, &self.gen, &self.cls) {
            (Some(d), _, _) => &d.config,
            (None, Some(g), _) => &g.config,
            (None, None, Some(c)) => &c.config,
            (None, None, None) => unreachable!("a model has at least one tower"),
        }
    }

    /// The flat parameters with every encoder Linear weight in `[in, out]` layout (the `inout`
    /// argument of [`encoder::Encoder::forward_with`]), built on the first call and kept: call it
    /// only on a model whose weights no longer change (sessions hold theirs in an `Arc`).
    pub fn inout_weights(&self) -> &[f32] {
        self.inout.0.get_or_init(|| {
            let mut t = self.params.data.clone();
            let towers = self.disc.iter().map(|d| &d.encoder);
            let towers = towers.chain(self.gen.iter().map(|g| &g.encoder)).chain(self.cls.iter().map(|c| &c.encoder));
            for enc in towers {
                enc.transpose_linears(&self.params.data, &mut t);
            }
            t
        })
    }

    /// Number of distinct scalars.
    pub fn num_parameters(&self) -> usize {
        self.params.numel()
    }
}
