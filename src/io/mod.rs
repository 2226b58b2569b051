//! Files: bounded reads, safetensors tensors, crash-safe writes and the save contract. The HF
//! model directory format built on them is [`crate::hf`].

pub mod atomic;
pub mod read;
pub mod safetensors;
