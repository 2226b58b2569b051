//! The safetensors parser and the HF directory loader. The first byte picks the layout: even, the
//! rest is `model.safetensors` beside a fixed valid `config.json`; odd, the next two bytes are the
//! length of a `config.json` taken from the input, the rest is `model.safetensors`.
#![no_main]
use electra::io::safetensors::TensorFile;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

const CONFIG: &str = include_str!("../../tests/fixtures/emb_eq_hidden/discriminator/config.json");

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else { return };
    let (config, weights) = if kind & 1 == 0 || rest.len() < 2 {
        (CONFIG.as_bytes(), rest)
    } else {
        let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        (&rest[2..2 + n], &rest[2 + n..])
    };
    let _ = TensorFile::parse(Path::new("<fuzz>"), weights);
    // The library refuses configs too large to allocate; the cap keeps each iteration fast.
    if let Ok(cfg) = std::str::from_utf8(config).map(electra::ElectraConfig::from_json_str) {
        if cfg.is_ok_and(|c| !electra_fuzz::small_enough(&c)) {
            return;
        }
    }
    let dir = electra_fuzz::scratch("safetensors");
    std::fs::write(dir.join("config.json"), config).expect("write config.json");
    std::fs::write(dir.join("model.safetensors"), weights).expect("write model.safetensors");
    if let Ok(model) = electra::hf::load(&dir) {
        let _ = electra::Session::new(std::sync::Arc::new(model));
    }
});
