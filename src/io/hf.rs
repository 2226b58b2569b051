//! HF model directories (`config.json` + `model.safetensors`) and the pre-training pair layout
//! (`DIR/discriminator/` and `DIR/generator/`, each an HF directory).

use super::atomic::{check_path, commit_dir, create_dir, resolve, write_atomic};
use super::safetensors::{write_f32, TensorFile};
use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::model::{Model, Towers};
use crate::params::{ParamId, ParamTable};
use std::path::Path;

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
}

impl LoadOptions {
    /// Parses a JSON object (`None` or empty: the defaults), e.g. `{"allow_unused_tensors": true}`.
    pub fn from_json(json: Option<&str>) -> Result<Self> {
        match json.map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(Self::default()),
            Some(s) => serde_json::from_str(s).map_err(|e| Error::arg(format!("load options: {e}"))),
        }
    }
}

/// One HF directory read from disk.
struct HfDir {
    config: ElectraConfig,
    file: TensorFile,
    role: Role,
}

fn read_dir(dir: &Path, want: Option<Role>) -> Result<HfDir> {
    let config = ElectraConfig::from_file(&dir.join(CONFIG))?;
    let file = TensorFile::read(&dir.join(WEIGHTS))?;
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
    Ok(HfDir { config, file, role })
}

/// Copies every tensor a tower lists from its file, checking names and shapes.
fn fill(model: &mut Model, names: &[(String, ParamId)], file: &TensorFile) -> Result<()> {
    for (hf, id) in names {
        let shape = model.params.info(*id).shape.clone();
        let t = file.expect(hf, &shape)?;
        if let Some(bad) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::format(&file.path, format!("tensor {hf} holds a non-finite value at element {bad}")));
        }
        model.params.get_mut(*id).copy_from_slice(&t.data);
    }
    Ok(())
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
    let used: std::collections::HashSet<&str> = names.iter().map(|(n, _)| n.as_str()).collect();
    let mut unused: Vec<&str> =
        file.tensors.keys().map(String::as_str).filter(|n| !used.contains(n) && !tolerated(n)).collect();
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
    check_path(path, "model path")?;
    if path.is_file() {
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        return load_with(dir, opts);
    }
    // A save killed between its two renames left the previous version beside the target.
    let path = &resolve(path)?;
    if !path.exists() {
        return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory")));
    }
    if path.join(CONFIG).exists() {
        let d = read_dir(path, None)?;
        let mut model = match d.role {
            Role::Discriminator => Model::new(Some(d.config.clone()), None, false)?,
            Role::Generator => Model::new(None, Some(d.config.clone()), false)?,
            Role::Classifier => Model::new_classifier(d.config.clone())?,
        };
        let names = tower_names(&model.towers).concat();
        fill(&mut model, &names, &d.file)?;
        check_unused(&d.file, &names, &d.config, opts)?;
        return Ok(model);
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
    if let Some(d) = &disc {
        fill(&mut model, &disc_names, &d.file)?;
        check_unused(&d.file, &disc_names, &d.config, opts)?;
    }
    if let Some(g) = &gen {
        fill(&mut model, &gen_names, &g.file)?;
        check_unused(&g.file, &gen_names, &g.config, opts)?;
    }
    Ok(model)
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
) -> Result<()> {
    create_dir(dir)?;
    let tensors: Vec<(String, Vec<usize>, &[f32])> =
        names.iter().map(|(hf, id)| (hf.clone(), table.info(*id).shape.clone(), table.span(*id).of(values))).collect();
    write_f32(&dir.join(WEIGHTS), &tensors)?;
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
    commit_dir(dir, |tmp| save_role(&model.towers, &model.params, model.params.values(), role, tmp))
}

fn save_role(towers: &Towers, table: &ParamTable, values: &[f32], role: Role, dir: &Path) -> Result<()> {
    if values.len() != table.numel() {
        return Err(Error::Internal(format!("{} values for a layout of {}", values.len(), table.numel())));
    }
    match role {
        Role::Discriminator => {
            let d = towers.disc().ok_or_else(|| Error::Unsupported("the model has no discriminator".into()))?;
            save_tower(table, values, dir, &with_arch(&d.config, "ElectraForPreTraining"), &d.names)
        }
        Role::Generator => {
            let g = towers.gen().ok_or_else(|| Error::Unsupported("the model has no generator".into()))?;
            save_tower(table, values, dir, &with_arch(&g.config, "ElectraForMaskedLM"), &g.names)
        }
        Role::Classifier => {
            let c = towers.cls().ok_or_else(|| Error::Unsupported("the model has no classifier".into()))?;
            save_tower(table, values, dir, &c.config, &c.names)
        }
    }
}

/// Writes what `towers` holds into the (fresh) directory `dir`, not atomically.
fn write_towers(towers: &Towers, table: &ParamTable, values: &[f32], dir: &Path) -> Result<()> {
    if towers.cls().is_some() {
        return save_role(towers, table, values, Role::Classifier, dir);
    }
    if towers.disc().is_some() {
        save_role(towers, table, values, Role::Discriminator, &dir.join("discriminator"))?;
    }
    if towers.gen().is_some() {
        save_role(towers, table, values, Role::Generator, &dir.join("generator"))?;
    }
    Ok(())
}

/// Saves what `towers` holds with these weights: a pair (or a lone discriminator or generator)
/// in the pair layout (`dir/discriminator/`, `dir/generator/`), a classifier as one HF
/// `ElectraForSequenceClassification` directory at `dir`. The whole of `dir` is committed as
/// one unit (see [`crate::io::atomic::commit_dir`]): a failure or crash at any point leaves the
/// previous export, never a new discriminator beside an old generator. Non-finite weights are
/// refused with [`Error::NonFinite`] naming the tensor.
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
    check_path(dir, "model directory")?;
    commit_dir(dir, |tmp| {
        write_towers(towers, table, values, tmp)?;
        extra(tmp)
    })
}

/// Saves a model: the pair layout for pre-training models, one HF directory for a classifier
/// (see [`save_towers`]).
pub fn save(model: &Model, dir: &Path) -> Result<()> {
    save_towers(&model.towers, &model.params, model.params.values(), dir)
}
