//! HF model directories (`config.json` + `model.safetensors`) and the pre-training pair layout
//! (`DIR/discriminator/` and `DIR/generator/`, each an HF directory).

use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::io::atomic::{check_path, commit_dir, create_dir, resolve, write_atomic};
use crate::io::safetensors::{write_tensors, TensorFile, Values};
use crate::layers::int8::{QuantWeight, QuantizedWeights};
use crate::model::{Model, Towers};
use crate::params::{ParamId, ParamTable};
use crate::quant::{WeightFormat, SCALE_SUFFIX};
use std::collections::HashSet;
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
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
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

/// One HF directory read from disk.
struct HfDir {
    config: ElectraConfig,
    file: TensorFile,
    role: Role,
    /// Whether config.json marks the file as int8-quantized.
    int8: bool,
}

fn read_dir(dir: &Path, want: Option<Role>) -> Result<HfDir> {
    let config = ElectraConfig::from_file(&dir.join(CONFIG))?;
    let file = TensorFile::read(&dir.join(WEIGHTS))?;
    classify(config, file, dir, want)
}

/// The role (and int8-ness) of a tower from its config and tensors; `dir` names it in messages.
fn classify(config: ElectraConfig, file: TensorFile, dir: &Path, want: Option<Role>) -> Result<HfDir> {
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

/// Copies every tensor a tower lists from its file, checking names and shapes. In an int8 file
/// (`quantized`: the offsets of the quantized Linear weights) those weights are read as `I8`
/// with their `_scale` tensors into `int8`, and their f32 spans stay zero.
fn fill(
    model: &mut Model,
    names: &[(String, ParamId)],
    file: &TensorFile,
    quantized: Option<&HashSet<usize>>,
    int8: &mut Vec<(usize, QuantWeight)>,
) -> Result<()> {
    for (hf, id) in names {
        let shape = model.params.info(*id).shape.clone();
        let off = model.params.span(*id).off;
        if quantized.is_some_and(|s| s.contains(&off)) {
            // A pair sharing its embeddings lists the shared tensors in both towers.
            if !int8.iter().any(|(o, _)| *o == off) {
                int8.push((off, read_quantized(file, hf, &shape)?));
            }
            continue;
        }
        let t = file.expect(hf, &shape)?;
        if let Some(bad) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::format(&file.path, format!("tensor {hf} holds a non-finite value at element {bad}")));
        }
        model.params.get_mut(*id).copy_from_slice(&t.data);
    }
    Ok(())
}

/// One int8 weight `[dout, din]` and its per-channel scales, checked (scales finite and ≥ 0,
/// values in −127..=127).
fn read_quantized(file: &TensorFile, name: &str, shape: &[usize]) -> Result<QuantWeight> {
    let q = file.expect_i8(name, shape)?;
    let (dout, din) = match *shape {
        [o, i] => (o, i),
        _ => return Err(Error::format(&file.path, format!("quantized tensor {name} must be 2-D, not {shape:?}"))),
    };
    let sname = format!("{name}{SCALE_SUFFIX}");
    let s = file.expect(&sname, &[dout])?;
    if let Some(i) = s.data.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(Error::format(
            &file.path,
            format!("tensor {sname} element {i} is {}: scales must be finite and >= 0", s.data[i]),
        ));
    }
    if q.int8.contains(&i8::MIN) {
        return Err(Error::format(
            &file.path,
            format!("tensor {name} holds -128: int8 weights are symmetric (-127..=127)"),
        ));
    }
    Ok(QuantWeight { q: q.int8.clone(), scale: s.data.clone(), dout, din })
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
    file: &TensorFile,
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

fn embeddings_equal(a: &TensorFile, b: &TensorFile) -> bool {
    let mut any = false;
    for (name, ta) in
        a.tensors.iter().filter(|(n, _)| n.starts_with("electra.embeddings.") && !n.ends_with("position_ids"))
    {
        any = true;
        match b.tensors.get(name) {
            Some(tb) if tb.shape == ta.shape && tb.data == ta.data => {}
            _ => return false,
        }
    }
    any
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
/// does not use.
pub fn load_with(path: &Path, opts: &LoadOptions) -> Result<Model> {
    as_requested(load_stored(path, opts)?, opts)
}

/// The model in the weight format `opts` asks for (an int8 model stays as it is).
fn as_requested(model: Model, opts: &LoadOptions) -> Result<Model> {
    match opts.quantize {
        WeightFormat::Int8 => crate::quant::quantize(&model),
        WeightFormat::F32 => Ok(model),
    }
}

/// The offsets of the Linear weights an int8 file of `model`'s layout holds as int8.
fn quantized_offsets(model: &Model) -> HashSet<usize> {
    crate::quant::quantized_tensors(&model.towers).iter().map(|t| t.span.off).collect()
}

/// Marks `model` int8 with the weights read, when its files were int8.
fn finish(mut model: Model, int8: Option<Vec<(usize, QuantWeight)>>) -> Model {
    if let Some(entries) = int8 {
        model.quant = Some(Arc::new(QuantizedWeights::new(entries)));
    }
    model
}

/// [`load_with`] without the quantize option: the weights as stored.
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
        (Some(d), Some(g)) => embeddings_equal(&d.file, &g.file),
        _ => false,
    };
    let mut model = Model::new(disc.as_ref().map(|d| d.config.clone()), gen.as_ref().map(|g| g.config.clone()), share)?;
    let (disc_names, gen_names) = match &model.towers {
        Towers::Pair { disc, gen, .. } => (disc.names.clone(), gen.names.clone()),
        Towers::Discriminator(d) => (d.names.clone(), Vec::new()),
        Towers::Generator(g) => (Vec::new(), g.names.clone()),
        Towers::Classifier(_) => (Vec::new(), Vec::new()),
    };
    let set = int8_files.then(|| quantized_offsets(&model));
    let mut int8 = Vec::new();
    if let Some(d) = &disc {
        fill(&mut model, &disc_names, &d.file, set.as_ref(), &mut int8)?;
        check_unused(&d.file, &disc_names, &d.config, opts)?;
    }
    if let Some(g) = &gen {
        fill(&mut model, &gen_names, &g.file, set.as_ref(), &mut int8)?;
        check_unused(&g.file, &gen_names, &g.config, opts)?;
    }
    Ok(finish(model, int8_files.then_some(int8)))
}

/// A model of the one tower `d` holds.
fn load_tower(d: HfDir, opts: &LoadOptions) -> Result<Model> {
    let mut model = match d.role {
        Role::Discriminator => Model::new(Some(d.config.clone()), None, false)?,
        Role::Generator => Model::new(None, Some(d.config.clone()), false)?,
        Role::Classifier => Model::new_classifier(d.config.clone())?,
    };
    let names = tower_names(&model.towers).concat();
    let set = d.int8.then(|| quantized_offsets(&model));
    let mut int8 = Vec::new();
    fill(&mut model, &names, &d.file, set.as_ref(), &mut int8)?;
    check_unused(&d.file, &names, &d.config, opts)?;
    Ok(finish(model, d.int8.then_some(int8)))
}

/// Loads one HF tower (an `ElectraForPreTraining`, `ElectraForMaskedLM` or
/// `ElectraForSequenceClassification` checkpoint, f32 or int8) from its `config.json` and
/// `model.safetensors` held in memory, as an app holds a bundled asset. Both are checked as
/// strictly as files are (the same size caps, names, shapes, finiteness), and the weights are
/// copied into the model, which owns them: the caller's buffers may be freed or changed as soon
/// as this returns. Messages name the parts `<memory>/config.json` and
/// `<memory>/model.safetensors`.
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
    let file = TensorFile::parse(&dir.join(WEIGHTS), weights)?;
    as_requested(load_tower(classify(config, file, dir, None)?, opts)?, opts)
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
