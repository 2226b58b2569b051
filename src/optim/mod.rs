//! The original ELECTRA optimizer: AdamW with decoupled weight decay and no bias correction
//! (optional), global-norm clipping, and the warm-up × linear-decay schedule.

use crate::backend::{to_host, AdamStep, AdamTensor, Backend, Buf};
use crate::error::{Error, Result};
use crate::model::{Model, Towers};
use crate::params::{ParamStore, ParamTable, Span};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::Arc;

/// Optimizer hyper-parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// Peak learning rate.
    pub learning_rate: f32,
    /// β1.
    pub beta1: f32,
    /// β2.
    pub beta2: f32,
    /// ε, added to √v.
    pub epsilon: f32,
    /// Decoupled weight decay (scaled by the learning rate), for tensors that decay.
    pub weight_decay: f32,
    /// Whether to divide the moments by (1 − βᵗ) (the original does not).
    pub bias_correction: bool,
    /// Steps of linear warm-up.
    pub warmup_steps: u64,
    /// Steps after which the learning rate reaches 0 (0: no decay).
    pub total_steps: u64,
    /// Global gradient-norm clip (0: no clipping).
    pub max_grad_norm: f32,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            learning_rate: 5e-4,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-6,
            weight_decay: 0.01,
            bias_correction: false,
            warmup_steps: 10_000,
            total_steps: 1_000_000,
            max_grad_norm: 1.0,
        }
    }
}

/// The original schedule: `lr·(1 − min(step, total)/total)·min(1, step/warmup)`, applied from
/// step 0 (so step 0 has learning rate 0 when there is a warm-up).
pub fn learning_rate(cfg: &AdamWConfig, step: u64) -> f32 {
    let decay = if cfg.total_steps > 0 { 1.0 - step.min(cfg.total_steps) as f64 / cfg.total_steps as f64 } else { 1.0 };
    let warm = if cfg.warmup_steps > 0 { (step as f64 / cfg.warmup_steps as f64).min(1.0) } else { 1.0 };
    (cfg.learning_rate as f64 * decay * warm) as f32
}

/// What one update did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Update {
    /// Global gradient norm before clipping.
    pub grad_norm: f32,
    /// The scheduled learning rate (before layer-wise scaling).
    pub learning_rate: f32,
}

/// Adam's moments in the parameters' flat layout, on the host.
pub struct Moments<'a> {
    /// First moments.
    pub m: Cow<'a, [f32]>,
    /// Second moments.
    pub v: Cow<'a, [f32]>,
}

/// The optimizer of pre-training and fine-tuning alike: AdamW moments on the backend's device,
/// global-norm clipping and the schedule, over the tensors of one [`ParamTable`].
pub struct AdamW {
    /// Hyper-parameters and schedule.
    pub cfg: AdamWConfig,
    /// First moments, in the parameters' flat layout.
    m: Buf,
    /// Second moments.
    v: Buf,
    /// (span, decays, learning-rate scale) of every tensor.
    tensors: Vec<(Span, bool, f32)>,
    numel: usize,
}

impl AdamW {
    /// Zero moments for every tensor of `table` (with each tensor's decay flag and `lr_scale`).
    pub fn new(be: &dyn Backend, cfg: AdamWConfig, table: &ParamTable) -> Result<Self> {
        let numel = table.numel();
        let (mut m, mut v) = (Buf::default(), Buf::default());
        for b in [&mut m, &mut v] {
            be.ensure(b, numel)?;
            be.fill(b, numel, 0.0)?;
        }
        let tensors = table.infos().iter().map(|i| (Span { off: i.offset, len: i.len }, i.decay, i.lr_scale)).collect();
        Ok(AdamW { cfg, m, v, tensors, numel })
    }

    /// The moments on the host (for checkpoints): borrowed on the CPU, copied from a device.
    pub fn moments<'a>(&'a self, be: &dyn Backend) -> Result<Moments<'a>> {
        Ok(Moments { m: to_host(be, &self.m, self.numel)?, v: to_host(be, &self.v, self.numel)? })
    }

    /// Replaces the moments (from a checkpoint); each slice holds every tensor's values.
    pub fn set_moments(&mut self, be: &dyn Backend, m: &[f32], v: &[f32]) -> Result<()> {
        if m.len() != self.numel || v.len() != self.numel {
            return Err(Error::Shape { what: "adam moments".into(), expected: vec![self.numel], got: vec![m.len()] });
        }
        be.upload(&mut self.m, m)?;
        be.upload(&mut self.v, v)
    }

    /// Clips `grads` to the global norm and applies one AdamW update to `params`; `step` is the
    /// 0-based index of this update (for the schedule and bias correction). A non-finite norm
    /// changes nothing and is [`Error::NonFinite`].
    pub fn update(&mut self, be: &dyn Backend, params: &mut Buf, grads: &mut Buf, step: u64) -> Result<Update> {
        let cfg = &self.cfg;
        let norm = be.sum_squares(grads, self.numel)?.sqrt() as f32;
        if !norm.is_finite() {
            return Err(Error::NonFinite(format!("gradient norm is {norm}; the update was refused")));
        }
        let lr = learning_rate(cfg, step);
        // TF `clip_by_global_norm`.
        if cfg.max_grad_norm > 0.0 && norm > cfg.max_grad_norm {
            be.scale(grads, self.numel, cfg.max_grad_norm / norm)?;
        }
        let (b1, b2) = (cfg.beta1, cfg.beta2);
        let (c1, c2) = if cfg.bias_correction {
            let t = (step + 1) as i32;
            (1.0 - b1.powi(t), 1.0 - b2.powi(t))
        } else {
            (1.0, 1.0)
        };
        let tensors: Vec<AdamTensor> = self
            .tensors
            .iter()
            .map(|&(span, decay, scale)| AdamTensor {
                span,
                lr: lr * scale,
                weight_decay: if decay { cfg.weight_decay } else { 0.0 },
            })
            .collect();
        let k = AdamStep { beta1: b1, beta2: b2, epsilon: cfg.epsilon, c1, c2 };
        be.adamw(params, grads, &mut self.m, &mut self.v, &tensors, &k)?;
        Ok(Update { grad_norm: norm, learning_rate: lr })
    }
}

/// The parameters being trained, on one backend: weights, their gradients and the optimizer, in
/// the flat layout of one [`ParamTable`]. Pre-training and fine-tuning both hold one, so the
/// device copies, the host views and the update are written once.
pub struct Trained {
    /// The backend all three live on.
    pub be: Arc<dyn Backend>,
    /// Names, shapes, offsets and optimizer settings of every tensor.
    pub table: ParamTable,
    /// The weights.
    pub weights: Buf,
    /// Their gradients (zeroed by [`Self::zero_grads`], accumulated by the backward passes).
    pub grads: Buf,
    optim: AdamW,
}

impl Trained {
    /// Takes `values` (in `table`'s layout) onto `be` (the CPU keeps them without a copy), with
    /// zero gradients and zero moments.
    pub fn new(be: Arc<dyn Backend>, table: ParamTable, values: Vec<f32>, cfg: AdamWConfig) -> Result<Self> {
        if values.len() != table.numel() {
            return Err(Error::Shape {
                what: "weights".into(),
                expected: vec![table.numel()],
                got: vec![values.len()],
            });
        }
        let weights = be.import(values)?;
        let mut grads = Buf::default();
        be.ensure(&mut grads, table.numel())?;
        be.fill(&mut grads, table.numel(), 0.0)?;
        let optim = AdamW::new(&*be, cfg, &table)?;
        Ok(Trained { be, table, weights, grads, optim })
    }

    /// The weights on the host (borrowed on the CPU, copied from a device).
    pub fn weights(&self) -> Result<Cow<'_, [f32]>> {
        to_host(&*self.be, &self.weights, self.table.numel())
    }

    /// The gradients on the host.
    pub fn grads(&self) -> Result<Cow<'_, [f32]>> {
        to_host(&*self.be, &self.grads, self.table.numel())
    }

    /// The Adam moments on the host.
    pub fn moments(&self) -> Result<Moments<'_>> {
        self.optim.moments(&*self.be)
    }

    /// Replaces every weight (same layout).
    pub fn set_weights(&mut self, values: &[f32]) -> Result<()> {
        if values.len() != self.table.numel() {
            return Err(Error::Shape {
                what: "weights".into(),
                expected: vec![self.table.numel()],
                got: vec![values.len()],
            });
        }
        self.be.upload(&mut self.weights, values)
    }

    /// Replaces the Adam moments (from a checkpoint).
    pub fn set_moments(&mut self, m: &[f32], v: &[f32]) -> Result<()> {
        self.optim.set_moments(&*self.be, m, v)
    }

    /// Zeroes the gradients before a backward pass.
    pub fn zero_grads(&mut self) -> Result<()> {
        self.be.fill(&mut self.grads, self.table.numel(), 0.0)
    }

    /// Clips the gradients and applies update number `step` (0-based), on the backend.
    pub fn update(&mut self, step: u64) -> Result<Update> {
        let Trained { be, weights, grads, optim, .. } = self;
        crate::backend::run(&**be, || optim.update(&**be, weights, grads, step))
    }

    /// A host snapshot of what `towers` holds with the current weights.
    pub fn snapshot(&self, towers: Towers) -> Result<Model> {
        let data = self.weights()?.into_owned();
        Ok(Model::from_parts(ParamStore { table: self.table.clone(), data }, towers))
    }
}

/// Layer-wise learning-rate decay for fine-tuning, as the original code computes it:
/// scale = decay^(L + 2 − depth), depth 0 for embeddings and the projection, i + 1 for encoder
/// layer i, L + 2 for everything else (task heads). Applies to tensors under `scope`.
pub fn set_layerwise_lr_decay(store: &mut ParamTable, scope: &str, num_layers: usize, decay: f32) {
    let ids: Vec<_> = (0..store.len()).map(crate::params::ParamId).collect();
    for id in ids {
        let name = store.info(id).name.clone();
        let Some(rest) = name.strip_prefix(scope).and_then(|r| r.strip_prefix('.')) else {
            continue;
        };
        let depth = if rest.starts_with("electra.embeddings") {
            0
        } else if let Some(layer) = rest.strip_prefix("electra.encoder.layer.") {
            layer.split('.').next().and_then(|s| s.parse::<usize>().ok()).map_or(num_layers + 2, |i| i + 1)
        } else {
            num_layers + 2
        };
        store.info_mut(id).lr_scale = decay.powi((num_layers + 2 - depth) as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_warmup_times_decay_from_zero() {
        let cfg = AdamWConfig { learning_rate: 1.0, warmup_steps: 2, total_steps: 10, ..Default::default() };
        let lrs: Vec<f32> = (0..5).map(|s| learning_rate(&cfg, s)).collect();
        assert_eq!(lrs[0], 0.0);
        assert!((lrs[1] - 0.45).abs() < 1e-7 && (lrs[2] - 0.8).abs() < 1e-7 && (lrs[4] - 0.6).abs() < 1e-7);
        assert_eq!(learning_rate(&cfg, 20), 0.0);
    }

    #[test]
    fn clipping_caps_the_norm_and_nan_changes_nothing() {
        let be = crate::backend::open(crate::backend::Device::Cpu, 1).unwrap();
        let mut store = crate::params::ParamStore::new();
        store.add("w", &[2]);
        let cfg = AdamWConfig {
            learning_rate: 0.1,
            warmup_steps: 0,
            total_steps: 0,
            max_grad_norm: 1.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(&*be, cfg, &store).unwrap();
        let (mut p, mut g) = (Buf::from_host(vec![1.0, 1.0]), Buf::from_host(vec![3.0, 4.0]));
        let u = opt.update(&*be, &mut p, &mut g, 0).unwrap();
        assert_eq!(u.grad_norm, 5.0);
        let g = g.host().unwrap();
        assert!(((g[0] * g[0] + g[1] * g[1]).sqrt() - 1.0).abs() < 1e-6, "{g:?}");
        let before = p.host().unwrap().to_vec();
        let mut bad = Buf::from_host(vec![f32::NAN, 0.0]);
        assert!(matches!(opt.update(&*be, &mut p, &mut bad, 1), Err(Error::NonFinite(_))));
        assert_eq!(p.host().unwrap(), &before[..]);
    }
}
