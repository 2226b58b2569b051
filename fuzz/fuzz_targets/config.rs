//! config.json: `ElectraConfig::from_json_str`, then what the library derives from a valid config.
#![no_main]
use electra::ElectraConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(cfg) = ElectraConfig::from_json_str(s) {
        let _ = cfg.activation();
        let _ = cfg.head_dim();
        let _ = cfg.to_json_string();
        let _ = cfg.generator_config(0.25);
        let _ = cfg.generator_config(1.0 / 3.0);
    }
});
