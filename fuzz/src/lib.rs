//! Helpers shared by the fuzz targets: a scratch directory per process and a size cap on the
//! models a target builds.

use electra::ElectraConfig;
use std::path::PathBuf;

/// A scratch directory for this process and target (created on first use, reused across inputs).
pub fn scratch(target: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("electra-fuzz-{target}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("scratch directory");
    d
}

/// Whether a model of `cfg` is small enough to build in a fuzz iteration (at most ~50M parameters
/// and 4096 positions). The library itself refuses sizes that are absurd or exceed the machine's
/// memory (`electra::limits`); a model that fits the machine can still be far above the fuzzer's
/// 2 GB RSS limit, so this cap keeps each iteration fast and within it.
pub fn small_enough(cfg: &ElectraConfig) -> bool {
    cfg.tower_params().is_ok_and(|n| n <= 50_000_000) && cfg.max_position_embeddings <= 4096
}

/// Like [`small_enough`] for a config given as JSON (a checkpoint's embedded config); `true` when
/// it does not parse (the library reports that itself).
pub fn json_small_enough(v: &serde_json::Value) -> bool {
    match ElectraConfig::from_json_str(&v.to_string()) {
        Ok(cfg) => small_enough(&cfg),
        Err(_) => !v.is_object() || serde_json::from_value::<ElectraConfig>(v.clone()).map_or(true, |c| small_enough(&c)),
    }
}
