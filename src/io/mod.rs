//! Files: safetensors tensors, HF model directories and the pair layout, crash-safe writes.

pub mod atomic;
pub mod hf;
pub mod read;
pub mod safetensors;
