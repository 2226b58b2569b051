//! The hybrid objective's extra head: a masked-LM head on the discriminator (option
//! `disc_mlm_weight`), which predicts the original token at every masked position from the
//! discriminator's final states over the *corrupted* input (COCO-LM's corrective LM at the
//! masked positions; the MLM half of the GPT-BERT-style mixes that won BabyLM 2024).
//!
//! Why: at small scale replaced-token detection is learnt as one scalar ("how unexpected is this
//! token") and the discriminator's states collapse onto that direction (docs/REPLICATION.md), so
//! they fine-tune worse than random weights; a token-identity loss on the same states keeps them
//! spread, as the masked LM's are.
//!
//! The head has the generator head's shape (dense H→E, GELU, LayerNorm(E), output tied to the
//! discriminator's word embeddings plus its own bias). Its tensors live in the trainer's
//! parameter table under `discriminator_mlm.*`, so they are trained, clipped and checkpointed
//! with the rest, but no tower lists them: the exported discriminator is plain
//! `ElectraForPreTraining`, loadable by HF unchanged. A run started from an exported model
//! starts the head afresh.

use crate::error::{Error, Result};
use crate::layers::{LayerNorm, Linear};
use crate::model::heads::GenHead;
use crate::model::{Model, Towers};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

/// Prefix of the head's tensors in the trainer's table.
pub const PREFIX: &str = "discriminator_mlm";

/// The discriminator's masked-LM head of a pre-training pair, its tensors added to `model` (and
/// initialised as HF initialises the generator's head, from `seed`) unless already there.
pub fn attach(model: &mut Model, seed: u64) -> Result<GenHead> {
    let Towers::Pair { disc, .. } = &model.towers else {
        return Err(Error::arg(
            "options: disc_mlm_weight needs the electra objective (a generator and a discriminator)",
        ));
    };
    let cfg = &disc.config;
    let (h, e, v) = (cfg.hidden_size, cfg.embedding_size, cfg.vocab_size);
    let (std, eps, word) = (cfg.initializer_range, cfg.layer_norm_eps, disc.encoder.emb.word);
    // The tied output's id, from the tower's HF names (as the generator's head finds it).
    let word_id = crate::model::hf_id(&disc.names, "electra.embeddings.word_embeddings.weight", "discriminator")?;
    let store = &mut model.params;
    let (dense_w, fresh_w) = super::head_tensor(store, PREFIX, "dense.weight", &[e, h])?;
    let (dense_b, _) = super::head_tensor(store, PREFIX, "dense.bias", &[e])?;
    let (ln_g, fresh_g) = super::head_tensor(store, PREFIX, "LayerNorm.weight", &[e])?;
    let (ln_b, _) = super::head_tensor(store, PREFIX, "LayerNorm.bias", &[e])?;
    let (lm_b, _) = super::head_tensor(store, PREFIX, "bias", &[v])?;
    // Biases and the LayerNorm shift start at zero, as `add` leaves them.
    if fresh_w {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        // A stream of its own: the model's initialisation (stream 0) is unchanged by the option.
        rng.set_stream(0x6d6c_6d68);
        let normal = Normal::new(0.0f32, std)
            .map_err(|e| Error::Config(format!("initializer_range {std} is not a valid standard deviation: {e}")))?;
        for x in store.get_mut(dense_w) {
            *x = normal.sample(&mut rng);
        }
    }
    if fresh_g {
        store.get_mut(ln_g).fill(1.0);
    }
    Ok(GenHead {
        dense: Linear { w: store.span(dense_w), b: store.span(dense_b), din: h, dout: e },
        ln: LayerNorm { g: store.span(ln_g), b: store.span(ln_b), dim: e, eps },
        lm_w: word,
        lm_w_id: word_id,
        lm_b: store.span(lm_b),
        vocab: v,
    })
}
