//! HF model directories (`config.json` + `model.safetensors`) and the pre-training pair layout
//! (`DIR/discriminator/` and `DIR/generator/`, each an HF directory).

use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::io::atomic::{check_path, commit_dir, create_dir, resolve, write_atomic};
use crate::io::safetensors::{write_tensors, TensorIndex, Values};
use crate::layers::int8::{quantize_weight, QuantWeight, QuantizedWeights};
use crate::model::{Model, Towers};
use crate::params::{ParamId, ParamTable};
use crate::quant::{QuantTensor, WeightFormat, SCALE_SUFFIX};
use safetensors::Dtype;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// What a single HF directory holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// `ElectraForPreTraining`.
    Discriminator,
    /// `ElectraForMaskedLM`.
    Generator,
    /// `ElectraForSequenceClassification`.
    Classifier,
}

const WEIGHTS: &str = "model.safetensors";
const CONFIG: &str = "config.json";

/// How strictly [`load_with`] reads a model.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadOptions {
    /// Accept tensors in a file that the config does not account for (by default an error:
    /// a config that says 1 layer over a 2-layer file would silently drop layer 1).
    pub allow_unused_tensors: bool,
    /// `"int8"`: quantize an f32 model's Linear weights as it loads (as `electra quantize` does;
    /// see [`crate::quant`]). `"f32"` (the default) loads the weights as stored: a model saved
    /// int8 stays int8 (it is never dequantized).
    pub quantize: WeightFormat,
}

impl LoadOptions {
    /// Parses a JSON object (`None` or empty: the defaults), e.g. `{"allow_unused_tensors": true}`
    /// or `{"quantize": "int8"}`.
    pub fn from_json(json: Option<&str>) -> Result<Self> {
        match json.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(Self::default()),
            // Not serde_json::from_str: it reads a struct from an array (`[]`) as well.
            Some(s) => crate::options::parse_json(s),
        }
    }
}

/// One HF tower: its config and its weights file, whose header has been validated and whose
/// tensors are read as the model is filled.
struct HfDir<'a> {
    config: ElectraConfig,
    file: TensorIndex<'a>,
    role: Role,
    /// Whether config.json marks the file as int8-quantized.
    int8: bool,
}

fn read_dir(dir: &Path, want: Option<Role>) -> Result<HfDir<'static>> {
    let config = ElectraConfig::from_file(&dir.join(CONFIG))?;
    let file = TensorIndex::open(&dir.join(WEIGHTS))?;
    classify(config, file, dir, want)
}

/// The role (and int8-ness) of a tower from its config and tensors; `dir` names it in messages.
fn classify<'a>(config: ElectraConfig, file: TensorIndex<'a>, dir: &Path, want: Option<Role>) -> Result<HfDir<'a>> {
    let int8 = crate::quant::config_is_int8(&config.extra, &dir.join(CONFIG))?;
    let has = |prefix: &str| file.tensors.keys().any(|k| k.starts_with(prefix));
    let arch = |a: &str| config.architectures.iter().any(|x| x == a);
    let role = if has("classifier.") || arch("ElectraForSequenceClassification") {
        Role::Classifier
    } else if has("discriminator_predictions.") || (arch("ElectraForPreTraining") && !has("generator_predictions.")) {
        Role::Discriminator
    } else if has("generator_predictions.") || arch("ElectraForMaskedLM") {
        Role::Generator
    } else {
        return Err(Error::format(
            dir.join(WEIGHTS),
            "no discriminator_predictions.*, generator_predictions.* or classifier.* tensors: not an \
             ElectraForPreTraining, ElectraForMaskedLM or ElectraForSequenceClassification checkpoint",
        ));
    };
    if let Some(w) = want {
        if w != role {
            return Err(Error::format(dir.join(WEIGHTS), format!("expected a {w:?} checkpoint, found a {role:?}")));
        }
    }
    Ok(HfDir { config, file, role, int8 })
}

/// The tensors an int8 model holds as int8 ([`crate::quant::quantized_tensors`]), by offset, and
/// where their int8 form comes from.
struct Int8Plan {
    tensors: HashMap<usize, QuantTensor>,
    /// True: the file holds them as `I8` with their scales. False: the file holds them as floats,
    /// quantized as they are read (the load option `quantize: int8`).
    stored: bool,
}

impl Int8Plan {
    fn new(model: &Model, stored: bool) -> Self {
        let tensors = crate::quant::quantized_tensors(&model.towers).into_iter().map(|t| (t.span.off, t)).collect();
        Int8Plan { tensors, stored }
    }
}

/// Reads every tensor a tower lists from its file into the model's parameters, checking names,
/// shapes and finiteness. With an `int8` plan, the tensors it lists go into `int8` instead (read
/// as `I8` with their `_scale` tensors, or quantized as they are read) and their f32 spans are
/// never written, so their pages never become resident.
fn fill(
    model: &mut Model,
    names: &[(String, ParamId)],
    file: &TensorIndex,
    plan: Option<&Int8Plan>,
    int8: &mut Vec<(usize, QuantWeight)>,
) -> Result<()> {
    for (hf, id) in names {
        let shape = model.params.info(*id).shape.clone();
        let off = model.params.span(*id).off;
        if let Some(t) = plan.and_then(|p| p.tensors.get(&off).map(|t| (t, p.stored))) {
            // A pair sharing its embeddings lists the shared tensors in both towers.
            if !int8.iter().any(|(o, _)| *o == off) {
                let w = match t {
                    (_, true) => read_quantized(file, hf, &shape)?,
                    (t, false) => quantize_read(file, hf, &shape, t, &model.params.info(*id).name)?,
                };
                int8.push((off, w));
            }
            continue;
        }
        file.expect(hf, &shape)?;
        let dst = model.params.get_mut(*id);
        file.read_f32(hf, 0, dst)?;
        if let Some(bad) = dst.iter().position(|v| !v.is_finite()) {
            return Err(Error::format(&file.path, format!("tensor {hf} holds a non-finite value at element {bad}")));
        }
    }
    Ok(())
}

/// Elements converted per block when a tensor is read through a buffer of our own.
const BLOCK: usize = 1 << 18;

/// Reads the float tensor `name` (of `shape`) and quantizes it per row as
/// [`crate::quant::quantize`] does, a block of rows at a time: only the int8 result is kept, never
/// the f32 tensor. `param` (the canonical name) names it in quantization errors.
fn quantize_read(file: &TensorIndex, name: &str, shape: &[usize], t: &QuantTensor, param: &str) -> Result<QuantWeight> {
    file.expect(name, shape)?;
    let (rows, cols) = (t.rows, t.cols);
    let n = crate::alloc::count(&[rows, cols], name)?;
    if n != t.span.len {
        return Err(Error::Internal(format!("{param}: {rows} x {cols} int8 rows for a tensor of {}", t.span.len)));
    }
    let per = (BLOCK / cols.max(1)).max(1).min(rows);
    let mut buf = crate::alloc::try_vec(per * cols, 0f32, name)?;
    let mut q = Vec::new();
    q.try_reserve_exact(n).map_err(|_| crate::alloc::oom::<i8>(n, "int8 weight"))?;
    let mut scale = Vec::new();
    scale.try_reserve_exact(rows).map_err(|_| crate::alloc::oom::<f32>(rows, "int8 weight scales"))?;
    let mut r = 0;
    while r < rows {
        let k = per.min(rows - r);
        let block = &mut buf[..k * cols];
        file.read_f32(name, r * cols, block)?;
        if let Some(bad) = block.iter().position(|v| !v.is_finite()) {
            return Err(Error::format(
                &file.path,
                format!("tensor {name} holds a non-finite value at element {}", r * cols + bad),
            ));
        }
        let w = quantize_weight(block, k, cols).map_err(|e| Error::arg(format!("quantizing {param}: {e}")))?;
        q.extend_from_slice(&w.q);
        scale.extend_from_slice(&w.scale);
        r += k;
    }
    Ok(QuantWeight { q, scale, dout: rows, din: cols })
}

/// One int8 weight `[dout, din]` and its per-channel scales, checked (scales finite and ≥ 0,
/// values in −127..=127).
fn read_quantized(file: &TensorIndex, name: &str, shape: &[usize]) -> Result<QuantWeight> {
    let qe = file.expect_i8(name, shape)?;
    let (dout, din) = match *shape {
        [o, i] => (o, i),
        _ => return Err(Error::format(&file.path, format!("quantized tensor {name} must be 2-D, not {shape:?}"))),
    };
    let sname = format!("{name}{SCALE_SUFFIX}");
    file.expect(&sname, &[dout])?;
    let mut scale = crate::alloc::try_vec(dout, 0f32, &sname)?;
    file.read_f32(&sname, 0, &mut scale)?;
    if let Some(i) = scale.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(Error::format(
            &file.path,
            format!("tensor {sname} element {i} is {}: scales must be finite and >= 0", scale[i]),
        ));
    }
    let mut q = crate::alloc::try_vec(qe.numel, 0i8, name)?;
    file.read_i8(name, 0, &mut q)?;
    if q.contains(&i8::MIN) {
        return Err(Error::format(
            &file.path,
            format!("tensor {name} holds -128: int8 weights are symmetric (-127..=127)"),
        ));
    }
    Ok(QuantWeight { q, scale, dout, din })
}

/// Tensors HF itself drops without a word: position/token-type id buffers old checkpoints
/// carry, and the generator's output weight when it is tied to the word embeddings.
fn tolerated(name: &str) -> bool {
    name.ends_with("embeddings.position_ids")
        || name.ends_with("embeddings.token_type_ids")
        || name == "generator_lm_head.weight"
}

/// Refuses tensors of `file` that `names` (what the config accounts for) does not list.
fn check_unused(
    file: &TensorIndex,
    names: &[(String, ParamId)],
    config: &ElectraConfig,
    opts: &LoadOptions,
) -> Result<()> {
    if opts.allow_unused_tensors {
        return Ok(());
    }
    let used: HashSet<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    // A scale is used when its weight is.
    let is_scale = |n: &str| n.strip_suffix(SCALE_SUFFIX).is_some_and(|w| used.contains(w));
    let mut unused: Vec<&str> = file
        .tensors
        .keys()
        .map(String::as_str)
        .filter(|n| !used.contains(n) && !tolerated(n) && !is_scale(n))
        .collect();
    if unused.is_empty() {
        return Ok(());
    }
    unused.sort_unstable();
    let first = unused.iter().take(3).copied().collect::<Vec<_>>().join(", ");
    let more = if unused.len() > 3 { ", ..." } else { "" };
    let hint = if unused.iter().any(|n| n.contains("encoder.layer.")) {
        format!("the config says num_hidden_layers={}; ", config.num_hidden_layers)
    } else {
        String::new()
    };
    let file_name = file.path.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    Err(Error::format(
        &file.path,
        format!(
            "{file_name} has {} tensors the config does not use ({first}{more}): {hint}pass allow_unused_tensors \
             to load anyway",
            unused.len()
        ),
    ))
}

/// Whether the embedding tensors of `a` are all in `b` with the same shapes and values (compared
/// as read, in blocks: neither file's tensors are held whole).
fn embeddings_equal(a: &TensorIndex, b: &TensorIndex) -> Result<bool> {
    let mut any = false;
    for (name, ea) in
        a.tensors.iter().filter(|(n, _)| n.starts_with("electra.embeddings.") && !n.ends_with("position_ids"))
    {
        any = true;
        let Some(eb) = b.tensors.get(name) else { return Ok(false) };
        if ea.shape != eb.shape || (ea.dtype == Dtype::I8) != (eb.dtype == Dtype::I8) {
            return Ok(false);
        }
        let block = BLOCK.min(ea.numel);
        let mut at = 0;
        if ea.dtype == Dtype::I8 {
            let (mut x, mut y) = (crate::alloc::try_vec(block, 0i8, name)?, crate::alloc::try_vec(block, 0i8, name)?);
            while at < ea.numel {
                let k = block.min(ea.numel - at);
                a.read_i8(name, at, &mut x[..k])?;
                b.read_i8(name, at, &mut y[..k])?;
                if x[..k] != y[..k] {
                    return Ok(false);
                }
                at += k;
            }
        } else {
            let (mut x, mut y) = (crate::alloc::try_vec(block, 0f32, name)?, crate::alloc::try_vec(block, 0f32, name)?);
            while at < ea.numel {
                let k = block.min(ea.numel - at);
                a.read_f32(name, at, &mut x[..k])?;
                b.read_f32(name, at, &mut y[..k])?;
                if x[..k] != y[..k] {
                    return Ok(false);
                }
                at += k;
            }
        }
    }
    Ok(any)
}

/// Loads a model from `path`: an HF directory (discriminator, generator or classifier), the pair
/// layout (`path/discriminator`, `path/generator`, either or both), or a `model.safetensors` file
/// with its `config.json` beside it. In a pair whose generator embeddings equal the
/// discriminator's, they become one shared set of tensors.
///
/// Tensors the config does not account for are an error (see [`load_with`]).
pub fn load(path: &Path) -> Result<Model> {
    load_with(path, &LoadOptions::default())
}

/// [`load`] with options: `allow_unused_tensors` accepts files holding tensors the config
/// does not use; `quantize: int8` quantizes an f32 model as it loads.
///
/// Memory: the header of each `model.safetensors` is validated first, then each tensor is read
/// (positioned reads of at most 1 MiB, converted from little-endian) straight into its place in
/// the model's one parameter buffer: the peak is about the model's f32 size, with no copy of the
/// file. The file is read, not memory-mapped, so a file truncated or rewritten while it loads is
/// at worst a format error or other (finite, checked) weights, never a SIGBUS in the process.
/// With `quantize: int8`, the tensors to quantize are read and quantized a block of rows at a
/// time and their f32 spans are never written: the peak is about the int8 model's size.
pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Model> {
    load_stored(path, opts)
}

/// Marks `model` int8 with the weights read (or quantized), when there is a plan.
fn finish(mut model: Model, plan: Option<Int8Plan>, int8: Vec<(usize, QuantWeight)>) -> Result<Model> {
    if let Some(plan) = plan {
        // Every tensor of the plan is listed by a tower; one that was not would be left zero.
        if let Some(off) = plan.tensors.keys().find(|off| !int8.iter().any(|(o, _)| o == *off)) {
            return Err(Error::Internal(format!("no tower lists the int8 tensor at offset {off}")));
        }
        model.quant = Some(Arc::new(QuantizedWeights::new(int8)));
    }
    Ok(model)
}

/// The int8 plan of a model whose files are `int8_files` (or not), loaded with `opts`.
fn plan(model: &Model, int8_files: bool, opts: &LoadOptions) -> Option<Int8Plan> {
    (int8_files || opts.quantize == WeightFormat::Int8).then(|| Int8Plan::new(model, int8_files))
}

/// [`load_with`]'s work.
fn load_stored(path: &Path, opts: &LoadOptions) -> Result<Model> {
    check_path(path, "model path")?;
    if path.is_file() {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        return load_with(dir, opts);
    }
    // A save killed while moving its files into place is finished first (see io::atomic).
    let path = &resolve(path)?;
    if !path.exists() {
        return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory")));
    }
    if path.join(CONFIG).exists() {
        return load_tower(read_dir(path, None)?, opts);
    }
    let (dp, gp) = (path.join("discriminator"), path.join("generator"));
    let disc = dp.join(CONFIG).exists().then(|| read_dir(&dp, Some(Role::Discriminator))).transpose()?;
    let gen = gp.join(CONFIG).exists().then(|| read_dir(&gp, Some(Role::Generator))).transpose()?;
    if disc.is_none() && gen.is_none() {
        return Err(Error::format(
            path,
            "no config.json here, nor discriminator/config.json or generator/config.json (expected an HF model \
             directory or the pair layout)",
        ));
    }
    if let (Some(d), Some(g)) = (&disc, &gen) {
        if d.int8 != g.int8 {
            return Err(Error::format(
                path,
                "one of discriminator/ and generator/ is int8-quantized and the other is not: quantize both",
            ));
        }
    }
    let int8_files = disc.as_ref().or(gen.as_ref()).is_some_and(|d| d.int8);
    let share = match (&disc, &gen) {
        (Some(d), Some(g)) => embeddings_equal(&d.file, &g.file)?,
        _ => false,
    };
    let mut model = Model::new(disc.as_ref().map(|d| d.config.clone()), gen.as_ref().map(|g| g.config.clone()), share)?;
    let (disc_names, gen_names) = match &model.towers {
        Towers::Pair { disc, gen, .. } => (disc.names.clone(), gen.names.clone()),
        Towers::Discriminator(d) => (d.names.clone(), Vec::new()),
        Towers::Generator(g) => (Vec::new(), g.names.clone()),
        Towers::Classifier(_) => (Vec::new(), Vec::new()),
    };
    let plan = plan(&model, int8_files, opts);
    let mut int8 = Vec::new();
    if let Some(d) = &disc {
        fill(&mut model, &disc_names, &d.file, plan.as_ref(), &mut int8)?;
        check_unused(&d.file, &disc_names, &d.config, opts)?;
    }
    if let Some(g) = &gen {
        fill(&mut model, &gen_names, &g.file, plan.as_ref(), &mut int8)?;
        check_unused(&g.file, &gen_names, &g.config, opts)?;
    }
    finish(model, plan, int8)
}

/// A model of the one tower `d` holds.
fn load_tower(d: HfDir, opts: &LoadOptions) -> Result<Model> {
    let mut model = match d.role {
        Role::Discriminator => Model::new(Some(d.config.clone()), None, false)?,
        Role::Generator => Model::new(None, Some(d.config.clone()), false)?,
        Role::Classifier => Model::new_classifier(d.config.clone())?,
    };
    let names = tower_names(&model.towers).concat();
    let plan = plan(&model, d.int8, opts);
    let mut int8 = Vec::new();
    fill(&mut model, &names, &d.file, plan.as_ref(), &mut int8)?;
    check_unused(&d.file, &names, &d.config, opts)?;
    finish(model, plan, int8)
}

/// Loads one HF tower (an `ElectraForPreTraining`, `ElectraForMaskedLM` or
/// `ElectraForSequenceClassification` checkpoint, f32 or int8) from its `config.json` and
/// `model.safetensors` held in memory, as an app holds a bundled asset. Both are checked as
/// strictly as files are (the same size caps, header checks, names, shapes, finiteness), and the
/// weights are copied into the model, which owns them: the caller's buffers may be freed or
/// changed as soon as this returns. The copy is needed anyway (the model's one flat parameter
/// buffer orders and converts tensors differently from the file) and is the only one: each
/// tensor goes straight from `weights` to its place. Messages name the parts
/// `<memory>/config.json` and `<memory>/model.safetensors`.
pub fn load_from_memory(config_json: &[u8], weights: &[u8], opts: &LoadOptions) -> Result<Model> {
    let dir = Path::new("<memory>");
    let cfg_path = dir.join(CONFIG);
    if config_json.len() as u64 > crate::io::read::MAX_CONFIG_BYTES {
        return Err(Error::format(
            &cfg_path,
            format!("{} bytes, more than the limit of {}", config_json.len(), crate::io::read::MAX_CONFIG_BYTES),
        ));
    }
    let text = std::str::from_utf8(config_json).map_err(|e| Error::format(&cfg_path, format!("not UTF-8: {e}")))?;
    let config = ElectraConfig::from_json_at(text, &cfg_path)?;
    let file = TensorIndex::from_bytes(&dir.join(WEIGHTS), weights)?;
    load_tower(classify(config, file, dir, None)?, opts)
}

/// The (HF name, id) lists of every tower, in file order.
fn tower_names(towers: &Towers) -> Vec<Vec<(String, ParamId)>> {
    match towers {
        Towers::Pair { disc, gen, .. } => vec![disc.names.clone(), gen.names.clone()],
        Towers::Discriminator(d) => vec![d.names.clone()],
        Towers::Generator(g) => vec![g.names.clone()],
        Towers::Classifier(c) => vec![c.names.clone()],
    }
}

fn save_tower(
    table: &ParamTable,
    values: &[f32],
    dir: &Path,
    config: &ElectraConfig,
    names: &[(String, ParamId)],
    quant: Option<&QuantizedWeights>,
) -> Result<()> {
    create_dir(dir)?;
    let mut tensors: Vec<(String, Vec<usize>, Values)> = Vec::with_capacity(names.len());
    for (hf, id) in names {
        let span = table.span(*id);
        let shape = table.info(*id).shape.clone();
        match quant.and_then(|q| q.get(span.off)) {
            Some(w) => {
                tensors.push((hf.clone(), shape, Values::I8(&w.q)));
                tensors.push((format!("{hf}{SCALE_SUFFIX}"), vec![w.dout], Values::F32(&w.scale)));
            }
            None => tensors.push((hf.clone(), shape, Values::F32(span.of(values)))),
        }
    }
    let mut config = config.clone();
    if quant.is_some() {
        config.extra.insert("quantization_config".into(), crate::quant::config_entry());
    }
    write_tensors(&dir.join(WEIGHTS), &tensors, &[])?;
    write_atomic(&dir.join(CONFIG), config.to_json_string().as_bytes())
}

fn with_arch(config: &ElectraConfig, arch: &str) -> ElectraConfig {
    let mut cfg = config.clone();
    cfg.architectures = vec![arch.into()];
    cfg
}

/// Saves one tower as an HF directory loadable by `transformers` `from_pretrained`, committed
/// as one unit (see [`crate::io::atomic::commit_dir`]). Non-finite weights are refused with
/// [`Error::NonFinite`] and leave `dir` as it was.
pub fn save_dir(model: &Model, role: Role, dir: &Path) -> Result<()> {
    check_path(dir, "model directory")?;
    let q = model.quant.as_deref();
    commit_dir(dir, "model", |tmp| save_role(&model.towers, &model.params, model.params.values(), role, tmp, q))
}

fn save_role(
    towers: &Towers,
    table: &ParamTable,
    values: &[f32],
    role: Role,
    dir: &Path,
    q: Option<&QuantizedWeights>,
) -> Result<()> {
    if values.len() != table.numel() {
        return Err(Error::Internal(format!("{} values for a layout of {}", values.len(), table.numel())));
    }
    match role {
        Role::Discriminator => {
            let d = towers.disc().ok_or_else(|| Error::Unsupported("the model has no discriminator".into()))?;
            save_tower(table, values, dir, &with_arch(&d.config, "ElectraForPreTraining"), &d.names, q)
        }
        Role::Generator => {
            let g = towers.gen().ok_or_else(|| Error::Unsupported("the model has no generator".into()))?;
            save_tower(table, values, dir, &with_arch(&g.config, "ElectraForMaskedLM"), &g.names, q)
        }
        Role::Classifier => {
            let c = towers.cls().ok_or_else(|| Error::Unsupported("the model has no classifier".into()))?;
            save_tower(table, values, dir, &c.config, &c.names, q)
        }
    }
}

/// Writes what `towers` holds into the (fresh) directory `dir`, not atomically.
fn write_towers(
    towers: &Towers,
    table: &ParamTable,
    values: &[f32],
    dir: &Path,
    q: Option<&QuantizedWeights>,
) -> Result<()> {
    if towers.cls().is_some() {
        return save_role(towers, table, values, Role::Classifier, dir, q);
    }
    if towers.disc().is_some() {
        save_role(towers, table, values, Role::Discriminator, &dir.join("discriminator"), q)?;
    }
    if towers.gen().is_some() {
        save_role(towers, table, values, Role::Generator, &dir.join("generator"), q)?;
    }
    Ok(())
}

/// Saves what `towers` holds with these weights: a pair (or a lone discriminator or generator)
/// in the pair layout (`dir/discriminator/`, `dir/generator/`), a classifier as one HF
/// `ElectraForSequenceClassification` directory at `dir`. The files are committed as one unit
/// under the save contract (see [`crate::io::atomic::commit_dir`]): a failure or crash at any
/// point leaves the previous export, never a new discriminator beside an old generator, and
/// nothing in `dir` that this save did not write is touched. Non-finite weights are refused with
/// [`Error::NonFinite`] naming the tensor.
pub fn save_towers(towers: &Towers, table: &ParamTable, values: &[f32], dir: &Path) -> Result<()> {
    save_towers_with(towers, table, values, dir, |_| Ok(()))
}

/// [`save_towers`], with `extra` writing more files (a tokenizer, say) into the new version
/// before it is committed, so they are part of the same unit.
pub fn save_towers_with(
    towers: &Towers,
    table: &ParamTable,
    values: &[f32],
    dir: &Path,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    save_towers_quant(towers, table, values, None, dir, extra)
}

fn save_towers_quant(
    towers: &Towers,
    table: &ParamTable,
    values: &[f32],
    q: Option<&QuantizedWeights>,
    dir: &Path,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<()> {
    check_path(dir, "model directory")?;
    commit_dir(dir, "model", |tmp| {
        write_towers(towers, table, values, tmp, q)?;
        extra(tmp)
    })
}

/// Saves a model: the pair layout for pre-training models, one HF directory for a classifier
/// (see [`save_towers`]). An int8 model is written in the int8 format (see [`crate::quant`]),
/// which `electra_model_load` reads and `transformers` does not.
pub fn save(model: &Model, dir: &Path) -> Result<()> {
    save_with(model, dir, |_| Ok(()))
}

/// [`save`], with `extra` writing more files (a tokenizer) into the new version before it is
/// committed.
pub fn save_with(model: &Model, dir: &Path, extra: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    save_towers_quant(&model.towers, &model.params, model.params.values(), model.quant.as_deref(), dir, extra)
}
