//! `electra`: pre-train, inspect and benchmark ELECTRA models from the shell.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
mod args;
mod bench;
mod finetune;
mod infer;
mod input;
mod plot;
mod pretrain;
use electra::pretrain::Objective;
use electra::Device;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "electra", version, about = "Pre-train, fine-tune and run ELECTRA text encoders")]
struct Cli {
    /// Where to run: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, global = true, default_value = "cpu")]
    device: String,
    /// Weights of inference commands: f32 as stored, or int8 (quantize the Linear weights as the
    /// model loads; a model written by `electra quantize` is int8 either way).
    #[arg(long, global = true, default_value = "f32")]
    quantize: String,
    /// CPU kernels: best, avx512, avx2, neon or scalar, a cap on the widest vectors used (default:
    /// best, or ELECTRA_SIMD). Results are the same bits under every cap, but for f32 inference's
    /// scalar kernel, which differs by rounding.
    #[arg(long, global = true, value_parser = args::simd)]
    simd: Option<electra::backend::Simd>,
    #[command(subcommand)]
    cmd: Cmd,
}

// Parsed once per process: the size of the pretrain variant costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Cmd {
    /// Pre-train an ELECTRA generator + discriminator on plain text (default: the bundled corpus).
    Pretrain {
        /// Run directory: metrics.jsonl, curves.svg, checkpoint/, final/.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Text files or folders of *.txt (repeatable; default: the bundled Moby-Dick).
        #[arg(long)]
        corpus: Vec<PathBuf>,
        /// Model size: tiny, small, base, large, or a discriminator config.json (fresh weights).
        #[arg(long, default_value = "tiny")]
        preset: String,
        /// Generator hidden size as a fraction of the discriminator's (default: 1/4; 1/3 for base).
        #[arg(long, allow_negative_numbers = true, value_parser = args::fraction)]
        generator_fraction: Option<f64>,
        /// Optimizer steps (0: a dry run that checks the arguments, builds the model in memory,
        /// prints its size and writes nothing).
        #[arg(long, allow_negative_numbers = true, default_value_t = 600, value_parser = args::steps)]
        steps: u64,
        /// Sequences per batch.
        #[arg(long, allow_negative_numbers = true, default_value_t = 32, value_parser = args::batch_size)]
        batch_size: usize,
        /// Tokens per sequence.
        #[arg(long, allow_negative_numbers = true, default_value_t = 128, value_parser = args::seq_len)]
        seq_len: usize,
        /// Seed of initialisation, data order, masking and sampling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Worker threads (0: one per core).
        #[arg(long, allow_negative_numbers = true, default_value_t = 0, value_parser = args::threads)]
        threads: usize,
        /// Objective: electra (generator + discriminator) or mlm (BERT-style baseline).
        #[arg(long, default_value = "electra")]
        objective: String,
        /// Start from this model directory (pair layout or a discriminator) instead of a preset.
        #[arg(long)]
        init: Option<PathBuf>,
        /// Continue the run in this directory from its checkpoint (flags left out are the
        /// checkpoint's; a flag that contradicts it is refused).
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Start a new run in --out even though it holds an earlier run (its checkpoint is
        /// replaced at the first save); without it such an --out is refused.
        #[arg(long, conflicts_with = "resume")]
        overwrite: bool,
        /// Vocabulary: vocab.txt or tokenizer.json (default: the bundled one, else trained).
        #[arg(long)]
        vocab: Option<PathBuf>,
        /// Peak learning rate (default: 1e-3 tiny, 5e-4 small, 2e-4 base/large).
        #[arg(long, allow_negative_numbers = true, value_parser = args::learning_rate)]
        learning_rate: Option<f32>,
        /// Warm-up steps (default: a tenth of --steps).
        #[arg(long, allow_negative_numbers = true, value_parser = args::steps)]
        warmup_steps: Option<u64>,
        /// Temperature of the generator's sampling (default: 1 as the paper; 3 for the tiny
        /// preset, whose 2-layer discriminator otherwise needs far longer than a few minutes
        /// before its held-out AUC climbs: see README).
        #[arg(long, allow_negative_numbers = true, value_parser = args::temperature)]
        temperature: Option<f32>,
        /// Dropout in training: true (config.json's hidden_dropout_prob and
        /// attention_probs_dropout_prob, as HF; the default), false, or one probability for all.
        #[arg(long, allow_negative_numbers = true, value_parser = args::dropout)]
        dropout: Option<electra::options::DropoutSetting>,
        /// Labelled text (label<TAB>text per line) for a linear probe at each evaluation: a
        /// logistic regression on the frozen mean-pooled and [CLS] states, trained on this
        /// file and scored on --probe-eval, logged as probe_*_accuracy in metrics.jsonl and
        /// drawn in curves.svg beside step 0's (random init).
        #[arg(long, requires = "probe_eval")]
        probe_train: Option<PathBuf>,
        /// The probe's evaluation file (label<TAB>text).
        #[arg(long, requires = "probe_train")]
        probe_eval: Option<PathBuf>,
        /// Evaluate on held-out text every N steps (0: at the start and the end only).
        #[arg(long, allow_negative_numbers = true, default_value_t = 100, value_parser = args::steps)]
        eval_every: u64,
        /// Held-out batches per evaluation.
        #[arg(long, allow_negative_numbers = true, default_value_t = 4, value_parser = args::positive)]
        eval_batches: usize,
        /// Checkpoint every N steps (0: at the end and on Ctrl-C only).
        #[arg(long, allow_negative_numbers = true, default_value_t = 200, value_parser = args::steps)]
        save_every: u64,
        /// Write a metrics line every N steps.
        #[arg(long, allow_negative_numbers = true, default_value_t = 10, value_parser = args::every)]
        log_every: u64,
        /// Training options as a JSON object (the keys of electra_trainer_new, e.g.
        /// '{"temperature": 1.5, "disc_weight": 50}'); they override the flags above.
        #[arg(long)]
        options: Option<String>,
        /// Take as many steps as it needs to spend the pre-training FLOPs of that earlier run
        /// directory (its summary.json): compares objectives at equal compute. Overrides --steps.
        #[arg(long)]
        match_flops: Option<PathBuf>,
        /// Data-parallel training: "mpi" joins the ranks of `mpirun -np N` (a build with the
        /// `mpi` feature). Each rank reads its own shard of the corpus and steps on its own
        /// --batch-size rows; rank 0 evaluates, logs and writes the run directory.
        #[arg(long, default_value = "none")]
        distributed: String,
        /// Micro-batches per step: each step's --batch-size rows run as K passes of batch/K
        /// rows (K ranks with one micro-batch each give the same step as one rank with K).
        #[arg(long, allow_negative_numbers = true, default_value_t = 1, value_parser = args::accumulate_steps)]
        accumulate_steps: usize,
        /// Seconds a rank waits for the others in a collective before the run fails.
        #[arg(long, allow_negative_numbers = true, default_value_t = 600.0, value_parser = args::timeout)]
        collective_timeout: f64,
    },
    /// Show, for each token of TEXT, the probability that it was replaced.
    Detect {
        /// Model directory (pair layout or discriminator, with its tokenizer).
        #[arg(long)]
        model: PathBuf,
        /// The sentence.
        text: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Predict each [MASK] of TEXT with the generator (top k).
    FillMask {
        /// Model directory (pair layout or generator, with its tokenizer).
        #[arg(long)]
        model: PathBuf,
        /// Text with one or more [MASK] tokens.
        text: String,
        /// Candidates per mask.
        #[arg(long, allow_negative_numbers = true, default_value_t = 5, value_parser = args::positive)]
        top_k: usize,
    },
    /// Sentence embeddings as JSON lines (texts from the arguments, else one per stdin line).
    Embed {
        /// Model directory (pair layout, discriminator or classifier, with its tokenizer).
        #[arg(long)]
        model: PathBuf,
        /// Pooling: mean (over tokens) or cls.
        #[arg(long, default_value = "mean", value_parser = ["mean", "cls"])]
        pool: String,
        /// Texts (default: read lines from stdin, each at most 1 MiB).
        text: Vec<String>,
    },
    /// Fine-tune a sentence classifier on TSV (label<TAB>text) or CSV (label,text) files.
    Finetune {
        /// Pre-trained model directory (pair layout or discriminator, with its tokenizer).
        #[arg(long)]
        model: PathBuf,
        /// Training file.
        #[arg(long)]
        train: PathBuf,
        /// Evaluation file (accuracy after each epoch).
        #[arg(long)]
        eval: Option<PathBuf>,
        /// Output directory (HF ElectraForSequenceClassification with tokenizer).
        #[arg(long)]
        out: PathBuf,
        /// Passes over the training data.
        #[arg(long, allow_negative_numbers = true, default_value_t = 3, value_parser = args::positive)]
        epochs: usize,
        /// Rows per batch.
        #[arg(long, allow_negative_numbers = true, default_value_t = 32, value_parser = args::batch_size)]
        batch_size: usize,
        /// Longest row in tokens.
        #[arg(long, allow_negative_numbers = true, default_value_t = 128, value_parser = args::seq_len)]
        seq_len: usize,
        /// Peak learning rate.
        #[arg(long, allow_negative_numbers = true, default_value_t = 1e-4, value_parser = args::learning_rate)]
        learning_rate: f32,
        /// Layer-wise learning-rate decay (1 disables).
        #[arg(long, allow_negative_numbers = true, default_value_t = 0.8, value_parser = args::layer_decay)]
        layer_decay: f32,
        /// Decoupled weight decay.
        #[arg(long, allow_negative_numbers = true, default_value_t = 0.01, value_parser = args::weight_decay)]
        weight_decay: f32,
        /// Seed of the head's initialisation, the data order and the dropout masks.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Worker threads (0: one per core).
        #[arg(long, allow_negative_numbers = true, default_value_t = 0, value_parser = args::threads)]
        threads: usize,
        /// Dropout in training: true (config.json's probabilities, and classifier_dropout in
        /// the head, as HF; the default), false, or one probability for all.
        #[arg(long, allow_negative_numbers = true, value_parser = args::dropout)]
        dropout: Option<electra::options::DropoutSetting>,
    },
    /// Label probabilities of TEXT from a fine-tuned classifier (or, with --input, one JSON line
    /// {"probs": [...], "label": "name", "label_id": i, "labels": [names]} per line of FILE).
    Predict {
        /// Classifier directory written by `electra finetune`.
        #[arg(long)]
        model: PathBuf,
        /// The sentence.
        #[arg(required_unless_present = "input")]
        text: Option<String>,
        /// A file of sentences, one per line.
        #[arg(long, conflicts_with = "text")]
        input: Option<PathBuf>,
    },
    /// Write the int8 copy of a model: every encoder and head Linear weight symmetric int8 per
    /// output channel with f32 scales (docs/PERFORMANCE.md); loads wherever the f32 one does.
    Quantize {
        /// The f32 model directory (pair layout, discriminator, generator or classifier).
        #[arg(long)]
        model: PathBuf,
        /// Output directory (with the tokenizer files of the input).
        #[arg(long)]
        out: PathBuf,
    },
    /// Time a training step or discriminator inference (median, tokens/s, GFLOP/s, peak RSS).
    Bench {
        /// `train` or `infer`.
        what: String,
        /// Model preset: tiny, small, base or large.
        #[arg(long, default_value = "small")]
        preset: String,
        /// Sequences per batch.
        #[arg(long, allow_negative_numbers = true, default_value_t = 32, value_parser = args::batch_size)]
        batch_size: usize,
        /// Tokens per sequence.
        #[arg(long, allow_negative_numbers = true, default_value_t = 128, value_parser = args::seq_len)]
        seq_len: usize,
        /// Worker threads (0: one per core).
        #[arg(long, allow_negative_numbers = true, default_value_t = 2, value_parser = args::threads)]
        threads: usize,
        /// Timed repetitions after one warm-up.
        #[arg(long, allow_negative_numbers = true, default_value_t = 5, value_parser = args::positive)]
        reps: usize,
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
        /// `infer`: time this model directory (f32 or int8) instead of a fresh preset model.
        #[arg(long)]
        model: Option<PathBuf>,
        /// `infer`: first write the fresh preset model (f32) to this directory.
        #[arg(long, conflicts_with = "model")]
        save_model: Option<PathBuf>,
        /// CUDA only: TF32 tensor-core matrix products (off by default, so results match fp32;
        /// ELECTRA_CUDA_TF32=1 also turns them on).
        #[arg(long)]
        tf32: bool,
    },
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The flags typed on the command line (not defaults): a resumed run takes the others from
    // its checkpoint and refuses those that contradict it.
    let given: pretrain::Given = matches
        .subcommand_matches("pretrain")
        .map(|m| {
            m.ids()
                .filter(|id| m.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
                .map(|id| id.as_str().to_string())
                .collect()
        })
        .unwrap_or_default();
    match run(cli, &given) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("electra: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, given: &pretrain::Given) -> electra::Result<ExitCode> {
    let device: Device = cli.device.parse()?;
    let quantize: electra::quant::WeightFormat = cli.quantize.parse()?;
    let inference_only = |what: &str| match quantize {
        electra::quant::WeightFormat::F32 => Ok(()),
        electra::quant::WeightFormat::Int8 => {
            Err(electra::Error::arg(format!("--quantize int8 is for inference commands; {what} needs f32 weights")))
        }
    };
    let simd = cli.simd;
    let sopts = electra::SessionOptions { device, simd, ..Default::default() };
    let session = |m| electra::Session::with_options(m, &sopts);
    let r = match cli.cmd {
        Cmd::Pretrain {
            out,
            corpus,
            preset,
            generator_fraction,
            steps,
            batch_size,
            seq_len,
            seed,
            threads,
            objective,
            init,
            resume,
            overwrite,
            vocab,
            learning_rate,
            warmup_steps,
            temperature,
            dropout,
            probe_train,
            probe_eval,
            eval_every,
            eval_batches,
            save_every,
            log_every,
            options,
            match_flops,
            distributed,
            accumulate_steps,
            collective_timeout,
        } => (|| {
            inference_only("pretrain")?;
            let distributed = match distributed.as_str() {
                "none" => electra::pretrain::Distributed::None,
                "mpi" => electra::pretrain::Distributed::Mpi,
                d => return Err(electra::Error::arg(format!("--distributed {d:?}: expected none or mpi"))),
            };
            let objective = match objective.as_str() {
                "electra" => Objective::Electra,
                "mlm" => Objective::Mlm,
                o => return Err(electra::Error::arg(format!("--objective {o:?}: expected electra or mlm"))),
            };
            let out = match (out, &resume) {
                (Some(o), Some(r)) if !pretrain::same_dir(&o, r) => {
                    return Err(electra::Error::arg(format!(
                        "--out {} and --resume {} name different directories; a resumed run stays in its own \
                         (pass --resume DIR alone)",
                        o.display(),
                        r.display()
                    )))
                }
                (Some(o), _) => o,
                (None, Some(r)) => r.clone(),
                (None, None) => return Err(electra::Error::arg("--out DIR is required (or --resume DIR)")),
            };
            let args = pretrain::PretrainArgs {
                out,
                corpus,
                preset,
                generator_fraction,
                steps,
                batch_size,
                seq_len,
                seed,
                threads,
                objective,
                init,
                vocab,
                learning_rate,
                warmup_steps,
                temperature,
                dropout,
                probe_train,
                probe_eval,
                eval_every,
                eval_batches,
                save_every,
                log_every,
                options,
                match_flops,
                device,
                simd,
                distributed,
                accumulate_steps,
                collective_timeout,
            };
            let mode = match (resume.is_some(), overwrite) {
                (true, _) => pretrain::Mode::Resume(given),
                (false, true) => pretrain::Mode::Overwrite,
                (false, false) => pretrain::Mode::Fresh,
            };
            pretrain::run(args, mode)
        })(),
        Cmd::Detect { model, text, json } => infer::load_with_tokenizer(&model, quantize).and_then(|(m, tok)| {
            let scores = infer::detect(&mut session(m)?, &tok, &text)?;
            infer::print_detect(&scores, json);
            Ok(())
        }),
        Cmd::FillMask { model, text, top_k } => infer::load_with_tokenizer(&model, quantize).and_then(|(m, tok)| {
            for (i, cands) in infer::fill_mask(&mut session(m)?, &tok, &text, top_k)?.iter().enumerate() {
                println!("[MASK] #{}:", i + 1);
                for (t, p) in cands {
                    println!("  {t:>16}  {p:.4}");
                }
            }
            Ok(())
        }),
        Cmd::Embed { model, pool, text } => infer::load_with_tokenizer(&model, quantize).and_then(|(m, tok)| {
            // Stdin is streamed a bounded line at a time: an endless or newline-free stream is
            // an error at its first over-long line, not an unbounded allocation.
            let texts: Box<dyn Iterator<Item = electra::Result<String>>> =
                if text.is_empty() { Box::new(input::StdinLines::new()) } else { Box::new(text.into_iter().map(Ok)) };
            let mut s = session(m)?;
            for t in texts {
                let t = t?;
                let v = infer::embed(&mut s, &tok, &t, &pool)?;
                println!("{}", serde_json::json!({"text": t, "embedding": v}));
            }
            Ok(())
        }),
        Cmd::Finetune {
            model,
            train,
            eval,
            out,
            epochs,
            batch_size,
            seq_len,
            learning_rate,
            layer_decay,
            weight_decay,
            seed,
            threads,
            dropout,
        } => (|| {
            inference_only("finetune")?;
            input::check_out_dir(&out, "--out", true)?;
            let opts = electra::finetune::FinetuneOptions {
                learning_rate,
                layerwise_lr_decay: layer_decay,
                weight_decay,
                seed,
                threads,
                device,
                simd,
                dropout: dropout.unwrap_or_default(),
                ..Default::default()
            };
            finetune::run(&finetune::FinetuneArgs { model, train, eval, out, epochs, batch_size, seq_len, opts })
                .map(|_| ())
        })(),
        Cmd::Predict { model, text, input } => match input {
            Some(file) => finetune::predict_file(&model, &file, &sopts, quantize),
            None => finetune::predict(&model, text.as_deref().unwrap_or_default(), &sopts, quantize).map(|probs| {
                for (l, p) in probs {
                    println!("{l:>16}  {p:.4}");
                }
            }),
        },
        Cmd::Quantize { model, out } => input::check_out_dir(&out, "--out", true)
            .and_then(|_| infer::quantize_dir(&model, &out))
            .map(|(f32_bytes, int8_bytes)| {
                println!(
                    "wrote {}: int8 weights, {:.1} MB ({:.0}% of the f32 model's {:.1} MB)",
                    out.display(),
                    int8_bytes as f64 / 1e6,
                    100.0 * int8_bytes as f64 / f32_bytes.max(1) as f64,
                    f32_bytes as f64 / 1e6
                );
            }),
        Cmd::Bench { what, preset, batch_size, seq_len, threads, reps, json, model, save_model, tf32 } => {
            if let Some(dir) = &save_model {
                input::check_out_dir(dir, "--save-model", true)?;
            }
            bench::run(&bench::BenchArgs {
                what,
                preset,
                batch_size,
                seq_len,
                threads,
                reps,
                json,
                device,
                simd,
                quantize,
                model,
                save_model,
                tf32,
            })
        }
    };
    r.map(|_| ExitCode::SUCCESS).or_else(|e| match e {
        // Ctrl-C during pre-training: the checkpoint is saved; 130 as a shell reports SIGINT.
        electra::Error::Cancelled => Ok(ExitCode::from(130)),
        e => Err(e),
    })
}
