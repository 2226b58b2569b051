//! ELECTRA pre-training: options, dynamic masking and sampling, the joint objective's step,
//! and resumable trainer checkpoints.

pub mod checkpoint;
pub mod contrast;
mod corrupt;
pub mod disentangled;
pub mod eval;
pub mod flops;
pub mod hybrid;
pub mod masking;
pub mod options;
pub mod probe;
pub mod trainer;

pub use checkpoint::ResumeOptions;
pub use options::{Distributed, EmbeddingSharing, Objective, TrainOptions};
pub use trainer::{StepStats, Trainer};

/// A pre-training head's tensor `{prefix}.{name}`, found when `store` already holds it (a
/// resumed or re-wrapped trainer's snapshot), else added; a found one must have `shape`. The
/// flag says whether it is new.
fn head_tensor(
    store: &mut crate::params::ParamStore,
    prefix: &str,
    name: &str,
    shape: &[usize],
) -> crate::error::Result<(crate::params::ParamId, bool)> {
    let name = format!("{prefix}.{name}");
    match store.id(&name) {
        Some(id) if store.infos()[id.0].shape == shape => Ok((id, false)),
        Some(id) => Err(crate::error::Error::arg(format!(
            "{name} has shape {:?} where this model needs {shape:?}",
            store.infos()[id.0].shape
        ))),
        None => Ok((store.add(name, shape), true)),
    }
}
