//! `electra bench`: median step or call time, tokens/s, GFLOP/s and peak RSS for the training
//! step and discriminator inference, like llama-bench.

use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::pretrain::{TrainOptions, Trainer};
use crate::session::{Batch, Session};
use std::sync::Arc;
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchArgs {
    /// "train" or "infer".
    pub what: String,
    /// Model preset.
    pub preset: String,
    /// B.
    pub batch_size: usize,
    /// T.
    pub seq_len: usize,
    /// Worker threads (0: all cores).
    pub threads: usize,
    /// Timed repetitions after one warm-up.
    pub reps: usize,
    /// Print one JSON object instead of a table.
    pub json: bool,
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Matrix-product FLOPs of one encoder forward over `n` tokens of `t`-long rows.
pub fn encoder_flops(cfg: &ElectraConfig, n: usize, t: usize) -> f64 {
    let (h, i, e) = (cfg.hidden_size as f64, cfg.intermediate_size as f64, cfg.embedding_size as f64);
    let n = n as f64;
    let per_layer = 2.0 * n * (4.0 * h * h + 2.0 * h * i) + 4.0 * n * t as f64 * h;
    let proj = if cfg.embedding_size != cfg.hidden_size { 2.0 * n * e * h } else { 0.0 };
    per_layer * cfg.num_hidden_layers as f64 + proj
}

fn random_ids(vocab: usize, n: usize, seed: u64) -> Vec<i32> {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (5 + (x >> 33) as usize % (vocab - 5)) as i32
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("finite times"));
    v[v.len() / 2]
}

/// Runs the benchmark and prints the result.
pub fn run(a: &BenchArgs) -> Result<()> {
    let (b, t) = (a.batch_size, a.seq_len);
    let n = b * t;
    let cfg = ElectraConfig::preset(&a.preset)?;
    let ids = random_ids(cfg.vocab_size, n, 7);
    let batch = Batch::new(&ids, b, t);
    let mut times = Vec::new();
    let (flops, extra) = match a.what.as_str() {
        "train" => {
            let opts = TrainOptions { max_seq_len: t, threads: a.threads, warmup_steps: 0, ..Default::default() };
            let mut tr = Trainer::new(&a.preset, opts)?;
            let mut masked = 0;
            for rep in 0..=a.reps {
                let t0 = Instant::now();
                let s = tr.train_step(&batch)?;
                if rep > 0 {
                    times.push(t0.elapsed().as_secs_f64());
                }
                masked = (s.tokens as f64 * 0.15).round() as usize;
            }
            let d = &tr.model.disc.as_ref().expect("electra objective").config;
            let g = &tr.model.gen.as_ref().expect("electra objective").config;
            let fwd = encoder_flops(d, n, t)
                + encoder_flops(g, n, t)
                + 2.0 * n as f64 * (d.hidden_size * d.hidden_size) as f64
                + 2.0 * masked as f64 * (g.hidden_size * g.embedding_size + g.embedding_size * g.vocab_size) as f64;
            (
                3.0 * fwd,
                format!("disc {}x{} gen {}x{}", d.num_hidden_layers, d.hidden_size, g.num_hidden_layers, g.hidden_size),
            )
        }
        "infer" => {
            let mut m = Model::new(Some(cfg.clone()), None, false)?;
            m.init_weights(1);
            let mut s = Session::with_threads(Arc::new(m), a.threads)?;
            let mut out = vec![0.0; n];
            for rep in 0..=a.reps {
                let t0 = Instant::now();
                s.discriminate(&batch, &mut out)?;
                if rep > 0 {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
            (encoder_flops(&cfg, n, t) + 2.0 * n as f64 * (cfg.hidden_size * cfg.hidden_size) as f64, String::new())
        }
        other => return Err(Error::arg(format!("bench: unknown workload {other:?} (train or infer)"))),
    };
    let med = median(times);
    let rss = peak_rss_bytes().unwrap_or(0);
    let tokens_per_s = n as f64 / med;
    let gflops = flops / med / 1e9;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "workload": a.what, "preset": a.preset, "batch_size": b, "seq_len": t, "threads": a.threads,
                "median_seconds": med, "tokens_per_second": tokens_per_s, "gflops": gflops,
                "peak_rss_bytes": rss, "reps": a.reps,
            })
        );
    } else {
        println!("| workload | preset | batch x seq | threads | median s | tokens/s | GFLOP/s | peak RSS MiB |");
        println!("|---|---|---|---|---|---|---|---|");
        println!(
            "| {} {} | {} | {}x{} | {} | {:.4} | {:.0} | {:.1} | {:.0} |",
            a.what,
            extra,
            a.preset,
            b,
            t,
            a.threads,
            med,
            tokens_per_s,
            gflops,
            rss as f64 / 1048576.0
        );
    }
    Ok(())
}
