//! Matrix-product FLOP counts of a training step, for benchmarks and for comparing objectives
//! at equal compute. Elementwise work (LayerNorm, GELU, softmax) is left out: it is a few
//! percent of the total at every size we ship.

use crate::config::ElectraConfig;
use crate::model::Towers;

/// FLOPs of one encoder forward over `n` real tokens in rows of `t` (projections, feed-forward,
/// attention scores and mixing, and the embedding projection when there is one).
pub fn encoder_flops(cfg: &ElectraConfig, n: usize, t: usize) -> f64 {
    let (h, i, e) = (cfg.hidden_size as f64, cfg.intermediate_size as f64, cfg.embedding_size as f64);
    let n = n as f64;
    let per_layer = 2.0 * n * (4.0 * h * h + 2.0 * h * i) + 4.0 * n * t as f64 * h;
    let proj = if cfg.embedding_size != cfg.hidden_size { 2.0 * n * e * h } else { 0.0 };
    per_layer * cfg.num_hidden_layers as f64 + proj
}

/// FLOPs of one forward of a masked-LM head (dense H→E, then the E→V output projection) at
/// `masked` rows: the generator's, and the hybrid objective's on the discriminator.
pub fn mlm_head_flops(hidden: usize, emb: usize, vocab: usize, masked: usize) -> f64 {
    2.0 * masked as f64 * (hidden * emb + emb * vocab) as f64
}

/// FLOPs of one training step (forward, and a backward counted as twice the forward) of a
/// pre-training model on `n` tokens of `t`-long rows with `masked` masked positions: the
/// generator (or MLM model) encoder and its head at the masked positions, plus the
/// discriminator encoder and head over every token when there is one.
pub fn train_step_flops(towers: &Towers, n: usize, t: usize, masked: usize) -> f64 {
    let mut fwd = 0.0;
    if let Some(g) = towers.gen() {
        let c = &g.config;
        fwd += encoder_flops(c, n, t) + mlm_head_flops(c.hidden_size, c.embedding_size, c.vocab_size, masked);
    }
    if let Some(d) = towers.disc() {
        let c = &d.config;
        fwd += encoder_flops(c, n, t) + 2.0 * n as f64 * (c.hidden_size * c.hidden_size + c.hidden_size) as f64;
    }
    3.0 * fwd
}
