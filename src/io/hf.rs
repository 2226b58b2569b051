//! HF model directories (`config.json` + `model.safetensors`) and the pre-training pair layout
//! (`DIR/discriminator/` and `DIR/generator/`, each an HF directory).

use super::atomic::{create_dir, write_atomic};
use super::safetensors::{write_f32, TensorFile};
use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::params::ParamId;
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

/// Loads a model from `path`: an HF directory (discriminator or generator), the pair layout
/// (`path/discriminator`, `path/generator`, either or both), or a `model.safetensors` file with
/// its `config.json` beside it. In a pair whose generator embeddings equal the discriminator's,
/// they become one shared set of tensors.
pub fn load(path: &Path) -> Result<Model> {
    if path.is_file() {
        let dir = path.parent().unwrap_or(Path::new("."));
        return load(dir);
    }
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
        let names = match d.role {
            Role::Discriminator => model.disc.as_ref().map(|x| x.names.clone()),
            Role::Generator => model.gen.as_ref().map(|x| x.names.clone()),
            Role::Classifier => model.cls.as_ref().map(|x| x.names.clone()),
        }
        .expect("tower exists");
        fill(&mut model, &names, &d.file)?;
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
    if let Some(d) = &disc {
        let names = model.disc.as_ref().expect("disc").names.clone();
        fill(&mut model, &names, &d.file)?;
    }
    if let Some(g) = &gen {
        let names = model.gen.as_ref().expect("gen").names.clone();
        fill(&mut model, &names, &g.file)?;
    }
    Ok(model)
}

fn save_tower(model: &Model, dir: &Path, config: &ElectraConfig, names: &[(String, ParamId)]) -> Result<()> {
    create_dir(dir)?;
    let tensors: Vec<(String, Vec<usize>, &[f32])> = names
        .iter()
        .map(|(hf, id)| (hf.clone(), model.params.info(*id).shape.clone(), model.params.get(*id)))
        .collect();
    write_f32(&dir.join(WEIGHTS), &tensors)?;
    write_atomic(&dir.join(CONFIG), config.to_json_string().as_bytes())
}

/// Saves one tower as an HF directory loadable by `transformers` `from_pretrained`.
pub fn save_dir(model: &Model, role: Role, dir: &Path) -> Result<()> {
    match role {
        Role::Discriminator => {
            let d = model.disc.as_ref().ok_or_else(|| Error::Unsupported("the model has no discriminator".into()))?;
            let mut cfg = d.config.clone();
            cfg.architectures = vec!["ElectraForPreTraining".into()];
            save_tower(model, dir, &cfg, &d.names)
        }
        Role::Generator => {
            let g = model.gen.as_ref().ok_or_else(|| Error::Unsupported("the model has no generator".into()))?;
            let mut cfg = g.config.clone();
            cfg.architectures = vec!["ElectraForMaskedLM".into()];
            save_tower(model, dir, &cfg, &g.names)
        }
        Role::Classifier => {
            let c = model.cls.as_ref().ok_or_else(|| Error::Unsupported("the model has no classifier".into()))?;
            save_tower(model, dir, &c.config, &c.names)
        }
    }
}

/// Saves every tower in the pair layout: `dir/discriminator/` and/or `dir/generator/`.
pub fn save_pair(model: &Model, dir: &Path) -> Result<()> {
    if model.disc.is_some() {
        save_dir(model, Role::Discriminator, &dir.join("discriminator"))?;
    }
    if model.gen.is_some() {
        save_dir(model, Role::Generator, &dir.join("generator"))?;
    }
    Ok(())
}
