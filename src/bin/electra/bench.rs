//! `electra bench`: median step or call time, tokens/s, GFLOP/s and peak RSS for the training
//! step and discriminator inference, like llama-bench.

use electra::config::ElectraConfig;
use electra::error::{Error, Result};
use electra::hf;
use electra::model::Model;
use electra::pretrain::flops::{encoder_flops, train_step_flops};
use electra::pretrain::{TrainOptions, Trainer};
use electra::quant::WeightFormat;
use electra::session::{Batch, Session, SessionOptions};
use electra::Device;
use std::sync::Arc;
use std::time::Instant;

/// What to measure.
#[derive(Clone, Debug)]
pub struct BenchArgs {
    /// "train" (a pre-training step), "finetune" (a step of `ElectraForSequenceClassification`,
    /// two labels, [CLS] head), "infer" or "gemm" (the matrix products of one pre-training step,
    /// alone).
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
    /// Where to run.
    pub device: Device,
    /// Cap on the CPU kernels.
    pub simd: Option<electra::backend::Simd>,
    /// `infer`: the weights' format (int8: quantized after loading or creating the model).
    pub quantize: WeightFormat,
    /// `infer`: a model directory to time instead of a fresh preset model.
    pub model: Option<std::path::PathBuf>,
    /// `infer`: write the fresh preset model here first.
    pub save_model: Option<std::path::PathBuf>,
    /// CUDA: TF32 tensor-core matrix products (else as `ELECTRA_CUDA_TF32` says).
    pub tf32: bool,
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), if known.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
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

/// Bytes of a model's weights as stored: f32 everywhere, or int8 + scales for its quantized
/// Linear weights.
fn weight_bytes(m: &Model) -> u64 {
    let q = m.quant.as_ref().map_or(0, |q| q.iter().map(|(_, w)| w.q.len()).sum::<usize>());
    let int8 = m.quant.as_ref().map_or(0, |q| q.bytes());
    ((m.params.numel() - q) * 4 + int8) as u64
}

/// Runs the benchmark and prints the result.
pub fn run(a: &BenchArgs) -> Result<()> {
    // The flag, else the environment override: what the backend below opens with.
    let tf32_opt = a.tf32.then_some(true);
    let tf32 = electra::backend::BackendOptions { simd: a.simd, tf32: tf32_opt, ..Default::default() }.resolve()?.tf32;
    let (b, t) = (a.batch_size, a.seq_len);
    // A model directory's own config, else the preset's.
    let loaded = match (&a.model, a.what.as_str()) {
        (Some(dir), "infer") => {
            Some(hf::load_with(dir, &hf::LoadOptions { quantize: a.quantize, ..Default::default() })?)
        }
        (Some(_), _) => return Err(Error::arg("bench: --model is for the infer workload")),
        (None, _) => None,
    };
    // What loading the directory cost, before any session: the first call adds the inference
    // copy of the weights (packed for the CPU kernels, or on the GPU), counted in `peak_rss_bytes`.
    let load_rss = loaded.as_ref().and_then(|_| peak_rss_bytes());
    let cfg = match &loaded {
        Some(m) => m.disc().map(|d| d.config.clone()).ok_or_else(|| {
            Error::Unsupported("bench infer times the discriminator: the model directory has none".into())
        })?,
        None => ElectraConfig::preset(&a.preset)?,
    };
    // Before the batch is allocated: sizes the machine cannot hold are an error, not an abort.
    let frac = ElectraConfig::paper_generator_fraction(&a.preset);
    super::pretrain::check_step_size(&cfg, electra::pretrain::Objective::Electra, frac, b, t)?;
    let n = b * t;
    let ids = random_ids(cfg.vocab_size, n, 7);
    let batch = Batch::new(&ids, b, t);
    let mut times = Vec::new();
    let mut model_bytes = 0u64;
    let mut format = WeightFormat::F32;
    if !matches!(a.what.as_str(), "infer" | "gemm") && a.quantize == WeightFormat::Int8 {
        return Err(Error::arg(
            "bench: --quantize int8 is for the infer and gemm workloads (training needs f32 weights)",
        ));
    }
    let (flops, extra) = match a.what.as_str() {
        "train" => {
            let opts = TrainOptions {
                max_seq_len: t,
                threads: a.threads,
                warmup_steps: 0,
                device: a.device,
                simd: a.simd,
                tf32: tf32_opt,
                ..Default::default()
            };
            let mut tr = Trainer::new(&a.preset, opts)?;
            let mut masked = 0;
            for rep in 0..=a.reps {
                let t0 = Instant::now();
                let s = tr.train_step(&batch)?;
                if rep > 0 {
                    times.push(t0.elapsed().as_secs_f64());
                }
                masked = s.masked;
            }
            let towers = tr.towers();
            let (Some(d), Some(g)) = (towers.disc(), towers.gen()) else {
                return Err(Error::Internal("a preset trainer holds a generator and a discriminator".into()));
            };
            let (d, g) = (&d.config, &g.config);
            (
                train_step_flops(towers, n, t, masked),
                format!("disc {}x{} gen {}x{}", d.num_hidden_layers, d.hidden_size, g.num_hidden_layers, g.hidden_size),
            )
        }
        "finetune" => {
            let mut c = cfg.clone();
            electra::model::classifier::set_labels(&mut c, &["neg".into(), "pos".into()]);
            let mut m = Model::new_classifier(c)?;
            m.init_weights(1)?;
            let opts = electra::finetune::FinetuneOptions {
                threads: a.threads,
                device: a.device,
                simd: a.simd,
                tf32: tf32_opt,
                ..Default::default()
            };
            let mut ft = electra::finetune::FineTuner::from_model(m, opts)?;
            let labels: Vec<i32> = (0..b as i32).map(|i| i % 2).collect();
            for rep in 0..=a.reps {
                let t0 = Instant::now();
                ft.train_step(&batch, &labels)?;
                if rep > 0 {
                    times.push(t0.elapsed().as_secs_f64());
                }
            }
            // Forward and a backward of twice its cost: the encoder, and the head on B rows.
            let head = 2.0 * b as f64 * (cfg.hidden_size * (cfg.hidden_size + 2)) as f64;
            (3.0 * (encoder_flops(&cfg, n, t) + head), String::new())
        }
        "infer" => {
            let m = match loaded {
                Some(m) => {
                    model_bytes = a.model.as_deref().map_or(0, super::infer::weights_bytes);
                    m
                }
                None => {
                    let mut m = Model::new(Some(cfg.clone()), None, false)?;
                    m.init_weights(1)?;
                    if let Some(dir) = &a.save_model {
                        hf::save(&m, dir)?;
                    }
                    let m = if a.quantize == WeightFormat::Int8 { electra::quant::quantize(&m)? } else { m };
                    model_bytes = weight_bytes(&m);
                    m
                }
            };
            format = electra::quant::format_of(&m);
            let mut s = Session::with_options(
                Arc::new(m),
                &SessionOptions {
                    device: a.device,
                    threads: a.threads,
                    simd: a.simd,
                    tf32: tf32_opt,
                    ..Default::default()
                },
            )?;
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
        "gemm" if a.quantize == WeightFormat::Int8 => return bench_gemm_int8(a),
        "gemm" => return bench_gemm(a),
        other => return Err(Error::arg(format!("bench: unknown workload {other:?} (train, finetune, infer or gemm)"))),
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
                "device": a.device, "tf32": tf32,
                "median_seconds": med, "tokens_per_second": tokens_per_s, "gflops": gflops,
                "peak_rss_bytes": rss, "reps": a.reps,
                "quantize": format,
                "model_bytes": model_bytes,
                "load_peak_rss_bytes": load_rss,
            })
        );
    } else {
        println!(
            "| workload | preset | batch x seq | device | threads | median s | tokens/s | GFLOP/s | peak RSS MiB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {} {} | {} | {}x{} | {}{} | {} | {:.4} | {:.0} | {:.1} | {:.0} |",
            a.what,
            extra,
            a.preset,
            b,
            t,
            a.device,
            if tf32 { " (tf32)" } else { "" },
            a.threads,
            med,
            tokens_per_s,
            gflops,
            rss as f64 / 1048576.0
        );
        if let Some(r) = load_rss {
            println!(
                "\nloading the model: peak RSS {:.0} MiB (weights as stored: {:.0} MiB), before the first call",
                r as f64 / 1048576.0,
                model_bytes as f64 / 1048576.0
            );
        }
    }
    Ok(())
}

/// The matrix products of one ELECTRA training step for the preset (discriminator and paper-size
/// generator): each Linear's forward `x·Wᵀ`, input gradient `dy·W` and weight gradient `dyᵀ·x`,
/// and the attention products per (batch row, head): (name, m, k, n, count per step, kind).
type Product = (String, usize, usize, usize, usize, &'static str);

fn step_products(a: &BenchArgs) -> Result<Vec<Product>> {
    let (b, t) = (a.batch_size, a.seq_len);
    let n = b * t;
    let d = ElectraConfig::preset(&a.preset)?;
    let g = d.generator_config(ElectraConfig::paper_generator_fraction(&a.preset))?;
    let masked = (n as f64 * 0.15).round() as usize;
    let mut out = Vec::new();
    let mut linear = |name: &str, rows: usize, din: usize, dout: usize, count: usize| {
        out.push((format!("{name} fwd"), rows, din, dout, count, "x·Wt"));
        out.push((format!("{name} dx"), rows, dout, din, count, "dy·W"));
        out.push((format!("{name} dW"), dout, rows, din, count, "dyt·x"));
    };
    for (tag, c) in [("disc", &d), ("gen", &g)] {
        let (h, i, l) = (c.hidden_size, c.intermediate_size, c.num_hidden_layers);
        linear(&format!("{tag} qkvo {n}x{h}x{h}"), n, h, h, 4 * l);
        linear(&format!("{tag} ff1 {n}x{h}x{i}"), n, h, i, l);
        linear(&format!("{tag} ff2 {n}x{i}x{h}"), n, i, h, l);
        if c.embedding_size != h {
            linear(&format!("{tag} proj {n}x{}x{h}", c.embedding_size), n, c.embedding_size, h, 1);
        }
    }
    linear(&format!("disc head {n}x{0}x{0}", d.hidden_size), n, d.hidden_size, d.hidden_size, 1);
    linear(
        &format!("gen head {masked}x{}x{}", g.hidden_size, g.embedding_size),
        masked,
        g.hidden_size,
        g.embedding_size,
        1,
    );
    linear(&format!("lm {masked}x{}x{}", g.embedding_size, g.vocab_size), masked, g.embedding_size, g.vocab_size, 1);
    for (tag, c) in [("disc", &d), ("gen", &g)] {
        let hd = c.hidden_size / c.num_attention_heads;
        let heads = b * c.num_attention_heads * c.num_hidden_layers;
        // Forward: Q·Kᵀ and P·V; backward: dP, dV, dQ, dK (two of each shape).
        out.push((format!("{tag} attn {t}x{hd}x{t} (per head)"), t, hd, t, 2 * heads, "head"));
        out.push((format!("{tag} attn {t}x{t}x{hd} (per head)"), t, t, hd, 4 * heads, "head"));
    }
    Ok(out)
}

/// The best rate (operations per ns, i.e. G/s) of five runs of a probe that returns how many
/// operations it did: on a shared machine a single run often lands in a slow moment, and a peak
/// is the fastest the core sustains.
fn best_rate(mut probe: impl FnMut() -> f64) -> f64 {
    (0..5)
        .map(|_| {
            let t0 = Instant::now();
            let ops = probe();
            ops / t0.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// The product benchmarks' own pool of `threads` workers (0: one per core).
fn bench_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Internal(format!("thread pool: {e}")))
}

/// `len` deterministic operand values in [-1, 1], offset by `s`.
fn fill(len: usize, s: f32) -> Vec<f32> {
    (0..len).map(|i| ((i % 97) as f32 * 0.01 + s).sin()).collect()
}

fn bench_gemm(a: &BenchArgs) -> Result<()> {
    use electra::backend::cpu::matmul::{gemm, gemm_serial, Mat};
    use rayon::prelude::*;
    let pool = bench_pool(a.threads)?;
    let threads = pool.current_num_threads();
    // FMA peak of the pool: every worker runs the probe at once.
    let iters = 20_000_000;
    let peak = best_rate(|| {
        pool.broadcast(|_| std::hint::black_box(electra::backend::cpu::simd::fma_probe(iters)));
        (threads * iters * 384) as f64
    });
    let products = step_products(a)?;
    let (mut total_flops, mut total_time) = (0.0, 0.0);
    let mut rows = Vec::new();
    for (name, m, k, n, count, kind) in products {
        let flops = 2.0 * (m * k * n) as f64;
        let reps = ((2e9 / flops).ceil() as usize).clamp(3, 200);
        let secs = if kind == "head" {
            // One (batch row, head) per task, single-threaded products: as in attention.
            let tasks = count.min(256);
            let (x, y) = (fill(m * k, 0.1), fill(k * n, 0.2));
            let mut c = vec![0.0f32; tasks * m * n];
            let mut best = f64::MAX;
            for _ in 0..reps.min(20) {
                let t0 = Instant::now();
                pool.install(|| {
                    c.par_chunks_mut(m * n)
                        .for_each(|cb| gemm_serial(1.0, Mat::rows(&x, m, k), Mat::rows(&y, k, n), 0.0, cb, n, 1))
                });
                best = best.min(t0.elapsed().as_secs_f64() / tasks as f64);
            }
            best
        } else {
            let (x, y) = (fill(m * k, 0.1), fill(k * n, 0.2));
            let mut c = vec![0.0f32; m * n];
            // Operand layouts as in ops::matmul: W is [dout, din]; dyᵀ·x reads dy transposed.
            let (av, bv) = match kind {
                "x·Wt" => (Mat::rows(&x, m, k), Mat::rows(&y, n, k).t()),
                "dyt·x" => (Mat::rows(&x, k, m).t(), Mat::rows(&y, k, n)),
                _ => (Mat::rows(&x, m, k), Mat::rows(&y, k, n)),
            };
            let mut best = f64::MAX;
            for _ in 0..reps {
                let t0 = Instant::now();
                pool.install(|| gemm(1.0, av, bv, 0.0, &mut c, n, 1));
                best = best.min(t0.elapsed().as_secs_f64());
            }
            best
        };
        total_flops += flops * count as f64;
        total_time += secs * count as f64;
        rows.push((name, count, flops / secs / 1e9));
    }
    let overall = total_flops / total_time / 1e9;
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "workload": "gemm", "preset": a.preset, "batch_size": a.batch_size, "seq_len": a.seq_len,
                "device": "cpu", "threads": threads, "fma_peak_gflops": peak, "gflops": overall,
                "efficiency": overall / peak, "seconds_per_step": total_time, "gflop_per_step": total_flops / 1e9,
                "products": rows.iter().map(|(n, c, g)| serde_json::json!({"name": n, "count": c, "gflops": g})).collect::<Vec<_>>(),
            })
        );
    } else {
        println!("| product | per step | GFLOP/s |");
        println!("|---|---|---|");
        for (name, count, g) in &rows {
            println!("| {name} | {count} | {g:.1} |");
        }
        println!(
            "\n{:.1} GFLOP of products per step in {:.3} s (best of reps): {:.1} GFLOP/s = {:.0}% of the measured FMA peak {:.1} GFLOP/s ({} threads)",
            total_flops / 1e9,
            total_time,
            overall,
            100.0 * overall / peak,
            peak,
            threads
        );
    }
    Ok(())
}

/// The int8 Linear products of one discriminator forward for the preset at B×T rows (what
/// `--quantize int8` inference runs in int8: every encoder Linear, the embedding projection and
/// the head's dense), each timed as the backend runs it (rows quantized, then the packed int8
/// product, row blocks over the threads), against the int8 peak measured by
/// [`electra::backend::cpu::int8::peak_probe`] with the same kernel.
fn bench_gemm_int8(a: &BenchArgs) -> Result<()> {
    use electra::backend::cpu::int8::{self, I8Kernel, PackedI8, QuantRows};
    use electra::backend::cpu::kernels::CpuKernels;
    use rayon::prelude::*;
    let kernel = CpuKernels::best().with_cap(a.simd.unwrap_or_default()).i8;
    let ops_per_round = int8::probe_ops_per_round(kernel).ok_or_else(|| {
        Error::Unsupported(format!("bench gemm --int8: the {kernel:?} kernel has no dot-product instruction to probe"))
    })?;
    let pool = bench_pool(a.threads)?;
    let threads = pool.current_num_threads();
    let rounds = 20_000_000;
    let peak = best_rate(|| {
        pool.broadcast(|_| std::hint::black_box(int8::peak_probe(kernel, rounds)));
        (threads * rounds * ops_per_round) as f64
    });

    let d = ElectraConfig::preset(&a.preset)?;
    let n = a.batch_size * a.seq_len;
    let (h, i, e, l) = (d.hidden_size, d.intermediate_size, d.embedding_size, d.num_hidden_layers);
    let mut shapes = vec![(format!("qkvo {n}x{h}x{h}"), h, h, 4 * l), (format!("ff1 {n}x{h}x{i}"), h, i, l)];
    shapes.push((format!("ff2 {n}x{i}x{h}"), i, h, l));
    if e != h {
        shapes.push((format!("proj {n}x{e}x{h}"), e, h, 1));
    }
    shapes.push((format!("head {n}x{h}x{h}"), h, h, 1));
    let (mut total_ops, mut total_time) = (0.0, 0.0);
    let mut rows = Vec::new();
    for (name, din, dout, count) in shapes {
        let w = electra::layers::int8::quantize_weight(&fill(dout * din, 0.3), dout, din)?;
        let packed = PackedI8::with_kernel(&w, kernel)?;
        let x = fill(n * din, 0.1);
        let mut y = vec![0.0f32; n * dout];
        // Row blocks of at least 16 rows, two per thread (as the backend splits a product).
        let block = n.div_ceil(2 * threads).max(16);
        let ops = 2.0 * (n * din * dout) as f64;
        let reps = ((2e9 / ops).ceil() as usize).clamp(3, 200);
        // Each block's quantized rows in scratch kept across calls, as the backend's per-thread
        // scratch is (a fresh allocation per call would time page faults, not the product).
        let mut scratch: Vec<QuantRows> = (0..n.div_ceil(block)).map(|_| QuantRows::default()).collect();
        let mut best = f64::MAX;
        for _ in 0..reps {
            let t0 = Instant::now();
            pool.install(|| {
                y.par_chunks_mut(block * dout).zip(&mut scratch).enumerate().try_for_each(|(b, (yb, q))| {
                    let r0 = b * block;
                    let nr = yb.len() / dout;
                    q.quantize(&x[r0 * din..(r0 + nr) * din], nr, din, packed.kernel())?;
                    int8::matmul(yb, dout, q, 0..nr, &packed, 0..dout);
                    Ok::<(), Error>(())
                })
            })?;
            best = best.min(t0.elapsed().as_secs_f64());
        }
        total_ops += ops * count as f64;
        total_time += best * count as f64;
        rows.push((name, count, ops / best / 1e9));
    }
    let overall = total_ops / total_time / 1e9;
    let kname = match kernel {
        I8Kernel::Avx512Vnni => "avx512-vnni",
        I8Kernel::AvxVnni => "avx-vnni",
        I8Kernel::Avx2 => "avx2",
        I8Kernel::NeonDot => "neon-dotprod",
        I8Kernel::Neon => "neon",
        I8Kernel::Scalar => "scalar",
    };
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "workload": "gemm", "quantize": "int8", "kernel": kname, "preset": a.preset,
                "batch_size": a.batch_size, "seq_len": a.seq_len, "device": "cpu", "threads": threads,
                "int8_peak_gops": peak, "gops": overall, "efficiency": overall / peak,
                "seconds_per_forward": total_time, "gop_per_forward": total_ops / 1e9,
                "products": rows.iter().map(|(n, c, g)| serde_json::json!({"name": n, "count": c, "gops": g})).collect::<Vec<_>>(),
            })
        );
    } else {
        println!("| int8 product ({kname}) | per forward | GOP/s | share of the int8 peak |");
        println!("|---|---|---|---|");
        for (name, count, g) in &rows {
            println!("| {name} | {count} | {g:.1} | {:.0}% |", 100.0 * g / peak);
        }
        println!(
            "\n{:.2} GOP of int8 products per forward in {:.4} s (best of reps, rows quantized included): {:.1} GOP/s \
             = {:.0}% of the measured int8 peak {:.1} GOP/s ({kname}, {} threads)",
            total_ops / 1e9,
            total_time,
            overall,
            100.0 * overall / peak,
            peak,
            threads
        );
    }
    Ok(())
}
