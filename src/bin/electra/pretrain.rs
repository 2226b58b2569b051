//! `electra pretrain`: from a folder of plain text to a trained ELECTRA pair, with a progress
//! bar, metrics.jsonl, held-out evaluation, periodic and Ctrl-C checkpoints, the final model in
//! the pair layout with its tokenizer, and a plot of the curves.

use super::input::{check_out_dir, read_text, MAX_TEXT_FILE_BYTES};
use super::plot;
use electra::config::ElectraConfig;
use electra::data::corpus::{Corpus, CorpusOptions};
use electra::data::tokenizer::Tokenizer;
use electra::error::{Error, Result};
use electra::io::atomic::{create_dir, write_atomic};
use electra::io::read::{read_regular_utf8, MAX_CONFIG_BYTES};
use electra::limits;
use electra::pretrain::eval::{evaluate, EvalStats};
use electra::pretrain::probe::{linear_probes, representation_stats, LabelledRows};
use electra::pretrain::{Distributed, Objective, ResumeOptions, StepStats, TrainOptions, Trainer};
use electra::session::{Session, SessionOptions};
use electra::Device;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Everything `electra pretrain` takes.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PretrainArgs {
    /// Run directory (metrics, checkpoint, final model).
    pub out: PathBuf,
    /// Text files or folders (empty: the bundled Moby-Dick corpus).
    pub corpus: Vec<PathBuf>,
    /// Preset of a fresh model.
    pub preset: String,
    /// Optimizer steps in total.
    pub steps: u64,
    /// Sequences per batch.
    pub batch_size: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Seed of initialisation, data order, masking and sampling.
    pub seed: u64,
    /// Worker threads (0: one per core).
    pub threads: usize,
    /// "electra" or "mlm".
    pub objective: Objective,
    /// Start from this model directory instead of a preset.
    pub init: Option<PathBuf>,
    /// Generator hidden size as a fraction of the discriminator's (default: the paper's).
    pub generator_fraction: Option<f64>,
    /// Vocabulary (vocab.txt or tokenizer.json); default: the bundled one, else trained.
    pub vocab: Option<PathBuf>,
    /// Peak learning rate (default by preset).
    pub learning_rate: Option<f32>,
    /// Warm-up steps (default: a tenth of the steps, at most 10000).
    pub warmup_steps: Option<u64>,
    /// Generator sampling temperature (default: [`default_temperature`]).
    #[serde(default)]
    pub temperature: Option<f32>,
    /// Labelled files (label<TAB>text) of the linear probes at each evaluation.
    #[serde(default)]
    pub probe_train: Option<PathBuf>,
    /// Their evaluation file.
    #[serde(default)]
    pub probe_eval: Option<PathBuf>,
    /// `--dropout` (default: config.json's probabilities).
    #[serde(default)]
    pub dropout: Option<electra::options::DropoutSetting>,
    /// Where to train (a resumed run may move to another device).
    #[serde(default)]
    pub device: Device,
    /// Cap on the CPU kernels (`--simd`; a resumed run keeps its checkpoint's).
    #[serde(default)]
    pub simd: Option<electra::backend::Simd>,
    /// Evaluate on held-out text every this many steps (0: only at the start and end).
    pub eval_every: u64,
    /// Held-out batches per evaluation.
    pub eval_batches: usize,
    /// Write a checkpoint every this many steps (0: only at the end and on Ctrl-C).
    pub save_every: u64,
    /// Log a metrics line every this many steps.
    pub log_every: u64,
    /// Training options as a JSON object; its keys override those derived from the flags.
    #[serde(default)]
    pub options: Option<String>,
    /// Run as many steps as needed to spend the pre-training FLOPs recorded in this run
    /// directory's summary.json (comparing objectives at equal compute); overrides `steps`.
    #[serde(default)]
    pub match_flops: Option<PathBuf>,
    /// The engine between data-parallel ranks.
    #[serde(default)]
    pub distributed: Distributed,
    /// Micro-batches per step.
    #[serde(default = "one")]
    pub accumulate_steps: usize,
    /// Seconds a collective waits for the other ranks.
    #[serde(default = "default_timeout")]
    pub collective_timeout: f64,
}

fn one() -> usize {
    1
}

fn default_timeout() -> f64 {
    600.0
}

/// DIR/summary.json: what a run has spent, rewritten with every checkpoint (so a resumed run
/// keeps counting from it) and, with the final held-out metrics, at the end.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    /// "electra" or "mlm".
    pub objective: Objective,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Real tokens seen, across resumes.
    pub tokens: u64,
    /// Matrix-product FLOPs spent, across resumes (see `electra::pretrain::flops`).
    pub flops: f64,
    /// Wall-clock seconds of the training loops, across resumes (evaluations included).
    pub seconds: f64,
    /// Parameters of the whole pre-training model.
    pub parameters: usize,
    /// Held-out discriminator AUC at the end (electra objective).
    pub eval_disc_auc: Option<f64>,
    /// Held-out accuracy of the generator (or MLM model) at masked positions, at the end.
    pub eval_mlm_accuracy: Option<f64>,
}

impl RunSummary {
    /// Reads `run_dir/summary.json`.
    pub fn read(run_dir: &Path) -> Result<Self> {
        let path = run_dir.join("summary.json");
        let text = read_regular_utf8(&path, MAX_CONFIG_BYTES)?;
        let s: Self =
            serde_json::from_str(&text).map_err(|e| Error::format(&path, format!("not a run summary: {e}")))?;
        // --match-flops divides by it: a negative, zero or non-finite count is no budget.
        if !(s.flops.is_finite() && s.flops >= 0.0 && s.seconds.is_finite()) {
            return Err(Error::format(
                &path,
                format!("not a run summary: flops = {}, seconds = {}", s.flops, s.seconds),
            ));
        }
        Ok(s)
    }

    /// Writes `run_dir/summary.json` atomically.
    fn write(&self, run_dir: &Path) -> Result<()> {
        write_atomic(&run_dir.join("summary.json"), serde_json::to_string_pretty(self).expect("json").as_bytes())
    }
}

/// Where the bundled corpus and vocabulary live: `./data` when run from the repository, else
/// the source tree this binary was built from.
pub fn bundled(rel: &str) -> Option<PathBuf> {
    [PathBuf::from("data").join(rel), Path::new(env!("CARGO_MANIFEST_DIR")).join("data").join(rel)]
        .into_iter()
        .find(|p| p.exists())
}

/// The generator's sampling temperature when `--temperature` is not given: 1, as the paper,
/// except for a fresh tiny model. At temperature 1 the tiny generator reaches unigram-level
/// samples within ~100 steps, and a 2-layer discriminator then needs thousands of steps before
/// it detects them from context (held-out AUC falls back to ~0.55; HF PyTorch does the same,
/// scripts/reference_pretrain.py). Sampling at 3 keeps replacements easier, so the tiny demo's
/// AUC climbs within minutes.
pub fn default_temperature(preset: &str, from_init: bool) -> f32 {
    if preset == "tiny" && !from_init {
        3.0
    } else {
        1.0
    }
}

/// Whether a run takes the tiny preset's recipe beyond the paper (a fresh tiny model): Adam's
/// bias correction, and for the electra objective replaced-token detection scored against
/// labels smoothed at [`TINY_LABEL_SMOOTHING`] by the [CLS]-aware head (`rtd_head: "cls"`) and a
/// generator output layer of its own (`tie_generator_output: false`).
/// Measured downstream (docs/REPLICATION.md, 3 seeds, 800 RT sentences, `electra finetune`
/// defaults): the first three take the [CLS] head from 49.6 to 60.5 and the mean-pooled head
/// from 50.7 to 64.6, each part alone adding less; untying then takes the [CLS] head to 63.0
/// (mean-pooled 64.3, level), because a tied softmax drags the rare words' embeddings together.
/// `--options` overrides all four (`"bias_correction"`, `"disc_label_smoothing"`, `"rtd_head"`,
/// `"tie_generator_output"`).
pub fn tiny_recipe(preset: &str, from_init: bool) -> bool {
    preset == "tiny" && !from_init
}

/// The tiny preset's label smoothing of replaced-token detection (see [`tiny_recipe`]).
pub const TINY_LABEL_SMOOTHING: f32 = 0.2;

/// Checks `--batch-size` and `--seq-len` against what one training step of a model with the
/// discriminator `disc` needs in bytes (weights, gradients, Adam moments, both towers'
/// activations), before the corpus is read or anything is allocated: a size too large for the
/// machine is a clear error instead of an abort, the OOM killer or a long wait.
pub fn check_step_size(disc: &ElectraConfig, objective: Objective, frac: f64, batch: usize, seq: usize) -> Result<()> {
    if batch == 0 || seq < 2 {
        return Err(Error::arg(format!("--batch-size {batch} and --seq-len {seq}: need at least 1 and 2")));
    }
    if seq > electra::config::MAX_DIM {
        return Err(Error::arg(format!("--seq-len {seq} is too large (at most {})", electra::config::MAX_DIM)));
    }
    let mut d = disc.clone();
    d.max_position_embeddings = d.max_position_embeddings.max(seq);
    let towers = match objective {
        Objective::Electra => vec![d.generator_config(frac)?, d],
        Objective::Mlm => vec![d],
    };
    let refs: Vec<&ElectraConfig> = towers.iter().collect();
    let mut need = limits::training_bytes(limits::model_bytes(&refs)? / 4)?;
    for c in &towers {
        need = need
            .checked_add(limits::activation_bytes(c, batch, seq, true)?)
            .ok_or_else(|| Error::OutOfMemory("the step's size overflows".into()))?;
    }
    let what = format!("a training step with --batch-size {batch} --seq-len {seq}");
    limits::check(need, 0, &what).map_err(|e| match e {
        Error::OutOfMemory(m) => Error::OutOfMemory(format!("{m}; lower --batch-size or --seq-len")),
        e => e,
    })
}

/// The discriminator config a fresh run starts from: the preset, the config.json, or the
/// `--init` directory's (`None` when the directory has no config.json where expected).
fn start_config(args: &PretrainArgs, vocab: usize) -> Result<Option<ElectraConfig>> {
    let Some(dir) = &args.init else {
        let mut d = if args.preset.ends_with(".json") {
            ElectraConfig::from_file(Path::new(&args.preset))?
        } else {
            ElectraConfig::preset(&args.preset)?
        };
        d.vocab_size = vocab;
        return Ok(Some(d));
    };
    for p in [dir.join("discriminator").join("config.json"), dir.join("config.json")] {
        if p.is_file() {
            return ElectraConfig::from_file(&p).map(Some);
        }
    }
    Ok(None)
}

fn default_lr(preset: &str) -> f32 {
    match preset {
        "tiny" => 1e-3,
        "small" => 5e-4,
        _ => 2e-4,
    }
}

fn load_tokenizer(args: &PretrainArgs, corpus: &[PathBuf]) -> Result<Tokenizer> {
    if let Some(v) = &args.vocab {
        return Tokenizer::from_file(v);
    }
    if let Some(init) = &args.init {
        for d in [init.join("discriminator"), init.join("generator"), init.clone()] {
            if d.join("tokenizer.json").exists() || d.join("vocab.txt").exists() {
                return Tokenizer::from_file(&d);
            }
        }
    }
    if args.corpus.is_empty() {
        if let Some(v) = bundled("vocab.txt") {
            return Tokenizer::from_file(v);
        }
    }
    eprintln!("training an 8192-entry WordPiece vocabulary on the corpus ...");
    let files = electra::data::text_files(corpus)?;
    Tokenizer::train(&files, 8192, 2)
}

/// One line of metrics.jsonl.
#[derive(Serialize)]
struct TrainLine {
    step: u64,
    loss: f32,
    mlm_loss: f32,
    disc_loss: f32,
    disc_accuracy: f32,
    mlm_accuracy: f32,
    /// The hybrid objective's discriminator masked-LM loss and accuracy.
    #[serde(skip_serializing_if = "Option::is_none")]
    disc_mlm_loss: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disc_mlm_accuracy: Option<f32>,
    /// The sequence-level [CLS] loss and the share of sequences whose partner it ranks first.
    #[serde(skip_serializing_if = "Option::is_none")]
    cls_contrast_loss: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cls_contrast_accuracy: Option<f32>,
    learning_rate: f32,
    grad_norm: f32,
    tokens_per_second: f64,
    elapsed_seconds: f64,
    /// Data-parallel runs: seconds in the gradient all-reduce, and in all collectives.
    #[serde(skip_serializing_if = "Option::is_none")]
    allreduce_seconds: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collective_seconds: Option<f32>,
}

#[derive(Serialize)]
struct EvalLine {
    step: u64,
    eval_disc_auc: Option<f64>,
    eval_disc_accuracy: Option<f64>,
    eval_mlm_accuracy: f64,
    eval_tokens: usize,
    /// Mean pairwise cosine of held-out [CLS] states (electra::pretrain::probe).
    eval_cls_cosine: f64,
    /// Mean attention entropy per layer (nats).
    eval_attention_entropy: Vec<f64>,
    /// Share of the final token states' variance on their first principal direction.
    eval_top_direction_share: f64,
    /// Dev accuracy of the linear probes (with --probe-train/--probe-eval).
    #[serde(skip_serializing_if = "Option::is_none")]
    probe_mean_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe_cls_accuracy: Option<f64>,
}

/// The probes' labelled rows, `[CLS] text [SEP]` cut to `seq_len`; labels numbered in sorted
/// order of the training file's names (evaluation rows of another label are an error).
fn probe_sets(tok: &Tokenizer, train: &Path, eval: &Path, seq_len: usize) -> Result<(LabelledRows, LabelledRows)> {
    let (tr, ev) = (super::finetune::read_labeled(train)?, super::finetune::read_labeled(eval)?);
    let mut names: Vec<&str> = tr.iter().map(|(l, _)| l.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.len() < 2 || names.len() > electra::limits::MAX_LABELS {
        return Err(Error::arg(format!(
            "--probe-train {}: {} labels; a probe needs 2 to {}",
            train.display(),
            names.len(),
            electra::limits::MAX_LABELS
        )));
    }
    let sp = tok.special_ids();
    let encode = |rows: &[(String, String)], file: &Path| -> Result<LabelledRows> {
        let rows = rows
            .iter()
            .map(|(l, text)| {
                let y = names.binary_search(&l.as_str()).map_err(|_| {
                    Error::arg(format!("--probe-eval {}: label {l:?} is not in --probe-train", file.display()))
                })?;
                let mut ids = tok.encode(text)?;
                ids.truncate(seq_len.saturating_sub(2));
                Ok((y, [vec![sp.cls], ids, vec![sp.sep]].concat()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(LabelledRows { rows, num_labels: names.len() })
    };
    Ok((encode(&tr, train)?, encode(&ev, eval)?))
}

fn append(path: &Path, line: &impl Serialize) -> Result<()> {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).map_err(|e| Error::io(path, e))?;
    let s = serde_json::to_string(line).map_err(|e| Error::Internal(e.to_string()))?;
    writeln!(f, "{s}").map_err(|e| Error::io(path, e))
}

/// Saves the tokenizer beside a model's weights so HF `AutoTokenizer` and we can load it.
pub fn save_tokenizer_into(tok: &Tokenizer, dir: &Path) -> Result<()> {
    tok.save(dir)?;
    let cfg = serde_json::json!({
        "tokenizer_class": "ElectraTokenizer", "do_lower_case": true, "model_max_length": 512,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]"
    });
    write_atomic(&dir.join("tokenizer_config.json"), serde_json::to_string_pretty(&cfg).expect("json").as_bytes())
}

/// Saves the trainer (with the corpus cursor) and then the summary of what the run has spent up
/// to this step, which a resume continues from.
/// With several ranks every rank calls it (the save is collective; rank 0 writes).
fn checkpoint(trainer: &mut Trainer, corpus: &Corpus, run: &Path, spent: &RunSummary) -> Result<()> {
    trainer.data_cursor = Some(corpus.cursor().to_json());
    trainer.save(&run.join("checkpoint"))?;
    if trainer.rank().0 == 0 {
        spent.write(run)?;
    }
    Ok(())
}

/// The flags given on the command line, by clap id (`batch_size`, ...).
pub type Given = std::collections::BTreeSet<String>;

/// How a run treats its directory.
pub enum Mode<'a> {
    /// A new run: refused when the directory holds an earlier one.
    Fresh,
    /// A new run over an earlier one (`--overwrite`).
    Overwrite,
    /// Continue the earlier run (`--resume`); the flags given on the command line.
    Resume(&'a Given),
}

/// The entries of a run directory that show an earlier run is there.
const RUN_ENTRIES: [&str; 6] = ["run.json", "checkpoint", "summary.json", "metrics.jsonl", "final", "tokenizer"];

/// Whether two paths name the same directory (the same path, or the same directory on disk).
pub fn same_dir(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// Refuses a new run in a directory that holds an earlier one: a resumable checkpoint is not
/// replaced by accident.
fn refuse_earlier_run(dir: &Path) -> Result<()> {
    let Some(found) = RUN_ENTRIES.iter().map(|e| dir.join(e)).find(|p| p.symlink_metadata().is_ok()) else {
        return Ok(());
    };
    Err(Error::arg(format!(
        "--out {d} holds an earlier run ({f} exists): continue it with `electra pretrain --resume {d}`, \
         pass --overwrite to start a new run over it, or choose another --out",
        d = dir.display(),
        f = found.display()
    )))
}

/// The options a resumed run continues with: the checkpoint's run.json, except the flags that
/// may change between sessions (steps, threads, device, the save/log/eval cadence, the probe
/// files and the collective timeout) when given. Any other flag given with a value other than the checkpoint's
/// is refused, naming the value the checkpoint holds.
fn resume_args(args: PretrainArgs, given: &Given) -> Result<PretrainArgs> {
    let run_dir = args.out.clone();
    let args_path = run_dir.join("run.json");
    if !args_path.exists() {
        return Err(Error::arg(format!(
            "--resume {}: no run.json there; it is not a run directory of `electra pretrain`",
            run_dir.display()
        )));
    }
    let text = read_regular_utf8(&args_path, MAX_CONFIG_BYTES)?;
    let saved: PretrainArgs = serde_json::from_str(&text).map_err(|e| Error::format(&args_path, e.to_string()))?;
    let mut conflicts = Vec::new();
    let mut check = |id: &str, same: bool, ours: String, theirs: String| {
        if given.contains(id) && !same {
            conflicts.push(format!("--{} {ours} (the checkpoint holds {theirs})", id.replace('_', "-")));
        }
    };
    let paths = |v: &[PathBuf]| {
        if v.is_empty() {
            "the bundled corpus".to_string()
        } else {
            v.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" ")
        }
    };
    let opt_path = |p: &Option<PathBuf>| p.as_ref().map_or("none".to_string(), |p| p.display().to_string());
    // Values left to their defaults are compared as the defaults the run was created with.
    let lr = |a: &PretrainArgs| a.learning_rate.unwrap_or(default_lr(&a.preset));
    let temp = |a: &PretrainArgs| a.temperature.unwrap_or(default_temperature(&a.preset, a.init.is_some()));
    let frac = |a: &PretrainArgs| a.generator_fraction.unwrap_or(ElectraConfig::paper_generator_fraction(&a.preset));
    let warm = |a: &PretrainArgs, steps: u64| a.warmup_steps.unwrap_or((steps / 10).min(10_000));
    let json = |o: &Option<String>| o.as_deref().and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok());
    let obj = |o: Objective| match o {
        Objective::Electra => "electra",
        Objective::Mlm => "mlm",
    };
    check("corpus", args.corpus == saved.corpus, paths(&args.corpus), paths(&saved.corpus));
    check("preset", args.preset == saved.preset, args.preset.clone(), saved.preset.clone());
    check("generator_fraction", frac(&args) == frac(&saved), frac(&args).to_string(), frac(&saved).to_string());
    check("batch_size", args.batch_size == saved.batch_size, args.batch_size.to_string(), saved.batch_size.to_string());
    check("seq_len", args.seq_len == saved.seq_len, args.seq_len.to_string(), saved.seq_len.to_string());
    check("seed", args.seed == saved.seed, args.seed.to_string(), saved.seed.to_string());
    check("objective", args.objective == saved.objective, obj(args.objective).into(), obj(saved.objective).into());
    check("init", args.init == saved.init, opt_path(&args.init), opt_path(&saved.init));
    check("vocab", args.vocab == saved.vocab, opt_path(&args.vocab), opt_path(&saved.vocab));
    check("learning_rate", lr(&args) == lr(&saved), lr(&args).to_string(), lr(&saved).to_string());
    let (wa, ws) = (warm(&args, saved.steps), warm(&saved, saved.steps));
    check("warmup_steps", wa == ws, wa.to_string(), ws.to_string());
    check("temperature", temp(&args) == temp(&saved), temp(&args).to_string(), temp(&saved).to_string());
    let drop = |a: &PretrainArgs| format!("{:?}", a.dropout.unwrap_or_default());
    check("dropout", drop(&args) == drop(&saved), drop(&args), drop(&saved));
    check(
        "eval_batches",
        args.eval_batches == saved.eval_batches,
        args.eval_batches.to_string(),
        saved.eval_batches.to_string(),
    );
    check(
        "options",
        json(&args.options) == json(&saved.options),
        args.options.clone().unwrap_or_else(|| "none".into()),
        saved.options.clone().unwrap_or_else(|| "none".into()),
    );
    check(
        "match_flops",
        args.match_flops == saved.match_flops,
        opt_path(&args.match_flops),
        opt_path(&saved.match_flops),
    );
    check(
        "distributed",
        args.distributed == saved.distributed,
        format!("{:?}", args.distributed).to_lowercase(),
        format!("{:?}", saved.distributed).to_lowercase(),
    );
    check(
        "accumulate_steps",
        args.accumulate_steps == saved.accumulate_steps,
        args.accumulate_steps.to_string(),
        saved.accumulate_steps.to_string(),
    );
    if !conflicts.is_empty() {
        return Err(Error::arg(format!(
            "--resume {}: {} {} the checkpoint: {}; leave {} out to continue with the checkpoint's values, \
             or start a new run with another --out",
            run_dir.display(),
            if conflicts.len() == 1 { "a flag" } else { "flags" },
            if conflicts.len() == 1 { "contradicts" } else { "contradict" },
            conflicts.join(", "),
            if conflicts.len() == 1 { "it" } else { "them" }
        )));
    }
    let pick = |id: &str| given.contains(id);
    Ok(PretrainArgs {
        out: run_dir,
        steps: if pick("steps") { args.steps } else { saved.steps },
        threads: if pick("threads") { args.threads } else { saved.threads },
        device: if pick("device") { args.device } else { saved.device },
        save_every: if pick("save_every") { args.save_every } else { saved.save_every },
        log_every: if pick("log_every") { args.log_every } else { saved.log_every },
        eval_every: if pick("eval_every") { args.eval_every } else { saved.eval_every },
        probe_train: if pick("probe_train") { args.probe_train.clone() } else { saved.probe_train.clone() },
        probe_eval: if pick("probe_eval") { args.probe_eval.clone() } else { saved.probe_eval.clone() },
        collective_timeout: if pick("collective_timeout") { args.collective_timeout } else { saved.collective_timeout },
        ..saved
    })
}

/// Runs (or resumes) pre-training in `args.out`.
pub fn run(mut args: PretrainArgs, mode: Mode) -> Result<()> {
    let run_dir = args.out.clone();
    let args_path = run_dir.join("run.json");
    // Everything that can be refused is refused here, before the tokenizer, the model or any
    // file of the run is made.
    let (resume, steps_given) = match mode {
        Mode::Resume(given) => {
            args = resume_args(args, given)?;
            (true, given.contains("steps"))
        }
        Mode::Fresh => {
            refuse_earlier_run(&run_dir)?;
            (false, false)
        }
        Mode::Overwrite => (false, false),
    };
    check_out_dir(&run_dir, "--out", false)?;
    let flops_target = args.match_flops.as_ref().map(|d| RunSummary::read(d).map(|s| (d.clone(), s))).transpose()?;
    // --steps 0 of a new run is a dry run: every check below runs and the model is built, but
    // nothing is written.
    let dry_run = !resume && args.steps == 0 && flops_target.is_none();
    let corpus_paths = if args.corpus.is_empty() {
        vec![bundled("moby-dick")
            .ok_or_else(|| Error::arg("no --corpus given and the bundled data/moby-dick is missing"))?]
    } else {
        args.corpus.clone()
    };
    let tok =
        if resume { Tokenizer::from_file(run_dir.join("tokenizer"))? } else { load_tokenizer(&args, &corpus_paths)? };
    let sp = tok.special_ids();
    if !resume {
        if let Some(d) = start_config(&args, tok.vocab_size())? {
            let frac = args.generator_fraction.unwrap_or(ElectraConfig::paper_generator_fraction(&args.preset));
            check_step_size(&d, args.objective, frac, args.batch_size, args.seq_len)?;
        }
    }
    let mut trainer = if resume {
        let over = ResumeOptions { device: Some(args.device), threads: Some(args.threads), rank: None };
        Trainer::resume_with(&run_dir.join("checkpoint"), &over)?
    } else {
        let warmup = args.warmup_steps.unwrap_or((args.steps / 10).min(10_000));
        let tiny = tiny_recipe(&args.preset, args.init.is_some());
        let opts = TrainOptions {
            learning_rate: args.learning_rate.unwrap_or(default_lr(&args.preset)),
            temperature: args.temperature.unwrap_or(default_temperature(&args.preset, args.init.is_some())),
            warmup_steps: warmup,
            total_steps: args.steps,
            objective: args.objective,
            generator_hidden_fraction: args.generator_fraction,
            vocab_size: if args.init.is_some() { None } else { Some(tok.vocab_size()) },
            max_seq_len: args.seq_len,
            mask_token_id: sp.mask,
            special_token_ids: vec![sp.pad, sp.unk, sp.cls, sp.sep, sp.mask],
            seed: args.seed,
            threads: args.threads,
            device: args.device,
            simd: args.simd,
            distributed: args.distributed,
            accumulate_steps: args.accumulate_steps,
            collective_timeout_s: args.collective_timeout,
            dropout: args.dropout.unwrap_or_default(),
            bias_correction: tiny,
            disc_label_smoothing: if tiny && args.objective == Objective::Electra { TINY_LABEL_SMOOTHING } else { 0.0 },
            rtd_head: (tiny && args.objective == Objective::Electra).then_some(electra::RtdHead::Cls),
            tie_generator_output: (tiny && args.objective == Objective::Electra).then_some(false),
            ..Default::default()
        };
        let opts = match &args.options {
            Some(json) => merge_options(&opts, json)?,
            None => opts,
        };
        let init = args.init.as_ref().map_or(args.preset.clone(), |p| p.display().to_string());
        let t = Trainer::new(&init, opts)?;
        if dry_run {
            electra::data::text_files(&corpus_paths)?;
            if t.rank().0 == 0 {
                eprintln!("{}", plan_line(&args, t.params().numel(), &corpus_paths, tok.vocab_size()));
                eprintln!("--steps 0: a dry run; the arguments check out and nothing was written");
            }
            return Ok(());
        }
        create_dir(&run_dir)?;
        if t.rank().0 == 0 {
            write_atomic(&args_path, serde_json::to_string_pretty(&args).expect("json").as_bytes())?;
            save_tokenizer_into(&tok, &run_dir.join("tokenizer"))?;
            // Over an earlier run (--overwrite): its log and spending are not this run's.
            let _ = std::fs::remove_file(run_dir.join("metrics.jsonl"));
            let _ = std::fs::remove_file(run_dir.join("summary.json"));
        }
        t
    };
    if resume {
        // --steps is the run's total: below the checkpoint's step it cannot be reached.
        if steps_given && args.steps < trainer.step {
            return Err(Error::arg(format!(
                "--steps {} is below the checkpoint's step {}; give a total of at least {} (or leave --steps out)",
                args.steps, trainer.step, trainer.step
            )));
        }
        args.steps = args.steps.max(trainer.step);
        // The next resume continues with what this one was given (e.g. a longer --steps).
        if trainer.rank().0 == 0 {
            write_atomic(&args_path, serde_json::to_string_pretty(&args).expect("json").as_bytes())?;
        }
    }
    // Each rank reads its own shard of the training documents (rank 0 also the held-out ones).
    let (rank, world) = trainer.rank();
    let lead = rank == 0;
    let copts = CorpusOptions {
        max_seq_len: args.seq_len,
        seed: args.seed,
        num_shards: world,
        shard_index: rank,
        ..Default::default()
    };
    let mut corpus = Corpus::open(&corpus_paths, copts, &tok)?;
    if let Some(c) = &trainer.data_cursor {
        corpus.restore(&electra::data::corpus::Cursor::from_json(c)?)?;
    }
    let eval_set = if lead { corpus.eval_batches(args.batch_size, Some(args.eval_batches))? } else { Vec::new() };

    if let Some((other, target)) = &flops_target {
        // Price a step at the earlier run's average real tokens per step (short examples and
        // padding make it less than batch x seq_len).
        let n = if target.steps > 0 && target.tokens > 0 {
            (target.tokens as f64 / target.steps as f64).round() as usize
        } else {
            args.batch_size * args.seq_len
        };
        let masked = (n as f64 * trainer.opts.mask_prob).round() as usize;
        let per_step = trainer.step_flops(n, args.seq_len, masked);
        args.steps = (target.flops / per_step).round().max(1.0) as u64;
        if args.warmup_steps.is_none() && !resume {
            trainer.opts.warmup_steps = (args.steps / 10).min(10_000);
        }
        eprintln!(
            "matching {:.3e} FLOPs of {}: {} steps of {:.3e} FLOPs",
            target.flops,
            other.display(),
            args.steps,
            per_step
        );
    }
    // The schedule follows the (possibly extended) step budget, unless --options fixes it.
    let fixed_total = args
        .options
        .as_deref()
        .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok())
        .is_some_and(|v| v.get("total_steps").is_some());
    if !fixed_total {
        trainer.opts.total_steps = args.steps;
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let cancel = trainer.cancel_flag();
        let _ = ctrlc::set_handler(move || {
            // Ranks stop together: a cancelled step fails on every rank (the first Ctrl-C of
            // a single process lets the running step finish instead).
            if stop.swap(true, Ordering::SeqCst) || world > 1 {
                cancel.store(true, Ordering::SeqCst); // a second Ctrl-C interrupts the running step
            }
        });
    }
    let metrics = run_dir.join("metrics.jsonl");
    let probes = match (&args.probe_train, &args.probe_eval) {
        (Some(tr), Some(ev)) => Some(probe_sets(&tok, tr, ev, args.seq_len)?),
        (None, None) => None,
        _ => return Err(Error::arg("--probe-train and --probe-eval go together")),
    };
    let eval_now = |trainer: &Trainer| -> Result<Option<(EvalStats, String)>> {
        if eval_set.is_empty() {
            return Ok(None);
        }
        let model = Arc::new(trainer.model()?);
        let e = evaluate(model.clone(), &trainer.opts, &eval_set, 1234)?;
        let o = &trainer.opts;
        let sopts = SessionOptions {
            device: o.device,
            threads: o.threads,
            max_memory_bytes: o.max_memory_bytes,
            simd: o.simd,
            tf32: o.tf32,
            ..Default::default()
        };
        let mut s = Session::with_options(model, &sopts)?;
        let rep = representation_stats(&mut s, &eval_set)?;
        let probe = probes.as_ref().map(|(tr, ev)| linear_probes(&mut s, tr, ev)).transpose()?;
        append(
            &metrics,
            &EvalLine {
                step: trainer.step,
                eval_disc_auc: e.disc_auc,
                eval_disc_accuracy: e.disc_accuracy,
                eval_mlm_accuracy: e.mlm_accuracy,
                eval_tokens: e.tokens,
                eval_cls_cosine: rep.cls_cosine,
                eval_attention_entropy: rep.attention_entropy.clone(),
                eval_top_direction_share: rep.top_direction_share,
                probe_mean_accuracy: probe.map(|p| p.mean_pooled),
                probe_cls_accuracy: probe.map(|p| p.cls),
            },
        )?;
        let entropy = rep.attention_entropy.iter().map(|h| format!("{h:.2}")).collect::<Vec<_>>().join(" ");
        let mut line = format!(
            "[CLS] cosine {:.3}, attention entropy per layer {entropy}, top-direction share {:.2}",
            rep.cls_cosine, rep.top_direction_share
        );
        if let Some(p) = probe {
            line += &format!(", probe accuracy mean-pooled {:.3} [CLS] {:.3}", p.mean_pooled, p.cls);
        }
        Ok(Some((e, line)))
    };
    let params = trainer.params().numel();
    if world > 1 && lead {
        eprintln!(
            "electra pretrain: {world} ranks ({}), {} x {} rows per step",
            trainer.collective().map_or(String::new(), |c| c.describe()),
            world,
            args.batch_size
        );
    }
    if lead {
        eprintln!("{}", plan_line(&args, params, &corpus_paths, tok.vocab_size()));
    }
    let first_eval = if trainer.step == 0 { eval_now(&trainer)? } else { None };
    match &first_eval {
        Some((EvalStats { disc_auc: Some(auc), .. }, line)) => {
            eprintln!("step 0: held-out discriminator AUC {auc:.3}; {line}")
        }
        Some((e, line)) => eprintln!("step 0: held-out MLM accuracy {:.3}; {line}", e.mlm_accuracy),
        None => {}
    }
    let first_eval = first_eval.map(|(e, _)| e);
    let bar = if lead { indicatif::ProgressBar::new(args.steps) } else { indicatif::ProgressBar::hidden() };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed_precise}<{eta_precise}]")
            .expect("template")
            .progress_chars("=> "),
    );
    bar.set_position(trainer.step);
    let plain = lead && bar.is_hidden(); // no terminal: print log lines instead
    let hybrid = trainer.opts.disc_mlm_weight > 0.0;
    let contrast = trainer.opts.cls_contrast_weight > 0.0;
    let started = Instant::now();
    let (mut tokens, mut window_start, mut window_tokens) = (0usize, Instant::now(), 0usize);
    let mut last: Option<StepStats> = None;
    // What the run has spent: continued from the summary saved with the checkpoint on resume.
    let mut spent = match RunSummary::read(&run_dir) {
        Ok(before) if resume => before,
        _ => RunSummary {
            objective: args.objective,
            steps: trainer.step,
            tokens: 0,
            flops: 0.0,
            seconds: 0.0,
            parameters: params,
            eval_disc_auc: None,
            eval_mlm_accuracy: None,
        },
    };
    let seconds_before = spent.seconds;
    let mut interrupted = false;
    while trainer.step < args.steps {
        if stop.load(Ordering::SeqCst) {
            interrupted = true;
            break;
        }
        let batch = corpus.next_batch(args.batch_size)?;
        let s = match trainer.train_step(&batch.as_model_input()) {
            Err(Error::Cancelled) => {
                interrupted = true;
                break;
            }
            r => r?,
        };
        tokens += s.tokens;
        spent.steps = s.step;
        spent.tokens += s.tokens as u64;
        spent.flops += trainer.step_flops(s.tokens, batch.seq_len, s.masked);
        spent.seconds = seconds_before + started.elapsed().as_secs_f64();
        window_tokens += s.tokens;
        let tps = window_tokens as f64 / window_start.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(s.step);
        bar.set_message(format!("loss {:.3} disc acc {:.3} {:.0} tok/s", s.loss, s.disc_accuracy, tps));
        if lead && (s.step % args.log_every.max(1) == 0 || s.step == args.steps) {
            append(
                &metrics,
                &TrainLine {
                    step: s.step,
                    loss: s.loss,
                    mlm_loss: s.mlm_loss,
                    disc_loss: s.disc_loss,
                    disc_accuracy: s.disc_accuracy,
                    mlm_accuracy: s.mlm_accuracy,
                    disc_mlm_loss: hybrid.then_some(s.disc_mlm_loss),
                    disc_mlm_accuracy: hybrid.then_some(s.disc_mlm_accuracy),
                    cls_contrast_loss: contrast.then_some(s.cls_contrast_loss),
                    cls_contrast_accuracy: contrast.then_some(s.cls_contrast_accuracy),
                    learning_rate: s.learning_rate,
                    grad_norm: s.grad_norm,
                    tokens_per_second: tps,
                    elapsed_seconds: started.elapsed().as_secs_f64(),
                    allreduce_seconds: (world > 1).then_some(s.allreduce_seconds),
                    collective_seconds: (world > 1).then_some(s.collective_seconds),
                },
            )?;
            if plain {
                let mut dm = if hybrid { format!(", disc mlm {:.4}", s.disc_mlm_loss) } else { String::new() };
                if contrast {
                    dm += &format!(", [CLS] {:.4}", s.cls_contrast_loss);
                }
                eprintln!(
                    "step {}/{}: loss {:.4} (mlm {:.4}, disc {:.4}{dm}) disc acc {:.3} lr {:.2e} {:.0} tok/s",
                    s.step, args.steps, s.loss, s.mlm_loss, s.disc_loss, s.disc_accuracy, s.learning_rate, tps
                );
            }
            window_start = Instant::now();
            window_tokens = 0;
        }
        if args.eval_every > 0 && s.step % args.eval_every == 0 && s.step < args.steps {
            if let Some((e, line)) = eval_now(&trainer)? {
                let msg = match (e.disc_auc, e.disc_accuracy) {
                    (Some(auc), Some(acc)) => format!(
                        "step {}: held-out discriminator AUC {auc:.3}, accuracy {acc:.3}, generator MLM accuracy {:.3}; {line}",
                        s.step, e.mlm_accuracy
                    ),
                    _ => format!("step {}: held-out MLM accuracy {:.3}; {line}", s.step, e.mlm_accuracy),
                };
                if plain {
                    eprintln!("{msg}");
                } else {
                    bar.println(msg);
                }
            }
        }
        if args.save_every > 0 && s.step % args.save_every == 0 {
            checkpoint(&mut trainer, &corpus, &run_dir, &spent)?;
        }
        last = Some(s);
    }
    bar.finish_and_clear();
    checkpoint(&mut trainer, &corpus, &run_dir, &spent)?;
    if !lead {
        return if interrupted { Err(Error::Cancelled) } else { Ok(()) };
    }
    if interrupted {
        eprintln!(
            "interrupted at step {}: checkpoint saved; continue with `electra pretrain --out {} --resume {}`",
            trainer.step,
            run_dir.display(),
            run_dir.display()
        );
        return Err(Error::Cancelled);
    }
    let final_eval = eval_now(&trainer)?.map(|(e, line)| {
        eprintln!("step {}: {line}", trainer.step);
        e
    });
    let final_dir = run_dir.join("final");
    // The tokenizer goes into the same unit as the weights: a kill leaves the old final/ or a
    // complete new one.
    trainer.export_with(&final_dir, |tmp| {
        for sub in ["discriminator", "generator"] {
            if tmp.join(sub).exists() {
                save_tokenizer_into(&tok, &tmp.join(sub))?;
            }
        }
        Ok(())
    })?;
    plot_metrics(&metrics, &run_dir.join("curves.svg"))?;
    let secs = started.elapsed().as_secs_f64();
    spent.seconds = seconds_before + secs;
    spent.eval_disc_auc = final_eval.and_then(|e| e.disc_auc);
    spent.eval_mlm_accuracy = final_eval.map(|e| e.mlm_accuracy);
    spent.write(&run_dir)?;
    eprintln!("pre-training FLOPs: {:.3e} (matrix products; summary.json)", spent.flops);
    if let Some(s) = last {
        eprintln!(
            "done: {} steps in {:.0} s ({:.0} tokens/s); last loss {:.4}",
            trainer.step,
            secs,
            tokens as f64 / secs,
            s.loss
        );
    }
    match (first_eval.and_then(|e| e.disc_auc), final_eval) {
        (Some(a), Some(EvalStats { disc_auc: Some(b), .. })) => {
            eprintln!("held-out discriminator AUC: {a:.3} at the start -> {b:.3} at the end")
        }
        (_, Some(EvalStats { disc_auc: Some(b), .. })) => eprintln!("held-out discriminator AUC {b:.3}"),
        (_, Some(e)) => eprintln!("held-out MLM accuracy {:.3}", e.mlm_accuracy),
        _ => {}
    }
    eprintln!(
        "model: {} (pair layout with tokenizer), curves: {}",
        final_dir.display(),
        run_dir.join("curves.svg").display()
    );
    Ok(())
}

/// The line that says what a run will do (scripts/scaling.sh reads its parameter count).
fn plan_line(args: &PretrainArgs, params: usize, corpus: &[PathBuf], vocab: usize) -> String {
    format!(
        "electra pretrain: {} objective, {:.2}M parameters, {} steps of {}x{} tokens, corpus {:?}, vocab {}",
        match args.objective {
            Objective::Electra => "electra",
            Objective::Mlm => "mlm",
        },
        params as f64 / 1e6,
        args.steps,
        args.batch_size,
        args.seq_len,
        corpus,
        vocab
    )
}

/// A flat line at a series' step-0 value over its steps (the random-init baseline of a probe),
/// in a lighter shade of its colour.
fn baseline(name: &str, points: &[(f64, f64)], (r, g, b): (u8, u8, u8)) -> Option<plot::Series> {
    let &(first, y) = points.first().filter(|p| p.0 == 0.0)?;
    let last = points.last().map_or(first, |p| p.0);
    let light = |c: u8| c / 2 + 127;
    Some(plot::Series {
        name: name.into(),
        points: vec![(first, y), (last.max(first + 1.0), y)],
        color: (light(r), light(g), light(b)),
        markers: false,
    })
}

/// Draws metrics.jsonl as curves.svg: training losses and held-out metrics against the step.
pub fn plot_metrics(metrics: &Path, out: &Path) -> Result<()> {
    let text = read_text(metrics, MAX_TEXT_FILE_BYTES, "metrics.jsonl")?;
    let (mut mlm, mut disc, mut auc, mut acc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut cosine, mut entropy, mut probe_mean, mut probe_cls) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let step = v["step"].as_f64().unwrap_or(0.0);
        if let Some(x) = v["eval_mlm_accuracy"].as_f64() {
            if let Some(a) = v["eval_disc_auc"].as_f64() {
                auc.push((step, a));
            }
            acc.push((step, x));
            for (key, series) in [
                ("eval_cls_cosine", &mut cosine),
                ("probe_mean_accuracy", &mut probe_mean),
                ("probe_cls_accuracy", &mut probe_cls),
            ] {
                if let Some(y) = v[key].as_f64() {
                    series.push((step, y));
                }
            }
            if let Some(h) = v["eval_attention_entropy"].as_array().filter(|h| !h.is_empty()) {
                entropy.push((step, h.iter().filter_map(|x| x.as_f64()).sum::<f64>() / h.len() as f64));
            }
        } else {
            mlm.push((step, v["mlm_loss"].as_f64().unwrap_or(f64::NAN)));
            disc.push((step, v["disc_loss"].as_f64().unwrap_or(f64::NAN)));
        }
    }
    let series = |name: &str, points, color, markers| plot::Series { name: name.into(), points, color, markers };
    let svg = plot::render(&[
        plot::Panel {
            title: "training losses".into(),
            left: plot::YAxis {
                label: "generator MLM cross-entropy".into(),
                range: None,
                series: vec![series("generator MLM", mlm, (31, 119, 180), false)],
            },
            // The discriminator's BCE sits near 0.1-0.7 while the MLM loss starts near ln(vocab):
            // each on its own scale.
            right: Some(plot::YAxis {
                label: "discriminator BCE".into(),
                range: None,
                series: vec![series("discriminator BCE", disc, (214, 39, 40), false)],
            }),
        },
        plot::Panel {
            title: "held-out".into(),
            left: plot::YAxis {
                label: "AUC / accuracy".into(),
                range: Some((0.0, 1.0)),
                series: vec![
                    series("disc ROC AUC", auc, (44, 160, 44), true),
                    series("gen MLM accuracy", acc, (148, 103, 189), true),
                ],
            },
            right: None,
        },
        plot::Panel {
            title: "representations (held-out; probes on frozen features)".into(),
            left: plot::YAxis {
                label: "probe accuracy / [CLS] cosine".into(),
                range: Some((0.0, 1.0)),
                series: [
                    baseline("probe mean-pooled, step 0 (random init)", &probe_mean, (255, 127, 14)),
                    baseline("probe [CLS], step 0 (random init)", &probe_cls, (23, 190, 207)),
                ]
                .into_iter()
                .flatten()
                .chain([
                    series("probe mean-pooled", probe_mean, (255, 127, 14), true),
                    series("probe [CLS]", probe_cls, (23, 190, 207), true),
                    series("[CLS] pairwise cosine", cosine, (127, 127, 127), true),
                ])
                .collect(),
            },
            right: Some(plot::YAxis {
                label: "attention entropy, mean of layers (nats)".into(),
                range: None,
                series: vec![series("attention entropy", entropy, (188, 189, 34), true)],
            }),
        },
    ])?;
    write_atomic(out, svg.as_bytes())
}

/// `base` with the keys of the JSON object `json` replaced; unknown keys and bad values are
/// errors that name them.
fn merge_options(base: &TrainOptions, json: &str) -> Result<TrainOptions> {
    electra::options::merge_json(base, json, "--options")
}
