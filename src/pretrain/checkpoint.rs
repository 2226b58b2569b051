//! Trainer checkpoints: weights, Adam moments, step, RNG state, options and the data cursor in
//! one safetensors file (`trainer.safetensors`, state as JSON in its header). One file written
//! atomically means a checkpoint is either the old one or the new one, never a mix.

use super::options::TrainOptions;
use super::trainer::Trainer;
use crate::backend::Device;
use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::io::atomic::create_dir;
use crate::io::safetensors::{write_f32_with_metadata, TensorFile};
use crate::model::Model;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File name of a trainer checkpoint inside its directory.
pub const TRAINER_FILE: &str = "trainer.safetensors";
const META_KEY: &str = "electra_trainer";
const FORMAT_VERSION: u32 = 1;

/// Where a resumed trainer runs, when not where it was saved (JSON keys are the field names).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResumeOptions {
    /// The device: "cpu", "cuda" or "cuda:N" (absent: the checkpoint's).
    pub device: Option<Device>,
    /// Host worker threads, 0 = one per core (absent: the checkpoint's).
    pub threads: Option<usize>,
}

impl ResumeOptions {
    /// Parses a JSON object (`None` or empty: nothing overridden).
    pub fn from_json(json: Option<&str>) -> Result<Self> {
        let o: ResumeOptions = match json.map(str::trim).filter(|s| !s.is_empty()) {
            None => Self::default(),
            Some(s) => super::options::parse_json_options(s)?,
        };
        crate::backend::check_threads(o.threads.unwrap_or(0))?;
        Ok(o)
    }
}

#[derive(Serialize, Deserialize)]
struct State {
    format_version: u32,
    step: u64,
    options: TrainOptions,
    rng: rand_chacha::ChaCha8Rng,
    discriminator_config: Option<ElectraConfig>,
    generator_config: Option<ElectraConfig>,
    shared_embeddings: bool,
    data_cursor: Option<serde_json::Value>,
}

impl Trainer {
    /// Saves the full trainer state to `dir/trainer.safetensors` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        create_dir(dir)?;
        let towers = self.towers();
        let state = State {
            format_version: FORMAT_VERSION,
            step: self.step,
            options: self.opts.clone(),
            rng: self.rng.clone(),
            discriminator_config: towers.disc().map(|d| d.config.clone()),
            generator_config: towers.gen().map(|g| g.config.clone()),
            shared_embeddings: towers.shared_embeddings(),
            data_cursor: self.data_cursor.clone(),
        };
        let json = serde_json::to_string(&state).map_err(|e| Error::Internal(format!("state json: {e}")))?;
        let table = self.params();
        let (weights, moments) = (self.weights()?, self.moments()?);
        let (m, v) = (moments.m, moments.v);
        let mut tensors = Vec::with_capacity(3 * table.len());
        for (prefix, buf) in [("param", &weights), ("adam_m", &m), ("adam_v", &v)] {
            for info in table.infos() {
                tensors.push((
                    format!("{prefix}/{}", info.name),
                    info.shape.clone(),
                    &buf[info.offset..info.offset + info.len],
                ));
            }
        }
        write_f32_with_metadata(&dir.join(TRAINER_FILE), &tensors, &[(META_KEY, json)])
    }

    /// Restores a trainer saved by [`Trainer::save`], on the device and thread count it was
    /// trained with; training continues bit-identically.
    pub fn resume(dir: &Path) -> Result<Self> {
        Self::resume_with(dir, &ResumeOptions::default())
    }

    /// [`Self::resume`] on another device or thread count (`None` fields: the checkpoint's own),
    /// e.g. a run begun on a GPU continued on a machine without one.
    pub fn resume_with(dir: &Path, over: &ResumeOptions) -> Result<Self> {
        let path = dir.join(TRAINER_FILE);
        let meta = TensorFile::read_metadata(&path)?;
        let json = meta
            .get(META_KEY)
            .ok_or_else(|| Error::format(&path, "no trainer state in the header: not a trainer checkpoint"))?;
        let state: State =
            serde_json::from_str(json).map_err(|e| Error::format(&path, format!("trainer state: {e}")))?;
        if state.format_version != FORMAT_VERSION {
            return Err(Error::format(&path, format!("checkpoint format {} is not supported", state.format_version)));
        }
        let file = TensorFile::read(&path)?;
        let mut model = Model::new(state.discriminator_config, state.generator_config, state.shared_embeddings)?;
        let n = model.params.numel();
        let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
        let infos = model.params.infos().to_vec();
        for info in &infos {
            let r = info.offset..info.offset + info.len;
            model.params.data[r.clone()]
                .copy_from_slice(&file.expect(&format!("param/{}", info.name), &info.shape)?.data);
            m[r.clone()].copy_from_slice(&file.expect(&format!("adam_m/{}", info.name), &info.shape)?.data);
            v[r].copy_from_slice(&file.expect(&format!("adam_v/{}", info.name), &info.shape)?.data);
        }
        drop(file);
        let mut options = state.options;
        options.device = over.device.unwrap_or(options.device);
        options.threads = over.threads.unwrap_or(options.threads);
        let mut t = Trainer::from_model(model, options)?;
        t.set_moments(&m, &v)?;
        t.step = state.step;
        t.rng = state.rng;
        t.data_cursor = state.data_cursor;
        Ok(t)
    }
}
