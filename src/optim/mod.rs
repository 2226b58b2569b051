//! The original ELECTRA optimizer: AdamW with decoupled weight decay and no bias correction
//! (optional), global-norm clipping, and the warm-up × linear-decay schedule.

use crate::params::ParamStore;
use serde::{Deserialize, Serialize};

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

/// √(Σ g²) over every gradient, accumulated in f64 in a fixed order (deterministic).
pub fn global_norm(grads: &[f32]) -> f32 {
    grads.iter().map(|&x| (x as f64) * (x as f64)).sum::<f64>().sqrt() as f32
}

/// Scales `grads` so their global norm is at most `max_norm` (TF `clip_by_global_norm`).
pub fn clip_global_norm(grads: &mut [f32], norm: f32, max_norm: f32) {
    if max_norm > 0.0 && norm > max_norm {
        let s = max_norm / norm;
        for g in grads.iter_mut() {
            *g *= s;
        }
    }
}

/// One AdamW update of every tensor in `store` with gradients `grads` and moments `m`, `v`
/// (all in the store's flat layout). `step` is the 0-based index of this update.
pub fn adamw_update(
    cfg: &AdamWConfig,
    store: &mut ParamStore,
    grads: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    lr: f32,
    step: u64,
) {
    let (b1, b2) = (cfg.beta1, cfg.beta2);
    let (c1, c2) = if cfg.bias_correction {
        let t = (step + 1) as i32;
        (1.0 - b1.powi(t), 1.0 - b2.powi(t))
    } else {
        (1.0, 1.0)
    };
    let infos: Vec<(usize, usize, bool, f32)> =
        store.infos().iter().map(|i| (i.offset, i.len, i.decay, i.lr_scale)).collect();
    for (off, len, decay, scale) in infos {
        let r = off..off + len;
        let lr_t = lr * scale;
        let wd = if decay { cfg.weight_decay } else { 0.0 };
        for (((p, &g), mi), vi) in
            store.data[r.clone()].iter_mut().zip(&grads[r.clone()]).zip(&mut m[r.clone()]).zip(&mut v[r])
        {
            *mi = b1 * *mi + (1.0 - b1) * g;
            *vi = b2 * *vi + (1.0 - b2) * g * g;
            let update = (*mi / c1) / ((*vi / c2).sqrt() + cfg.epsilon) + wd * *p;
            *p -= lr_t * update;
        }
    }
}

/// Layer-wise learning-rate decay for fine-tuning, as the original code computes it:
/// scale = decay^(L + 2 − depth), depth 0 for embeddings and the projection, i + 1 for encoder
/// layer i, L + 2 for everything else (task heads). Applies to tensors under `scope`.
pub fn set_layerwise_lr_decay(store: &mut ParamStore, scope: &str, num_layers: usize, decay: f32) {
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
    fn clipping_caps_the_norm() {
        let mut g = vec![3.0, 4.0];
        let n = global_norm(&g);
        assert_eq!(n, 5.0);
        clip_global_norm(&mut g, n, 1.0);
        assert!((global_norm(&g) - 1.0).abs() < 1e-6);
    }
}
