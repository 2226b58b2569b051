//! `electra`: pre-train, inspect and benchmark ELECTRA models from the shell.

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
mod args;
mod bench;
mod finetune;
mod infer;
mod input;
mod plot;
mod pretrain;
use electra::pretrain::Objective;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "electra",
    version,
    about = "Pre-train, fine-tune and run ELECTRA text encoders",
    after_help = "--device, --simd and --quantize may also come before the subcommand \
                  (electra --device cuda bench infer); each subcommand takes only those it uses."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Where a command runs: every command that computes (not `quantize` or `tokenize`).
#[derive(Args, Clone)]
struct Runtime {
    /// Where to run: cpu, cuda or cuda:N (CUDA needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// CPU kernels: best, avx512, avx2, neon or scalar, a cap on the widest vectors used (default:
    /// best, or ELECTRA_SIMD). Results are the same bits under every cap, but for f32 inference's
    /// scalar kernel, which differs by rounding.
    #[arg(long, value_parser = args::simd)]
    simd: Option<electra::backend::Simd>,
}

/// How an inference command loads the weights.
#[derive(Args, Clone)]
struct Weights {
    /// Weights: f32 as stored, or int8 (quantize the Linear weights as the model loads; a model
    /// written by `electra quantize` is int8 either way).
    #[arg(long, default_value = "f32", value_parser = ["f32", "int8"])]
    quantize: String,
}

/// The options of the inference commands (embed, predict, detect, fill-mask).
#[derive(Args, Clone)]
struct Infer {
    #[command(flatten)]
    rt: Runtime,
    #[command(flatten)]
    weights: Weights,
    /// Worker threads (0: one per core).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0, value_parser = args::threads)]
    threads: usize,
    /// Cut each text to this many tokens, [CLS] and [SEP] included (default: the model's
    /// max_position_embeddings).
    #[arg(long, allow_negative_numbers = true, value_parser = args::seq_len)]
    max_length: Option<usize>,
}

/// Rows per forward pass of the commands that take many texts (embed, predict).
#[derive(Args, Clone)]
struct Batching {
    /// Texts per forward pass: texts are sorted by length and run in padded batches of this
    /// many (results do not depend on it; 1 runs them one at a time).
    #[arg(long, allow_negative_numbers = true, default_value_t = electra::text::DEFAULT_BATCH_SIZE, value_parser = args::batch_size)]
    batch_size: usize,
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
        /// '{"temperature": 1.5, "disc_weight": 50}'); they override the flags above. A fresh
        /// tiny model defaults to the tiny recipe, {"bias_correction": true,
        /// "disc_label_smoothing": 0.2, "rtd_head": "cls", "tie_generator_output": false} (the
        /// paper's objective and Adam: false, 0, "plain" and true).
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
        #[command(flatten)]
        rt: Runtime,
    },
    /// Show, for each word of TEXT, the probability that it was replaced.
    Detect {
        /// Model directory (pair layout or discriminator, with its tokenizer).
        #[arg(long)]
        model: PathBuf,
        /// The sentence.
        text: String,
        /// Print JSON: [{"token": word, "replaced_probability": p, "start": byte, "end": byte}, ...].
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        infer: Infer,
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
        /// Print one JSON object: {"text": ..., "masks": [[{"token", "id", "probability"}, ...], ...]}.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        infer: Infer,
    },
    /// Sentence embeddings as JSON lines {"text": ..., "embedding": [...]}, in input order (texts
    /// from the arguments, else --input FILE, else one per stdin line).
    Embed {
        /// Model directory (pair layout, discriminator or classifier, with its tokenizer).
        #[arg(long)]
        model: PathBuf,
        /// Pooling: mean (over the text's tokens, [CLS] and [SEP] included) or cls.
        #[arg(long, default_value = "mean", value_parser = ["mean", "cls"])]
        pool: String,
        /// Scale each embedding to unit length (L2).
        #[arg(long)]
        normalize: bool,
        /// Texts (default: --input, else lines from stdin, each at most 1 MiB).
        #[arg(conflicts_with = "input")]
        text: Vec<String>,
        /// A file of texts, one per line.
        #[arg(long)]
        input: Option<PathBuf>,
        #[command(flatten)]
        infer: Infer,
        #[command(flatten)]
        batching: Batching,
    },
    /// Token ids, tokens, byte offsets and token types of each text as JSON lines, as the model
    /// reads them ([CLS] text [SEP]; with --pair, [CLS] a [SEP] b [SEP]).
    Tokenize {
        /// A model directory (its tokenizer), a tokenizer.json or a vocab.txt.
        #[arg(long)]
        model: PathBuf,
        /// Texts (default: --input, else lines from stdin, each at most 1 MiB).
        #[arg(conflicts_with = "input")]
        text: Vec<String>,
        /// A file of texts, one per line.
        #[arg(long)]
        input: Option<PathBuf>,
        /// Text pairs: the arguments two at a time, or lines holding a<TAB>b. Each pair's offsets
        /// are into its own text (type id 0: a, 1: b).
        #[arg(long)]
        pair: bool,
        /// Cut each row to this many tokens, special tokens included (default: no limit).
        #[arg(long, allow_negative_numbers = true, value_parser = args::seq_len)]
        max_length: Option<usize>,
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
        /// Passes over the training data (default: 10 for fewer than 10,000 training rows, else 3,
        /// as the paper's small and large tasks).
        #[arg(long, allow_negative_numbers = true, value_parser = args::positive)]
        epochs: Option<usize>,
        /// Rows per batch.
        #[arg(long, allow_negative_numbers = true, default_value_t = 32, value_parser = args::batch_size)]
        batch_size: usize,
        /// Longest row in tokens.
        #[arg(long, allow_negative_numbers = true, default_value_t = 128, value_parser = args::seq_len)]
        seq_len: usize,
        /// Peak learning rate (default: by the encoder's width, the paper's: 3e-4 up to 256 as
        /// ELECTRA-Small, 1e-4 up to 768 as Base, 5e-5 above).
        #[arg(long, allow_negative_numbers = true, value_parser = args::learning_rate)]
        learning_rate: Option<f32>,
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
        /// What the head reads: cls (the first token's state, as HF ElectraForSequenceClassification)
        /// or mean (the mean of the non-padding tokens' states; saved as "classifier_pooling":
        /// "mean"; scripts/hf_classify.py pools it in PyTorch). Default: a classifier's own, cls for a new head.
        #[arg(long)]
        pool: Option<electra::Pooling>,
        /// Fine-tuning options as a JSON object (the keys of electra_finetuner_new, e.g.
        /// '{"bias_correction": true, "warmup_steps": 50}'); they override the flags above.
        #[arg(long)]
        options: Option<String>,
        #[command(flatten)]
        rt: Runtime,
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
        /// Print the JSON line of --input for TEXT too.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        infer: Infer,
        #[command(flatten)]
        batching: Batching,
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
        /// `train` (a pre-training step), `finetune` (a sequence-classification step), `infer` or
        /// `gemm` (the products of one pre-training step, against the measured FMA peak).
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
        /// `gemm`: the int8 products of one inference forward against the measured int8
        /// dot-product peak, instead of the f32 products of a training step (the same as
        /// `--quantize int8`).
        #[arg(long)]
        int8: bool,
        #[command(flatten)]
        rt: Runtime,
        #[command(flatten)]
        weights: Weights,
    },
}

/// The flags a subcommand may take that scripts also put before it (`electra --device cuda bench
/// infer`): moved behind the subcommand's name, whose parser accepts or refuses them.
const LEADING: [&str; 3] = ["--device", "--simd", "--quantize"];

/// `argv` with the [`LEADING`] flags that come before the subcommand moved behind its name.
fn hoist_leading_flags(argv: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let mut moved = Vec::new();
    let mut i = 1;
    while i < argv.len() {
        let Some(a) = argv[i].to_str() else { return argv };
        if LEADING.contains(&a) && i + 1 < argv.len() {
            moved.extend_from_slice(&argv[i..i + 2]);
            i += 2;
        } else if LEADING.iter().any(|f| a.strip_prefix(f).is_some_and(|r| r.starts_with('='))) {
            moved.push(argv[i].clone());
            i += 1;
        } else if a.starts_with('-') || moved.is_empty() {
            // --help, --version or a typo: clap answers; nothing moved, nothing to do.
            return argv;
        } else {
            let mut out = vec![argv[0].clone()];
            out.extend_from_slice(&argv[i..=i]);
            out.extend(moved);
            out.extend_from_slice(&argv[i + 1..]);
            return out;
        }
    }
    argv
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches_from(hoist_leading_flags(std::env::args_os().collect()));
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

impl Runtime {
    fn session_options(&self, threads: usize) -> electra::Result<electra::SessionOptions> {
        Ok(electra::SessionOptions { device: self.device.parse()?, simd: self.simd, threads, ..Default::default() })
    }
}

impl Weights {
    fn format(&self) -> electra::Result<electra::quant::WeightFormat> {
        self.quantize.parse()
    }
}

impl Infer {
    /// The model at `dir` with its tokenizer, in a session as the flags say.
    fn load(&self, dir: &std::path::Path) -> electra::Result<(electra::Session, electra::data::tokenizer::Tokenizer)> {
        let opts = self.rt.session_options(self.threads)?;
        let (model, tok) = infer::load_with_tokenizer(dir, self.weights.format()?)?;
        Ok((electra::Session::with_options(model, &opts)?, tok))
    }

    fn text_options(&self, batch_size: usize) -> electra::text::TextOptions {
        electra::text::TextOptions { batch_size, max_length: self.max_length.unwrap_or(0), ..Default::default() }
    }
}

/// Texts from the arguments, else the lines of `--input`, else stdin's lines (streamed a bounded
/// line at a time: an endless or newline-free stream is an error at its first over-long line, not
/// an unbounded allocation).
fn texts_from(
    text: Vec<String>,
    input: Option<PathBuf>,
) -> electra::Result<Box<dyn Iterator<Item = electra::Result<String>>>> {
    Ok(match input {
        Some(file) => {
            let all = input::read_text(&file, input::MAX_TEXT_FILE_BYTES, "--input")?;
            let lines: Vec<String> = all.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
            Box::new(lines.into_iter().map(Ok))
        }
        None if text.is_empty() => Box::new(input::StdinLines::new()),
        None => Box::new(text.into_iter().map(Ok)),
    })
}

fn run(cli: Cli, given: &pretrain::Given) -> electra::Result<ExitCode> {
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
            rt,
        } => (|| {
            let (device, simd) = (rt.device.parse()?, rt.simd);
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
        Cmd::Detect { model, text, json, infer: inf } => inf.load(&model).and_then(|(mut s, tok)| {
            let words = electra::text::detect_text(&mut s, &tok, &text, &inf.text_options(0))?;
            infer::print_detect(&text, &words, json);
            Ok(())
        }),
        Cmd::FillMask { model, text, top_k, json, infer: inf } => inf.load(&model).and_then(|(mut s, tok)| {
            let masks = electra::text::fill_mask_text(&mut s, &tok, &text, top_k, &inf.text_options(0))?;
            infer::print_fill_mask(&tok, &text, &masks, json);
            Ok(())
        }),
        Cmd::Embed { model, pool, normalize, text, input, infer: inf, batching } => (|| {
            let texts = texts_from(text, input)?;
            let (mut s, tok) = inf.load(&model)?;
            let o = electra::text::TextOptions {
                pooling: electra::text::Pooling::parse(&pool)?,
                normalize,
                ..inf.text_options(batching.batch_size)
            };
            infer::embed_lines(&mut s, &tok, texts, &o)
        })(),
        Cmd::Tokenize { model, text, input, pair, max_length } => (|| {
            let pairing = match (pair, text.is_empty()) {
                (false, _) => infer::Pairing::None,
                (true, true) => infer::Pairing::Tab,
                (true, false) if text.len() % 2 == 1 => {
                    return Err(electra::Error::arg(format!(
                        "--pair takes the texts two at a time; {} texts leave the last without a partner",
                        text.len()
                    )))
                }
                (true, false) => infer::Pairing::Adjacent,
            };
            let texts = texts_from(text, input)?;
            let tok = infer::load_tokenizer(&model)?;
            infer::tokenize_lines(&tok, texts, pairing, max_length.unwrap_or(0))
        })(),
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
            pool,
            options,
            rt,
        } => (|| {
            let (device, simd) = (rt.device.parse()?, rt.simd);
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
                pool,
                ..Default::default()
            };
            let opts = match &options {
                Some(json) => electra::options::merge_json(&opts, json, "--options")?,
                None => opts,
            };
            finetune::run(&finetune::FinetuneArgs { model, train, eval, out, epochs, batch_size, seq_len, opts })
                .map(|_| ())
        })(),
        Cmd::Predict { model, text, input, json, infer: inf, batching } => (|| {
            let one = input.is_none();
            let texts = texts_from(text.into_iter().collect(), input)?;
            let (mut s, tok) = inf.load(&model)?;
            infer::predict_lines(&mut s, &tok, texts, &inf.text_options(batching.batch_size), one && !json)
        })(),
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
        Cmd::Bench {
            what,
            preset,
            batch_size,
            seq_len,
            threads,
            reps,
            json,
            model,
            save_model,
            tf32,
            int8,
            rt,
            weights,
        } => {
            let (device, simd, mut quantize) = (rt.device.parse()?, rt.simd, weights.format()?);
            if int8 {
                quantize = electra::quant::WeightFormat::Int8;
            }
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
