//! Inference latency of an electra-small discriminator (random weights) on the CPU backend:
//! median time per `Session::discriminate` call, tokens/s and GFLOP/s, for batch 1 x 128 and
//! batch 32 x 128, after a warm-up.
//!
//!   cargo bench --bench infer
//!   ELECTRA_BENCH_REPS=20 RAYON_NUM_THREADS=1 cargo bench --bench infer
//!
//! `electra bench infer` measures one configuration from the command line; this bench is the
//! fixed table to compare commits by.

use electra::pretrain::flops::encoder_flops;
use electra::session::{Batch, Session};
use electra::{ElectraConfig, Model};
use std::sync::Arc;
use std::time::Instant;

const SEQ_LEN: usize = 128;
const BATCHES: [usize; 2] = [1, 32];
const WARMUP: usize = 2;

fn main() -> electra::Result<()> {
    let reps: usize = std::env::var("ELECTRA_BENCH_REPS").ok().and_then(|s| s.parse().ok()).unwrap_or(7).max(1);
    let cfg = ElectraConfig::preset("small")?;
    let mut model = Model::new(Some(cfg.clone()), None, false)?;
    model.init_weights(0).unwrap();
    let params = model.num_parameters();
    let mut session = Session::new(Arc::new(model)).unwrap();

    println!(
        "electra-small discriminator ({} layers, hidden {}, {:.1}M parameters), random weights, {} threads, \
         median of {reps} after {WARMUP} warm-up calls",
        cfg.num_hidden_layers,
        cfg.hidden_size,
        params as f64 / 1e6,
        session.threads()
    );
    println!("| batch x seq_len | median ms | min ms | max ms | tokens/s | GFLOP/s |");
    println!("|---|---|---|---|---|---|");
    for b in BATCHES {
        let n = b * SEQ_LEN;
        // Deterministic ids in [5, vocab): no special tokens, all in range.
        let ids: Vec<i32> = (0..n).map(|i| (5 + (i * 7919 + 13) % (cfg.vocab_size - 5)) as i32).collect();
        let batch = Batch::new(&ids, b, SEQ_LEN);
        let mut out = vec![0.0f32; n];
        let mut times = Vec::with_capacity(reps);
        for rep in 0..WARMUP + reps {
            let t0 = Instant::now();
            session.discriminate(&batch, &mut out)?;
            let dt = t0.elapsed().as_secs_f64();
            if rep >= WARMUP {
                times.push(dt);
            }
        }
        assert!(out.iter().all(|x| x.is_finite()), "non-finite logits");
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        // The encoder plus the discriminator head's dense layer (H x H per token).
        let flops = encoder_flops(&cfg, n, SEQ_LEN) + 2.0 * n as f64 * (cfg.hidden_size * cfg.hidden_size) as f64;
        println!(
            "| {b} x {SEQ_LEN} | {:.2} | {:.2} | {:.2} | {:.0} | {:.1} |",
            median * 1e3,
            times[0] * 1e3,
            times[times.len() - 1] * 1e3,
            n as f64 / median,
            flops / median / 1e9
        );
    }
    Ok(())
}
