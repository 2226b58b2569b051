//! The original ELECTRA optimizer: AdamW with decoupled weight decay and no bias correction
//! (optional), global-norm clipping, and the warm-up × linear-decay schedule.

use crate::backend::{to_host, AdamState, AdamStep, AdamTensor, Backend, Buf};
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

impl AdamWConfig {
    /// Checks the hyper-parameters before any step, so a bad value is refused when the trainer
    /// is made rather than after it has damaged the weights. Messages name the options keys
    /// (`learning_rate`, `weight_decay`, `adam_epsilon`, `adam_beta1`, `adam_beta2`,
    /// `max_grad_norm`), which pre-training and fine-tuning share.
    pub fn validate(&self) -> Result<()> {
        let bad = |k: &str, v: f32, rule: &str| Err(Error::arg(format!("options: {k} = {v} {rule}")));
        let lr = self.learning_rate;
        if !(lr > 0.0 && lr <= 1.0) {
            // Only this check catches a huge rate: 1e30 makes step 1 write finite but absurd
            // weights, and the NaN shows only steps later.
            return bad(
                "learning_rate",
                lr,
                "must be finite and in (0, 1]: a larger rate gives finite but absurd weights on the first step, \
                 which no later check can tell apart (typical rates are 1e-5 to 1e-3)",
            );
        }
        let wd = self.weight_decay;
        if !(wd.is_finite() && wd >= 0.0) {
            return bad("weight_decay", wd, "must be finite and >= 0 (typically 0.01)");
        }
        if lr * wd >= 1.0 {
            return bad(
                "weight_decay",
                wd,
                &format!("times learning_rate {lr} must be below 1, or every step flips the weights' sign"),
            );
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return bad("adam_epsilon", self.epsilon, "must be finite and > 0 (typically 1e-6)");
        }
        for (k, b) in [("adam_beta1", self.beta1), ("adam_beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return bad(k, b, "must be in [0, 1) (typically 0.9 and 0.999)");
            }
        }
        if !(self.max_grad_norm.is_finite() && self.max_grad_norm >= 0.0) {
            return bad("max_grad_norm", self.max_grad_norm, "must be finite and >= 0 (0 disables clipping)");
        }
        Ok(())
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
    /// Every tensor's name, for the message of a refused update.
    names: Vec<String>,
    /// What is known of the weights' and moments' magnitudes (`None`: nothing, after new
    /// weights or moments), so most updates need no checking pass.
    bounds: Option<Bounds>,
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
        let names = table.infos().iter().map(|i| i.name.clone()).collect();
        Ok(AdamW { cfg, m, v, tensors, names, bounds: None, numel })
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
        self.bounds = None;
        be.upload(&mut self.m, m)?;
        be.upload(&mut self.v, v)
    }

    /// Forgets what is known of the weights (they were replaced).
    fn forget_bounds(&mut self) {
        self.bounds = None;
    }

    /// Some weights became sums of two weights: the bound on |weight| at most doubles.
    fn weights_summed(&mut self) {
        if let Some(b) = &mut self.bounds {
            b.p *= 2.0;
        }
    }

    /// Clips `grads` to the global norm and applies one AdamW update to `params`; `step` is the
    /// 0-based index of this update (for the schedule and bias correction). A non-finite norm,
    /// or an update that would make any weight or moment NaN or infinite, changes neither the
    /// weights nor the moments (the gradients may be clipped) and is [`Error::NonFinite`].
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
        // Clipping only shrinks gradients, so every |g| is at most the norm (with a margin for
        // the norm's rounding to f32).
        let proven = self.bounds.and_then(|b| b.after(norm as f64 * (1.0 + 1e-5), &tensors, &k));
        let state = AdamState { params, m: &mut self.m, v: &mut self.v };
        if let Some(bad) = be.adamw(state, grads, &tensors, &k, proven.is_none())? {
            let name = self.names.get(bad).map_or("?", String::as_str);
            return Err(Error::NonFinite(format!(
                "the AdamW update of step {} would make {name} NaN or infinite (learning rate {lr}, gradient \
                 norm {norm}); the update was refused and the weights and Adam moments are unchanged: lower the \
                 learning rate, or check the weights and the batch",
                step + 1
            )));
        }
        self.bounds = match proven {
            Some(b) => Some(b),
            // Checked and committed: measure the new state, so later updates can be proved.
            None => Some(Bounds::measure(be, params, &self.m, &self.v, self.numel)?),
        };
        Ok(Update { grad_norm: norm, learning_rate: lr })
    }
}

/// Upper bounds on |weight|, |first moment| and the second moment (always >= 0) over every
/// element, in f64. They let [`AdamW::update`] prove an update finite from the gradient norm
/// alone and commit it in one pass, which costs nothing extra: only when the proof fails (the
/// first update, after new weights or moments, or with absurd values) does the backend run its
/// checking pass, and the state it commits is measured afresh.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Bounds {
    p: f64,
    m: f64,
    v: f64,
}

impl Bounds {
    /// Every bound must stay this far below `f32::MAX`, so that the few f32 roundings of one
    /// update (each a relative 2^-24) cannot reach infinity.
    const LIMIT: f64 = f32::MAX as f64 / 16.0;
    /// Bounds grow by this factor per update, more than an update's f32 rounding can add, so
    /// they stay upper bounds however many updates are proved in a row.
    const SLACK: f64 = 1.0 + 1e-6;

    /// The largest magnitudes in the (finite) state.
    fn measure(be: &dyn Backend, params: &Buf, m: &Buf, v: &Buf, numel: usize) -> Result<Self> {
        let max = |b: &Buf| -> Result<f64> { Ok(be.max_abs(b, numel)? as f64) };
        Ok(Bounds { p: max(params)?, m: max(m)?, v: max(v)? })
    }

    /// Bounds after one update with gradients of magnitude at most `g`, when they prove every
    /// new weight and moment finite; `None` when they do not.
    ///
    /// Per element: m' = β1·m + (1−β1)·g, so |m'| ≤ β1·M + (1−β1)·G; v' = β2·v + (1−β2)·g² ≥ 0
    /// is at most β2·V + (1−β2)·G²; the denominator √(v'/c2) + ε is at least ε, so
    /// |update| ≤ (M'/c1)/ε + wd·P; and |p'| ≤ P + lr·|update|.
    fn after(&self, g: f64, tensors: &[AdamTensor], k: &AdamStep) -> Option<Self> {
        let unit = |x: f32| (0.0..=1.0).contains(&x);
        let positive = |x: f32| x.is_finite() && x > 0.0;
        if !(unit(k.beta1) && unit(k.beta2) && positive(k.epsilon) && positive(k.c1) && positive(k.c2)) {
            return None;
        }
        let (mut lr, mut wd) = (0.0f64, 0.0f64);
        for t in tensors {
            if !(t.lr.is_finite() && t.lr >= 0.0 && t.weight_decay.is_finite() && t.weight_decay >= 0.0) {
                return None;
            }
            lr = lr.max(t.lr as f64);
            wd = wd.max(t.weight_decay as f64);
        }
        let (b1, b2, eps) = (k.beta1 as f64, k.beta2 as f64, k.epsilon as f64);
        let m = b1 * self.m + (1.0 - b1) * g;
        let v = b2 * self.v + (1.0 - b2) * g * g;
        let u = (m / k.c1 as f64) / eps + wd * self.p;
        let p = self.p + lr * u;
        // Every intermediate of the f32 arithmetic, each below the limit (NaN fails too).
        let steps = [g, g * g, m, v, m / k.c1 as f64, v / k.c2 as f64, u, wd * self.p, lr * u, p];
        // The slack covers relative rounding; the smallest normal f32 covers the absolute
        // rounding of subnormal values.
        let up = |x: f64| x * Self::SLACK + f32::MIN_POSITIVE as f64;
        steps.iter().all(|&x| x < Self::LIMIT).then_some(Bounds { p: up(p), m: up(m), v: up(v) })
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
    /// The weights. Replace them only through [`Self::set_weights`]: the optimizer's proof that
    /// an update stays finite relies on knowing what they hold.
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

    /// The optimizer's settings and schedule from now on (checked; the moments are kept).
    pub fn set_config(&mut self, cfg: AdamWConfig) -> Result<()> {
        cfg.validate()?;
        self.optim.cfg = cfg;
        Ok(())
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
        self.optim.forget_bounds();
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

    /// Rewrites some weights in place through `f`, each as the sum of at most two weights (the
    /// refold of disentangled embedding sharing): the optimizer's bound on |weight| doubles, so
    /// its proofs stay sound.
    pub fn sum_weights(&mut self, f: impl FnOnce(&dyn Backend, &mut Buf) -> Result<()>) -> Result<()> {
        f(&*self.be, &mut self.weights)?;
        self.optim.weights_summed();
        Ok(())
    }

    /// A host snapshot of what `towers` holds with the current weights.
    pub fn snapshot(&self, towers: Towers) -> Result<Model> {
        let data = self.weights()?.into_owned();
        Ok(Model::from_parts(ParamStore { table: self.table.clone(), data, zeroed_spare: false }, towers))
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
        let be =
            crate::backend::open(crate::backend::Device::Cpu, &crate::backend::BackendOptions::threads(1)).unwrap();
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

    /// The proof of finiteness is sound: whenever `Bounds::after` proves an update, the exact
    /// check agrees that it is finite and the measured state lies within the proved bounds;
    /// and it proves ordinary updates, so they take the single pass.
    #[test]
    fn proved_updates_are_finite_and_within_their_bounds() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |scale: f64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            (2.0 * u - 1.0) * scale
        };
        let (mut proved, mut refused) = (0, 0);
        for case in 0..3000 {
            let mag = 10f64.powi((case % 80) - 40);
            let n = 4;
            let mut p: Vec<f32> = (0..n).map(|_| rnd(mag) as f32).collect();
            let mut m: Vec<f32> = (0..n).map(|_| rnd(mag) as f32).collect();
            let mut v: Vec<f32> = (0..n).map(|_| rnd(mag).abs() as f32).collect();
            let g: Vec<f32> = (0..n).map(|_| rnd(mag) as f32).collect();
            let k = AdamStep { beta1: 0.9, beta2: 0.999, epsilon: 1e-6, c1: 1.0, c2: 1.0 };
            let t = [AdamTensor { span: Span { off: 0, len: n }, lr: 1.0, weight_decay: 0.5 }];
            let max = |x: &[f32]| crate::backend::cpu::optim::max_abs(x) as f64;
            let b = Bounds { p: max(&p), m: max(&m), v: max(&v) };
            let norm = g.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt() as f32;
            let Some(after) = b.after(norm as f64 * (1.0 + 1e-5), &t, &k) else {
                refused += 1;
                continue;
            };
            proved += 1;
            assert_eq!(
                crate::backend::cpu::optim::adamw(&mut p, &g, &mut m, &mut v, &t, &k, true),
                None,
                "case {case}"
            );
            assert!(max(&p) <= after.p && max(&m) <= after.m && max(&v) <= after.v, "case {case}");
        }
        assert!(proved > 1000 && refused > 100, "{proved} proved, {refused} refused");
        let be =
            crate::backend::open(crate::backend::Device::Cpu, &crate::backend::BackendOptions::threads(1)).unwrap();
        let mut store = crate::params::ParamStore::new();
        store.add("w", &[3]);
        let mut opt = AdamW::new(&*be, AdamWConfig::default(), &store).unwrap();
        let mut p = Buf::from_host(vec![0.1, -0.2, 0.3]);
        for step in 0..3 {
            opt.update(&*be, &mut p, &mut Buf::from_host(vec![0.5, -1.0, 2.0]), step).unwrap();
            assert!(opt.bounds.is_some(), "the state after an update is known");
        }
        assert!(opt.bounds.unwrap().p < 1.0);
    }

    /// Finite gradients whose update overflows: g² is infinite in f32 (an infinite second
    /// moment alone still gives a finite weight), or the weight itself overflows. Both are
    /// refused with the weights and both moments left bit for bit as they were.
    #[test]
    fn an_update_that_would_overflow_commits_nothing() {
        let be =
            crate::backend::open(crate::backend::Device::Cpu, &crate::backend::BackendOptions::threads(1)).unwrap();
        let mut store = crate::params::ParamStore::new();
        store.add("a", &[2]);
        store.add("b", &[2]);
        let cfg = AdamWConfig {
            learning_rate: 1.0,
            warmup_steps: 0,
            total_steps: 0,
            max_grad_norm: 0.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(&*be, cfg, &store).unwrap();
        let mut p = Buf::from_host(vec![1.0, 2.0, 3.0, 4.0]);
        opt.update(&*be, &mut p, &mut Buf::from_host(vec![0.5, -0.5, 0.25, 1.0]), 0).unwrap();
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let snapshot = |opt: &AdamW, p: &Buf| {
            let mo = opt.moments(&*be).unwrap();
            (bits(p.host().unwrap()), bits(&mo.m), bits(&mo.v))
        };
        let before = snapshot(&opt, &p);
        for (g, what) in [([0.0, 0.0, 1e30, 0.0], "second moment"), ([0.0, 0.0, 0.0, 3e38], "huge gradient")] {
            let e = opt.update(&*be, &mut p, &mut Buf::from_host(g.to_vec()), 1).unwrap_err();
            assert!(matches!(&e, Error::NonFinite(m) if m.contains(" b ")), "{what}: {e}");
            assert_eq!(snapshot(&opt, &p), before, "{what}: something was written");
        }
        // A first moment that overflows the weight through a tiny second moment (a corrupt
        // checkpoint's moments).
        opt.set_moments(&*be, &[0.0, f32::MAX, 0.0, 0.0], &[0.0; 4]).unwrap();
        let before = snapshot(&opt, &p);
        let e = opt.update(&*be, &mut p, &mut Buf::from_host(vec![0.0, 1e-3, 0.0, 0.0]), 1).unwrap_err();
        assert!(matches!(&e, Error::NonFinite(m) if m.contains(" a ")), "{e}");
        assert_eq!(snapshot(&opt, &p), before);
    }
}
