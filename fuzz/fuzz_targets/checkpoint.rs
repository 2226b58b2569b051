//! The checkpoint loader: the input is `trainer.safetensors`, restored with `Trainer::resume`.
#![no_main]
use electra::io::safetensors::TensorFile;
use electra::pretrain::Trainer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = electra_fuzz::scratch("checkpoint");
    let path = dir.join("trainer.safetensors");
    std::fs::write(&path, data).expect("write trainer.safetensors");
    // The library refuses configs too large to allocate; the cap keeps each iteration fast.
    if let Ok(meta) = TensorFile::read_metadata(&path) {
        if let Some(Ok(state)) = meta.get("electra_trainer").map(|s| serde_json::from_str::<serde_json::Value>(s)) {
            for key in ["discriminator_config", "generator_config"] {
                if state.get(key).is_some_and(|c| !c.is_null() && !electra_fuzz::json_small_enough(c)) {
                    return;
                }
            }
        }
    }
    let _ = Trainer::resume(&dir);
});
