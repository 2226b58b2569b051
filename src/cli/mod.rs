//! The `electra` command line: each subcommand's work, callable from Rust too.

pub mod bench;
pub mod plot;
