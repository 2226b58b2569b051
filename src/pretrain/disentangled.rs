//! Gradient-disentangled embedding sharing (DeBERTa-V3, option `embedding_sharing:
//! "disentangled"`): the discriminator's embedding tables are `E_D = sg(E_G) + E_Δ`. The
//! generator's tables `E_G` learn from the masked-LM loss alone; replaced-token detection's
//! gradient reaches only the delta `E_Δ` (zero at the start), so the two losses no longer pull
//! one table two ways (the "tug of war" of full sharing), while the discriminator still starts
//! from, and keeps up with, what the generator learns.
//!
//! The pair is built unshared: each tower has its own word, position and type tables (and
//! embedding LayerNorm, which stays the discriminator's own). `E_D` lives in the discriminator's
//! tensors, which the towers read and export: it is derived, never stepped by AdamW (learning
//! rate 0). The deltas are trainer-only tensors under `discriminator_delta.*` (trained, clipped,
//! checkpointed, not exported). Each update moves `E_D`'s gradient onto `E_Δ` before AdamW and
//! refolds `E_D = E_G + E_Δ` after it, both with [`Backend::combine_spans`], so every backend runs
//! it. The exported discriminator holds the folded tables: plain HF `ElectraForPreTraining`.

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::model::{hf_id, Model, Towers};
use crate::params::{ParamId, ParamStore, Span};

/// Prefix of the deltas in the trainer's table.
pub const PREFIX: &str = "discriminator_delta";

/// The tables that are disentangled: what full sharing shares, less the embedding LayerNorm.
const TABLES: [&str; 3] = [
    "electra.embeddings.word_embeddings.weight",
    "electra.embeddings.position_embeddings.weight",
    "electra.embeddings.token_type_embeddings.weight",
];

/// One disentangled table: the discriminator's (derived), the generator's, and the delta.
#[derive(Clone, Copy, Debug)]
struct Tie {
    disc: Span,
    gen: Span,
    delta: Span,
}

/// The disentangled tables of a trainer.
#[derive(Clone, Debug)]
pub struct Ties(Vec<Tie>);

/// Each table's (discriminator's id, generator's id, HF name) in a pair.
fn tables(model: &Model) -> Result<Vec<(ParamId, ParamId, &'static str)>> {
    let Towers::Pair { disc, gen, .. } = &model.towers else {
        return Err(Error::Internal("disentangled sharing needs a pair".into()));
    };
    TABLES
        .iter()
        .map(|&hf| Ok((hf_id(&disc.names, hf, "discriminator")?, hf_id(&gen.names, hf, "generator")?, hf)))
        .collect()
}

/// Ties the discriminator's tables of an unshared pair to the generator's, adding each delta to
/// `model` unless there already (a checkpoint's), as `E_Δ = E_D − E_G` (so the discriminator's
/// tables are unchanged: zero for a new pair, whose tables start equal, see
/// [`start_equal`]); the discriminator's tables get learning rate 0 and no decay.
pub fn attach(model: &mut Model) -> Result<Ties> {
    let Towers::Pair { shared_embeddings, .. } = &model.towers else {
        return Err(Error::arg(
            "options: embedding_sharing \"disentangled\" needs the electra objective (a generator and a discriminator)",
        ));
    };
    if *shared_embeddings {
        return Err(Error::arg(
            "options: embedding_sharing \"disentangled\", but the model's generator shares the discriminator's \
             embeddings (a disentangled pair is built with separate tables)",
        ));
    }
    let pairs = tables(model)?;
    let store = &mut model.params;
    let mut ties = Vec::new();
    for (d, g, hf) in pairs {
        let shape = store.info(d).shape.clone();
        if store.info(g).shape != shape {
            return Err(Error::Config(format!(
                "embedding_sharing \"disentangled\": the generator's {hf} has shape {:?}, the discriminator's {shape:?}",
                store.info(g).shape
            )));
        }
        let (delta, fresh) = super::head_tensor(store, PREFIX, hf, &shape)?;
        if fresh {
            let diff: Vec<f32> = store.get(d).iter().zip(store.get(g)).map(|(x, y)| x - y).collect();
            store.get_mut(delta).copy_from_slice(&diff);
        }
        let info = store.info_mut(d);
        info.lr_scale = 0.0;
        info.decay = false;
        ties.push(Tie { disc: store.span(d), gen: store.span(g), delta: store.span(delta) });
    }
    Ok(Ties(ties))
}

/// A new disentangled pair starts from equal tables (`E_Δ = 0`): the generator's take the
/// discriminator's values (fresh, or a pre-trained discriminator's).
pub fn start_equal(model: &mut Model) -> Result<()> {
    let pairs = tables(model)?;
    let store: &mut ParamStore = &mut model.params;
    for (d, g, _) in pairs {
        let values = store.get(d).to_vec();
        store.get_mut(g).copy_from_slice(&values);
    }
    Ok(())
}

impl Ties {
    /// Before the update: each table's gradient becomes its delta's, and the table's is zeroed
    /// (it is not a parameter of its own; the global norm counts the gradient once).
    pub fn move_grads(&self, be: &dyn Backend, grads: &mut crate::backend::Buf) -> Result<()> {
        for t in &self.0 {
            be.combine_spans(grads, t.delta, Some(t.disc), None)?;
            be.combine_spans(grads, t.disc, None, None)?;
        }
        Ok(())
    }

    /// After the update: `E_D = E_G + E_Δ`.
    pub fn refold(&self, be: &dyn Backend, weights: &mut crate::backend::Buf) -> Result<()> {
        for t in &self.0 {
            be.combine_spans(weights, t.disc, Some(t.gen), Some(t.delta))?;
        }
        Ok(())
    }
}
