//! # electra
//!
//! ELECTRA text encoders (Clark et al., 2020): the generator (a small masked LM) and the
//! discriminator (replaced-token detection), with HuggingFace `transformers` as the numeric
//! reference and checkpoint format, and a stable C ABI (`include/electra.h`).
//!
//! Shape letters used throughout: B batch, T sequence length, N = B·T tokens, E embedding
//! width, H hidden width, NH attention heads, HD = H/NH head width, I feed-forward width,
//! V vocabulary, L layers.
//!
//! The model, the pre-training step, the fine-tuning step and inference are written once over
//! the compute seam in [`backend`] (one trait, [`backend::Backend`]); the CPU backend is the
//! reference and CUDA plugs in behind the `cuda` feature. docs/ARCHITECTURE.md draws the data
//! path from text to a C handle.
//!
//! ```no_run
//! use electra::{hf, session::{Batch, Session}};
//! use std::sync::Arc;
//! let model = Arc::new(hf::load("model_dir".as_ref())?);
//! let mut s = Session::new(model)?;
//! let ids = [101, 2023, 2003, 102];
//! let logits = s.discriminate_array(&Batch::new(&ids, 1, 4))?;
//! # Ok::<(), electra::Error>(())
//! ```

#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod alloc;
pub mod backend;
pub mod batch;
pub mod config;
pub mod data;
pub mod distributed;
pub mod error;
pub mod ffi;
pub mod finetune;
pub mod hf;
pub mod io;
/// cbindgen:ignore
#[cfg(feature = "jni")]
mod jni;
/// cbindgen:ignore
pub mod layers;
pub mod limits;
pub mod model;
pub mod optim;
pub mod options;
pub(crate) mod panic;
pub mod params;
pub mod pretrain;
/// cbindgen:ignore
pub mod quant;
pub mod session;
/// cbindgen:ignore
pub mod text;

pub use backend::{Backend, Device};
pub use batch::Batch;
pub use config::{ElectraConfig, Pooling, RtdHead};
pub use error::{Error, Result};
pub use model::Model;
pub use session::{Session, SessionOptions};
