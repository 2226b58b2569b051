//! `Model`: one flat parameter store and what it holds ([`Towers`]): the pre-training pair
//! (generator + discriminator, embeddings shared as in the original code), a lone discriminator,
//! a lone generator (masked LM), or a sequence classifier.
//!
//! A model lives in host memory; the layers' forward and backward passes (`encoder.rs`,
//! `heads.rs`, `classifier.rs`) run on any [`Backend`] and read the weights through
//! [`crate::backend::Weights`].

pub mod classifier;
pub mod encoder;
pub mod heads;
pub mod registrar;

use crate::backend::{Backend, Buf, Device, InferenceWeights, Mem, ParamGrads, Prepared};
use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::layers::int8::QuantizedWeights;
use crate::layers::Linear;
use crate::params::{ParamId, ParamStore};
use classifier::Classifier;
use encoder::Encoder;
use heads::{DiscHead, GenHead};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use registrar::Registrar;
use std::sync::{Arc, Mutex};

/// What every backward of the model threads through: the backend, and the weights it reads with
/// the flat gradients it accumulates into.
pub struct Backprop<'a> {
    /// The backend.
    pub be: &'a dyn Backend,
    /// Weights and gradients.
    pub params: ParamGrads<'a>,
}

impl<'a> Backprop<'a> {
    /// Backward passes on `be` reading the weights `w` and accumulating into `grads`.
    pub fn new(be: &'a dyn Backend, w: Mem<'a>, grads: &'a mut Buf) -> Self {
        Backprop { be, params: ParamGrads { w, grads } }
    }
}

/// The id of tensor `hf` (its HF name) in a tower's `names`; `tower` names the tower in the error.
pub fn hf_id(names: &[(String, ParamId)], hf: &str, tower: &str) -> Result<ParamId> {
    names
        .iter()
        .find(|(n, _)| n == hf)
        .map(|(_, id)| *id)
        .ok_or_else(|| Error::Internal(format!("the {tower} registered no {hf}")))
}

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

/// What a model holds.
// One per model, never in a collection: the pair's size is of no concern.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Towers {
    /// The pre-training pair.
    Pair {
        /// The discriminator.
        disc: Discriminator,
        /// The generator.
        gen: Generator,
        /// Whether the generator reads the discriminator's embedding tables.
        shared_embeddings: bool,
    },
    /// A discriminator alone.
    Discriminator(Discriminator),
    /// A generator (or masked-LM model) alone.
    Generator(Generator),
    /// A sequence classifier (HF `ElectraForSequenceClassification`).
    Classifier(Classifier),
}

impl Towers {
    /// The Linear layers inference runs, which a backend may prepare: every encoder's (the
    /// embedding projection included) and the heads' (discriminator, classifier, the generator's
    /// dense), in offset order. The generator's output projection is not among them (it is the
    /// word table when tied; see `crate::quant::quantized_tensors`).
    pub fn inference_linears(&self) -> Vec<Linear> {
        let mut out: Vec<Linear> = self.encoders().flat_map(|e| e.linears().copied().collect::<Vec<_>>()).collect();
        if let Some(d) = self.disc() {
            out.extend([d.head.dense, d.head.pred]);
        }
        if let Some(g) = self.gen() {
            out.push(g.head.dense);
        }
        if let Some(c) = self.cls() {
            out.extend([c.head.dense, c.head.out_proj]);
        }
        // A pair with shared embeddings lists the shared projection once per encoder.
        out.sort_by_key(|l| l.w.off);
        out.dedup_by_key(|l| l.w.off);
        out
    }

    /// The discriminator, if there is one.
    pub fn disc(&self) -> Option<&Discriminator> {
        match self {
            Towers::Pair { disc, .. } | Towers::Discriminator(disc) => Some(disc),
            _ => None,
        }
    }

    /// The generator, if there is one.
    pub fn gen(&self) -> Option<&Generator> {
        match self {
            Towers::Pair { gen, .. } | Towers::Generator(gen) => Some(gen),
            _ => None,
        }
    }

    /// The classifier, if this is one.
    pub fn cls(&self) -> Option<&Classifier> {
        match self {
            Towers::Classifier(c) => Some(c),
            _ => None,
        }
    }

    /// Whether the generator reads the discriminator's embeddings.
    pub fn shared_embeddings(&self) -> bool {
        matches!(self, Towers::Pair { shared_embeddings: true, .. })
    }

    /// The config that describes the model's inputs (the discriminator's in a pair).
    pub fn input_config(&self) -> &ElectraConfig {
        match self {
            Towers::Pair { disc, .. } | Towers::Discriminator(disc) => &disc.config,
            Towers::Generator(g) => &g.config,
            Towers::Classifier(c) => &c.config,
        }
    }

    /// Every encoder tower.
    pub fn encoders(&self) -> impl Iterator<Item = &Encoder> + '_ {
        let (a, b) = match self {
            Towers::Pair { disc, gen, .. } => (&disc.encoder, Some(&gen.encoder)),
            Towers::Discriminator(d) => (&d.encoder, None),
            Towers::Generator(g) => (&g.encoder, None),
            Towers::Classifier(c) => (&c.encoder, None),
        };
        std::iter::once(a).chain(b)
    }
}

/// A model: its weights in host memory and what they make up.
#[derive(Clone, Debug)]
pub struct Model {
    /// Every weight.
    pub params: ParamStore,
    /// What the weights make up.
    pub towers: Towers,
    /// The int8 form of the Linear weights when the model is quantized (see [`crate::quant`]):
    /// their f32 spans in `params` are then zero and unused, and the model serves inference only.
    pub quant: Option<Arc<QuantizedWeights>>,
    /// Inference forms of the weights, one per device (see [`Model::prepared`]).
    prepared: PreparedCache,
    /// The tokenizer saved beside the weights (set by whoever loaded them from a directory).
    pub tokenizer: crate::data::tokenizer::AttachedTokenizer,
}

/// The backends' [`Prepared`] weights of a model, built on first use by a session and shared by
/// all sessions of the model on that device. Never copied by `clone`: a clone may be trained and
/// the copy would then be stale.
#[derive(Default)]
struct PreparedCache(Mutex<Vec<(Device, Arc<Prepared>)>>);

impl Clone for PreparedCache {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for PreparedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let devices: Vec<Device> = self.0.lock().map(|v| v.iter().map(|(d, _)| *d).collect()).unwrap_or_default();
        write!(f, "PreparedCache {devices:?}")
    }
}

fn register_disc(params: &mut ParamStore, cfg: ElectraConfig) -> Result<Discriminator> {
    cfg.validate()?;
    let mut names = Vec::new();
    let mut reg = Registrar { store: params, scope: "discriminator", names: &mut names };
    let encoder = Encoder::register(&mut reg, &cfg, None)?;
    let head = DiscHead::register(&mut reg, &cfg)?;
    Ok(Discriminator { config: cfg, encoder, head, names })
}

fn register_gen(params: &mut ParamStore, cfg: ElectraConfig, shared: Option<&Discriminator>) -> Result<Generator> {
    cfg.validate()?;
    let mut names = Vec::new();
    let mut reg = Registrar { store: params, scope: "generator", names: &mut names };
    let encoder = Encoder::register(&mut reg, &cfg, shared.map(|d| (&d.encoder.emb, d.names.as_slice())))?;
    let word = hf_id(reg.names, "electra.embeddings.word_embeddings.weight", "generator")?;
    let head = GenHead::register(&mut reg, &cfg, cfg.tie_word_embeddings.then_some(word));
    Ok(Generator { config: cfg, encoder, head, names })
}

/// Validates `towers`, checks their weights' bytes against the machine's memory and reserves
/// them, before anything is registered: a config too large for the machine is
/// [`Error::OutOfMemory`] here, not an abort (or the OOM killer) halfway through registration.
fn reserve(params: &mut ParamStore, towers: &[&ElectraConfig]) -> Result<()> {
    for c in towers {
        c.validate()?;
    }
    let bytes = crate::limits::model_bytes(towers)?;
    crate::limits::check(bytes, 0, "the model's weights")?;
    params.reserve(bytes / 4)
}

impl Model {
    fn from_towers(params: ParamStore, towers: Towers) -> Self {
        Model { params, towers, quant: None, prepared: PreparedCache::default(), tokenizer: Default::default() }
    }

    /// Allocates a zero-filled model: a discriminator, a generator, or the pair. With both and
    /// `share_embeddings`, the generator uses the discriminator's word, position and type tables
    /// and embedding LayerNorm (the original ELECTRA code's sharing), which requires equal vocab,
    /// embedding_size, positions and types.
    pub fn new(disc: Option<ElectraConfig>, gen: Option<ElectraConfig>, share_embeddings: bool) -> Result<Self> {
        let mut params = ParamStore::new();
        let towers: Vec<&ElectraConfig> = disc.iter().chain(gen.iter()).collect();
        reserve(&mut params, &towers)?;
        let towers = match (disc, gen) {
            (None, None) => return Err(Error::arg("a model needs a discriminator, a generator, or both")),
            (Some(d), None) => Towers::Discriminator(register_disc(&mut params, d)?),
            (None, Some(g)) => Towers::Generator(register_gen(&mut params, g, None)?),
            (Some(d), Some(g)) => {
                let disc = register_disc(&mut params, d)?;
                if share_embeddings {
                    let dc = &disc.config;
                    let same = dc.vocab_size == g.vocab_size
                        && dc.embedding_size == g.embedding_size
                        && dc.max_position_embeddings == g.max_position_embeddings
                        && dc.type_vocab_size == g.type_vocab_size
                        && dc.pad_token_id == g.pad_token_id;
                    if !same {
                        return Err(Error::Config(
                            "shared embeddings need equal vocab_size, embedding_size, max_position_embeddings, \
                             type_vocab_size and pad_token_id in generator and discriminator"
                                .into(),
                        ));
                    }
                }
                let gen = register_gen(&mut params, g, share_embeddings.then_some(&disc))?;
                Towers::Pair { disc, gen, shared_embeddings: share_embeddings }
            }
        };
        Ok(Self::from_towers(params, towers))
    }

    /// A zero-filled sequence classifier (HF `ElectraForSequenceClassification`); `cfg` says the
    /// number of labels through `id2label` (see [`classifier::set_labels`]).
    pub fn new_classifier(cfg: ElectraConfig) -> Result<Self> {
        cfg.validate()?;
        let num_labels = classifier::num_labels(&cfg)?;
        let mut params = ParamStore::new();
        reserve(&mut params, &[&cfg])?;
        let mut names = Vec::new();
        let mut reg = Registrar { store: &mut params, scope: "classifier", names: &mut names };
        let encoder = Encoder::register(&mut reg, &cfg, None)?;
        let head = classifier::ClsHead::register(&mut reg, cfg.hidden_size, num_labels, cfg.classifier_pooling()?);
        let cls = Classifier { config: cfg, encoder, head, num_labels, names };
        Ok(Self::from_towers(params, Towers::Classifier(cls)))
    }

    /// A model from its parts: `towers` must have been registered into a store with `params`'
    /// layout (as a trainer's snapshot is).
    pub fn from_parts(params: ParamStore, towers: Towers) -> Self {
        Self::from_towers(params, towers)
    }

    /// The discriminator, if there is one.
    pub fn disc(&self) -> Option<&Discriminator> {
        self.towers.disc()
    }

    /// The generator, if there is one.
    pub fn gen(&self) -> Option<&Generator> {
        self.towers.gen()
    }

    /// The classifier, if this is one.
    pub fn cls(&self) -> Option<&Classifier> {
        self.towers.cls()
    }

    /// Whether the generator reads the discriminator's embedding tables.
    pub fn shared_embeddings(&self) -> bool {
        self.towers.shared_embeddings()
    }

    /// Every encoder tower.
    pub fn encoders(&self) -> impl Iterator<Item = &Encoder> + '_ {
        self.towers.encoders()
    }

    /// HF-style random initialisation from `seed`: normal(0, initializer_range) for Linear and
    /// embedding weights, zero biases, LayerNorm 1/0, and a zero [PAD] row in the word table.
    pub fn init_weights(&mut self, seed: u64) -> Result<()> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let cfg = self.input_config();
        let (std, pad) = (cfg.initializer_range, cfg.pad_token_id);
        let normal = Normal::new(0.0f32, std)
            .map_err(|e| Error::Config(format!("initializer_range {std} is not a valid standard deviation: {e}")))?;
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
        Ok(())
    }

    /// The config that describes the model's inputs (the discriminator's, else the generator's).
    pub fn input_config(&self) -> &ElectraConfig {
        self.towers.input_config()
    }

    /// The weights in `be`'s inference form, built on the first call for `be`'s device and kept:
    /// call it only on a model whose weights no longer change (sessions hold theirs in an `Arc`).
    pub fn prepared(&self, be: &dyn Backend) -> Result<Arc<Prepared>> {
        let mut cache = self.prepared.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, p)) = cache.iter().find(|(d, _)| *d == be.device()) {
            return Ok(p.clone());
        }
        let mut linears = self.towers.inference_linears();
        if self.quant.is_some() {
            // The generator's output projection too: the int8 word table when tied.
            linears.extend(self.gen().map(|g| g.head.lm()));
        }
        let weights = InferenceWeights { flat: self.params.values(), linears, int8: self.quant.clone() };
        let p = Arc::new(be.prepare(&weights)?);
        cache.push((be.device(), p.clone()));
        Ok(p)
    }

    /// Refuses what needs the f32 Linear weights (training, fine-tuning, export to an f32
    /// checkpoint) on an int8-quantized model, with a message saying why; `what` names the call.
    pub fn require_f32(&self, what: &str) -> Result<()> {
        match &self.quant {
            None => Ok(()),
            Some(_) => Err(Error::Unsupported(format!(
                "{what} needs the f32 weights, but this model is int8-quantized (its Linear weights are int8 with \
                 per-channel scales, for inference only): load the original f32 model instead"
            ))),
        }
    }

    /// Number of distinct scalars.
    pub fn num_parameters(&self) -> usize {
        self.params.numel()
    }
}
