//! `electra`: pre-train, inspect and benchmark ELECTRA models from the shell.

use clap::{Parser, Subcommand};
use electra::cli;

#[derive(Parser)]
#[command(name = "electra", version, about = "Pre-train, fine-tune and run ELECTRA text encoders")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Time a training step or discriminator inference (median, tokens/s, GFLOP/s, peak RSS).
    Bench {
        /// `train` or `infer`.
        what: String,
        /// Model preset: tiny, small, base or large.
        #[arg(long, default_value = "small")]
        preset: String,
        /// Sequences per batch.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Tokens per sequence.
        #[arg(long, default_value_t = 128)]
        seq_len: usize,
        /// Worker threads (0: one per core).
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Timed repetitions after one warm-up.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
}

fn main() {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Bench { what, preset, batch_size, seq_len, threads, reps, json } => {
            cli::bench::run(&cli::bench::BenchArgs { what, preset, batch_size, seq_len, threads, reps, json })
        }
    };
    if let Err(e) = r {
        eprintln!("electra: {e}");
        std::process::exit(1);
    }
}
