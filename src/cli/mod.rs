//! The `electra` command line: each subcommand's work, callable from Rust too.

pub mod bench;
pub mod finetune;
pub mod infer;
pub mod plot;
pub mod pretrain;
