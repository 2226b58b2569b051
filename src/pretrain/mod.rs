//! ELECTRA pre-training: options, dynamic masking and sampling, the joint objective's step,
//! and resumable trainer checkpoints.

pub mod checkpoint;
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
