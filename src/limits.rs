//! What a model, a trainer or one call needs in bytes, computed from sizes that come from outside
//! (a config.json, an option, an argument) with checked arithmetic, and checked against a limit
//! BEFORE anything is allocated.
//!
//! The limit is the caller's memory budget (`"max_memory_bytes"` in the options of sessions,
//! trainers and fine-tuners) when one is set, else what the machine has: its physical memory, or
//! the cgroup v2 limit (`/sys/fs/cgroup/memory.max`) when that is smaller. Checking before
//! allocating matters because Linux overcommits: a 20 GB `malloc` "succeeds" and the OOM killer
//! ends the host's process later, when the pages are touched.
//!
//! The estimates are upper bounds of the buffers the code really allocates (encoder activations,
//! gradients, heads; see `model/encoder.rs`), rounded up, not exact counts: their purpose is to
//! refuse what cannot fit, not to account for every byte.

use crate::config::ElectraConfig;
use crate::error::{Error, Result};
use std::sync::OnceLock;

/// Most labels a classifier made or continued by the fine-tuner may have. With names of at most
/// [`MAX_LABEL_BYTES`] bytes and no control characters (so JSON escaping at most doubles them),
/// its config.json (`id2label` and `label2id`) stays under the 1 MiB the loader reads
/// ([`crate::io::read::MAX_CONFIG_BYTES`]; about 0.52 MiB at both limits).
///
/// cbindgen:ignore
pub const MAX_LABELS: usize = 1024;

/// Longest label name, in bytes of UTF-8 (see [`MAX_LABELS`]).
///
/// cbindgen:ignore
pub const MAX_LABEL_BYTES: usize = 128;

/// Bytes of one `f32`.
const F32: usize = 4;

/// Checked `a·b`, as [`Error::OutOfMemory`] naming `what` on overflow.
fn mul(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_mul(b).ok_or_else(|| overflow(what))
}

/// Checked `a + b`.
fn add(a: usize, b: usize, what: &str) -> Result<usize> {
    a.checked_add(b).ok_or_else(|| overflow(what))
}

/// Checked sum of products: `Σ Π term`.
fn sum_of_products(terms: &[&[usize]], what: &str) -> Result<usize> {
    terms.iter().try_fold(0usize, |acc, t| add(acc, crate::alloc::count(t, what)?, what))
}

fn overflow(what: &str) -> Error {
    Error::OutOfMemory(format!("{what}: the size overflows the address space"))
}

/// Bytes of the weights of a model made of `towers` (one config per encoder tower).
pub fn model_bytes(towers: &[&ElectraConfig]) -> Result<usize> {
    let params = towers.iter().try_fold(0usize, |acc, c| add(acc, c.tower_params()?, "model parameters"))?;
    mul(params, F32, "model weights")
}

/// Bytes a trainer holds for `params` scalars whatever the batch: weights, gradients and the two
/// Adam moments.
pub fn training_bytes(params: usize) -> Result<usize> {
    crate::alloc::count(&[params, 4, F32], "weights, gradients and Adam moments")
}

/// Bytes of one encoder tower's activations (plus its head's) for `batch` × `seq_len` tokens:
/// every layer's kept activations and the backward's scratch when `training`, two reused
/// layers' when not.
pub fn activation_bytes(cfg: &ElectraConfig, batch: usize, seq_len: usize, training: bool) -> Result<usize> {
    let what = "activations";
    let n = mul(batch, seq_len, what)?;
    let (v, e, h, i, nh) =
        (cfg.vocab_size, cfg.embedding_size, cfg.hidden_size, cfg.intermediate_size, cfg.num_attention_heads);
    let scores = crate::alloc::count(&[batch, nh, seq_len, seq_len], what)?;
    let kept = if training { cfg.num_hidden_layers } else { cfg.num_hidden_layers.min(2) };
    // Per layer: q, k, v, context, two LayerNorm inputs (6·H), four LayerNorm statistics, the
    // feed-forward pre-activation (I) and the attention probabilities (a backend that recomputes
    // attention in the backward keeps neither those nor q, k, v and the context: an upper bound).
    let per_layer = sum_of_products(&[&[n, 6, h], &[n, 4], &[n, i], &[scores]], what)?;
    // Embeddings (sum, output, statistics, mask), the projection, the current x1 and the two
    // alternating layer outputs, the feed-forward activation, and the head: dense H plus up to
    // V logits per token.
    let base = sum_of_products(&[&[n, 2, e], &[n, 4], &[n, h], &[n, 3, h], &[n, i], &[n, h], &[n, e], &[n, v]], what)?;
    let mut total = add(base, mul(kept, per_layer, what)?, what)?;
    if training {
        // The backward's scratch: six H-wide gradients, a dropped one, six recomputed (x1, the
        // layer input, q, k, v, context), two I-wide, two E-wide, the scores, ten statistics.
        let grads = sum_of_products(&[&[n, 13, h], &[n, 2, i], &[n, 2, e], &[scores], &[n, 10]], what)?;
        total = add(total, grads, what)?;
    }
    mul(total, F32, what)
}

/// The machine's memory in bytes: physical memory, or the cgroup v2 limit when smaller;
/// `u64::MAX` where neither can be read. Read once.
pub fn machine_bytes() -> u64 {
    static MACHINE: OnceLock<u64> = OnceLock::new();
    *MACHINE.get_or_init(|| physical_bytes().min(cgroup_bytes()))
}

#[cfg(unix)]
fn physical_bytes() -> u64 {
    // SAFETY: sysconf has no preconditions; it returns -1 for an unknown name.
    let (pages, size) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGE_SIZE)) };
    if pages <= 0 || size <= 0 {
        return u64::MAX;
    }
    (pages as u64).saturating_mul(size as u64)
}

#[cfg(not(unix))]
fn physical_bytes() -> u64 {
    u64::MAX
}

/// The cgroup v2 memory limit of this process's cgroup (`max`, absent or unreadable: no limit).
fn cgroup_bytes() -> u64 {
    std::fs::read_to_string("/sys/fs/cgroup/memory.max")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(u64::MAX)
}

/// Fails with [`Error::OutOfMemory`] when `needed` bytes for `what` exceed the limit: `budget`
/// when positive (the caller's `max_memory_bytes`), else [`machine_bytes`].
pub fn check(needed: usize, budget: u64, what: &str) -> Result<()> {
    let needed = needed as u64;
    if budget > 0 {
        if needed > budget {
            return Err(Error::OutOfMemory(format!(
                "{what} needs {needed} bytes, more than the memory budget max_memory_bytes = {budget}; \
                 raise max_memory_bytes or use smaller sizes"
            )));
        }
        return Ok(());
    }
    let machine = machine_bytes();
    if needed > machine {
        return Err(Error::OutOfMemory(format!(
            "{what} needs {needed} bytes, more than this machine's memory ({machine} bytes); use smaller sizes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimates_bound_the_real_model_and_overflow_is_an_error() {
        let cfg = ElectraConfig::preset("tiny").unwrap();
        let m = crate::model::Model::new(Some(cfg.clone()), None, false).unwrap();
        let est = cfg.tower_params().unwrap();
        assert!(est >= m.num_parameters() && est < 2 * m.num_parameters(), "{est} vs {}", m.num_parameters());
        let mut big = cfg.clone();
        big.vocab_size = usize::MAX / 2;
        assert!(matches!(big.tower_params(), Err(Error::OutOfMemory(_))));
        assert!(matches!(activation_bytes(&cfg, usize::MAX, 2, true), Err(Error::OutOfMemory(_))));
        assert!(activation_bytes(&cfg, 2, 8, true).unwrap() > activation_bytes(&cfg, 2, 8, false).unwrap());
    }

    #[test]
    fn check_uses_the_budget_then_the_machine() {
        assert!(machine_bytes() > 1 << 20);
        assert!(check(1000, 1000, "x").is_ok());
        let e = check(1001, 1000, "a session call").unwrap_err().to_string();
        assert!(e.contains("1001") && e.contains("max_memory_bytes = 1000") && e.contains("a session call"), "{e}");
        assert!(matches!(check(usize::MAX, 0, "x"), Err(Error::OutOfMemory(_))));
    }
}
