//! Trainer checkpoints: weights, Adam moments, step, RNG state, options and the data cursor in
//! one safetensors file (`trainer.safetensors`, state as JSON in its header). One file written
//! atomically means a checkpoint is either the old one or the new one, never a mix.

use super::options::TrainOptions;
use super::trainer::Trainer;
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
        let state = State {
            format_version: FORMAT_VERSION,
            step: self.step,
            options: self.opts.clone(),
            rng: self.rng.clone(),
            discriminator_config: self.model.disc.as_ref().map(|d| d.config.clone()),
            generator_config: self.model.gen.as_ref().map(|g| g.config.clone()),
            shared_embeddings: self.model.shared_embeddings,
            data_cursor: self.data_cursor.clone(),
        };
        let json = serde_json::to_string(&state).map_err(|e| Error::Internal(format!("state json: {e}")))?;
        let mut tensors = Vec::with_capacity(3 * self.model.params.len());
        for (prefix, buf) in [("param", &self.model.params.data), ("adam_m", &self.adam_m), ("adam_v", &self.adam_v)] {
            for info in self.model.params.infos() {
                tensors.push((
                    format!("{prefix}/{}", info.name),
                    info.shape.clone(),
                    &buf[info.offset..info.offset + info.len],
                ));
            }
        }
        write_f32_with_metadata(&dir.join(TRAINER_FILE), &tensors, &[(META_KEY, json)])
    }

    /// Restores a trainer saved by [`Trainer::save`]; training continues bit-identically.
    pub fn resume(dir: &Path) -> Result<Self> {
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
        let model = Model::new(state.discriminator_config, state.generator_config, state.shared_embeddings)?;
        let mut t = Trainer::from_model(model, state.options)?;
        let infos = t.model.params.infos().to_vec();
        for info in &infos {
            let r = info.offset..info.offset + info.len;
            t.model.params.data[r.clone()]
                .copy_from_slice(&file.expect(&format!("param/{}", info.name), &info.shape)?.data);
            t.adam_m[r.clone()].copy_from_slice(&file.expect(&format!("adam_m/{}", info.name), &info.shape)?.data);
            t.adam_v[r].copy_from_slice(&file.expect(&format!("adam_v/{}", info.name), &info.shape)?.data);
        }
        t.step = state.step;
        t.rng = state.rng;
        t.data_cursor = state.data_cursor;
        Ok(t)
    }
}
