//! Trainer checkpoints: weights, Adam moments, step, RNG state, options and the data cursor in
//! one safetensors file (`trainer.safetensors`, state as JSON in its header), in a directory
//! committed as one unit ([`crate::io::atomic::commit_dir`]): a checkpoint is either the old one
//! or the new one, never a mix. Non-finite weights or moments, and negative second moments, are
//! refused on save and on load, naming the tensor.

use super::options::TrainOptions;
use super::trainer::{RankState, Trainer};
use crate::backend::Device;
use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use crate::io::atomic::{check_path, commit_dir, resolve};
use crate::io::safetensors::{write_f32_with_metadata, TensorFile};
use crate::model::Model;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File name of a trainer checkpoint inside its directory.
pub const TRAINER_FILE: &str = "trainer.safetensors";
const META_KEY: &str = "electra_trainer";
const FORMAT_VERSION: u32 = 1;
/// The largest step a checkpoint may hold: far beyond any real run, and small enough that the
/// step survives a round trip through a JSON double (hosts in other languages read it so).
pub(crate) const MAX_STEP: u64 = 1 << 53;

/// Where a resumed trainer runs, when not where it was saved (JSON keys are the field names).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResumeOptions {
    /// The device: "cpu", "cuda" or "cuda:N" (absent: the checkpoint's).
    pub device: Option<Device>,
    /// Host worker threads, 0 = one per core (absent: the checkpoint's).
    pub threads: Option<usize>,
    /// This process's rank, for a run whose host supplies the all-reduce (absent: 0). Every
    /// rank resumes the same checkpoint (written by rank 0) and takes its own state from it.
    pub rank: Option<usize>,
}

impl ResumeOptions {
    /// Parses a JSON object (`None` or empty: nothing overridden).
    pub fn from_json(json: Option<&str>) -> Result<Self> {
        let o: ResumeOptions = match json.map(str::trim).filter(|s| !s.is_empty()) {
            None => Self::default(),
            Some(s) => crate::options::parse_json(s)?,
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
    /// Every rank's streams and cursor, in rank order, when the run had several ranks or
    /// micro-batches (`rng` and `data_cursor` above are rank 0's, for older readers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ranks: Option<Vec<RankState>>,
}

impl Trainer {
    /// Saves the full trainer state to `dir/trainer.safetensors` (atomically).
    ///
    /// Committed under the save contract (see [`crate::io::atomic::commit_dir`]). Non-finite
    /// weights or moments and negative second moments are [`Error::NonFinite`] naming the
    /// tensor, and leave the previous checkpoint in place.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path_ok = check_path(dir, "checkpoint directory");
        let (rank, world) = self.rank();
        let Some(c) = self.collective().filter(|_| world > 1) else {
            path_ok?;
            let ranks = (self.opts.accumulate_steps > 1)
                .then(|| vec![RankState { rngs: self.rngs.clone(), data_cursor: self.data_cursor.clone() }]);
            return self.write_checkpoint(dir, ranks);
        };
        // Several ranks: a collective call. Every rank sends its state (and a fingerprint of its
        // weights, which must be rank 0's) to rank 0, which writes; then all learn how that went.
        let mine = serde_json::to_vec(&(
            RankState { rngs: self.rngs.clone(), data_cursor: self.data_cursor.clone() },
            format!("{:016x}", crate::distributed::fingerprint(&self.weights()?)),
        ))
        .map_err(|e| Error::Internal(format!("rank state json: {e}")))?;
        let gathered = crate::distributed::all_gather_bytes(&*c, &mine)?;
        let mut ranks = Vec::with_capacity(world);
        let mut prints = Vec::with_capacity(world);
        for (r, bytes) in gathered.iter().enumerate() {
            let (state, print): (RankState, String) = serde_json::from_slice(bytes)
                .map_err(|e| Error::Distributed(format!("rank {r} sent an unreadable state: {e}")))?;
            ranks.push(state);
            prints.push(print);
        }
        if let Some(r) = (1..world).find(|&r| prints[r] != prints[0]) {
            return Err(Error::Distributed(format!(
                "rank {r}'s weights differ from rank 0's: the ranks diverged (an all-reduce that returned \
                 different sums to different ranks?); no checkpoint was written"
            )));
        }
        let written = if rank == 0 { path_ok.and_then(|()| self.write_checkpoint(dir, Some(ranks))) } else { Ok(()) };
        let agreed =
            crate::distributed::exchange(&*c, super::trainer::status_of(&written), &mut [], "saving the checkpoint")?;
        written?;
        agreed
    }

    fn write_checkpoint(&self, dir: &Path, ranks: Option<Vec<RankState>>) -> Result<()> {
        let towers = self.towers();
        let state = State {
            format_version: FORMAT_VERSION,
            step: self.step,
            options: self.opts.clone(),
            rng: self.rngs[0].clone(),
            discriminator_config: towers.disc().map(|d| d.config.clone()),
            generator_config: towers.gen().map(|g| g.config.clone()),
            shared_embeddings: towers.shared_embeddings(),
            data_cursor: self.data_cursor.clone(),
            ranks,
        };
        let json = serde_json::to_string(&state).map_err(|e| Error::Internal(format!("state json: {e}")))?;
        let table = self.params();
        let (weights, moments) = (self.weights()?, self.moments()?);
        let (m, v) = (moments.m, moments.v);
        // Adam's second moments are averages of squares: a negative one (a corrupted run) would
        // give NaN at the next step's square root. (Non-finite values are refused as they are
        // serialised, in the same pass.)
        if let Some(i) = v.iter().position(|x| *x < 0.0) {
            let name =
                table.infos().iter().find(|t| (t.offset..t.offset + t.len).contains(&i)).map_or("?", |t| &t.name);
            return Err(Error::NonFinite(format!(
                "adam_v/{name} holds a negative second moment ({}); refusing to write the checkpoint {}",
                v[i],
                dir.display()
            )));
        }
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
        commit_dir(dir, "trainer", |tmp| {
            write_f32_with_metadata(&tmp.join(TRAINER_FILE), &tensors, &[(META_KEY, json)])
        })
    }

    /// Restores a trainer saved by [`Trainer::save`], on the device and thread count it was
    /// trained with; training continues bit-identically.
    pub fn resume(dir: &Path) -> Result<Self> {
        Self::resume_with(dir, &ResumeOptions::default())
    }

    /// [`Self::resume`] on another device or thread count (`None` fields: the checkpoint's own),
    /// e.g. a run begun on a GPU continued on a machine without one.
    pub fn resume_with(dir: &Path, over: &ResumeOptions) -> Result<Self> {
        check_path(dir, "checkpoint directory")?;
        // A save killed while moving its files into place is finished first (see io::atomic).
        let path = resolve(dir)?.join(TRAINER_FILE);
        let meta = TensorFile::read_metadata(&path)?;
        let json = meta
            .get(META_KEY)
            .ok_or_else(|| Error::format(&path, "no trainer state in the header: not a trainer checkpoint"))?;
        let state: State =
            serde_json::from_str(json).map_err(|e| Error::format(&path, format!("trainer state: {e}")))?;
        if state.format_version != FORMAT_VERSION {
            return Err(Error::format(&path, format!("checkpoint format {} is not supported", state.format_version)));
        }
        if state.step > MAX_STEP {
            return Err(Error::format(
                &path,
                format!("step {} is out of range (at most {MAX_STEP}): the checkpoint is corrupt", state.step),
            ));
        }
        let cursors = state.ranks.iter().flatten().map(|r| &r.data_cursor).chain([&state.data_cursor]);
        if cursors.flatten().any(|c| !c.is_object()) {
            return Err(Error::format(&path, "data_cursor is not a JSON object: the checkpoint is corrupt"));
        }
        let k = state.options.accumulate_steps;
        if let Some(r) = state.ranks.iter().flatten().position(|r| r.rngs.len() != k) {
            return Err(Error::format(
                &path,
                format!(
                    "rank {r} holds {} RNG streams for accumulate_steps {k}: the checkpoint is corrupt",
                    state.ranks.as_ref().map_or(0, |v| v[r].rngs.len())
                ),
            ));
        }
        let file = TensorFile::read(&path)?;
        let mut model = Model::new(state.discriminator_config, state.generator_config, state.shared_embeddings)?;
        if state.options.disc_mlm_weight > 0.0 {
            // The hybrid head's tensors are in the file too (read below, with everything else).
            super::hybrid::attach(&mut model, state.options.seed)?;
        }
        if state.options.cls_contrast_weight > 0.0 {
            // So are the [CLS] loss's projections.
            super::contrast::attach(&mut model, state.options.seed, state.options.cls_contrast_temperature)?;
        }
        if state.options.embedding_sharing == Some(super::EmbeddingSharing::Disentangled) {
            // The deltas too.
            super::disentangled::attach(&mut model)?;
        }
        let n = model.params.numel();
        let (mut m, mut v) = (crate::alloc::try_vec(n, 0.0, "adam_m")?, crate::alloc::try_vec(n, 0.0, "adam_v")?);
        let infos = model.params.infos().to_vec();
        for info in &infos {
            let r = info.offset..info.offset + info.len;
            let load = |prefix: &str, out: &mut [f32], moment2: bool| -> Result<()> {
                let name = format!("{prefix}/{}", info.name);
                let t = file.expect(&name, &info.shape)?;
                if let Some(i) = t.data.iter().position(|x| !x.is_finite() || (moment2 && *x < 0.0)) {
                    let what = if t.data[i].is_finite() { "a negative second moment" } else { "a non-finite value" };
                    return Err(Error::format(
                        &path,
                        format!("tensor {name} holds {what} ({}) at element {i}", t.data[i]),
                    ));
                }
                out.copy_from_slice(&t.data);
                Ok(())
            };
            load("param", &mut model.params.data[r.clone()], false)?;
            load("adam_m", &mut m[r.clone()], false)?;
            load("adam_v", &mut v[r], true)?;
        }
        // Every tensor of the file must be one of the three per parameter read above.
        let expected = 3 * infos.len();
        if file.tensors.len() != expected {
            let known: std::collections::HashSet<String> =
                infos.iter().flat_map(|i| ["param", "adam_m", "adam_v"].map(|p| format!("{p}/{}", i.name))).collect();
            let mut extra: Vec<&String> = file.tensors.keys().filter(|k| !known.contains(*k)).collect();
            extra.sort();
            let first: Vec<&str> = extra.iter().take(3).map(|s| s.as_str()).collect();
            return Err(Error::format(
                &path,
                format!(
                    "{} tensors the checkpoint's configs do not account for ({}{}): the checkpoint is corrupt or \
                     was written by another program",
                    extra.len(),
                    first.join(", "),
                    if extra.len() > 3 { ", ..." } else { "" }
                ),
            ));
        }
        drop(file);
        let mut options = state.options;
        options.device = over.device.unwrap_or(options.device);
        options.threads = over.threads.unwrap_or(options.threads);
        if let Some(r) = over.rank {
            options.rank = r;
        }
        let mut t = Trainer::from_model_local(model, options)?;
        t.set_moments(&m, &v)?;
        t.step = state.step;
        t.rngs = vec![state.rng];
        t.data_cursor = state.data_cursor;
        match state.ranks {
            Some(mut ranks) if ranks.len() == 1 => {
                let RankState { rngs, data_cursor } = ranks.remove(0);
                (t.rngs, t.data_cursor) = (rngs, data_cursor);
            }
            Some(ranks) => t.resumed_ranks = Some(ranks),
            None if k == 1 => {}
            None => {
                return Err(Error::format(
                    &path,
                    format!("no RNG streams for accumulate_steps {k}: the checkpoint is corrupt"),
                ))
            }
        }
        t.join_configured_engine()?;
        Ok(t)
    }
}
