//! The options JSON of trainers, fine-tuners and sessions (what the C ABI's `*_with_options` take).
#![no_main]
use electra::finetune::FinetuneOptions;
use electra::pretrain::TrainOptions;
use electra::SessionOptions;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(o) = TrainOptions::from_json(Some(s)) {
        let _ = o.adamw();
        let _ = o.max_predictions();
    }
    let _ = FinetuneOptions::from_json(Some(s));
    let _ = SessionOptions::from_json(Some(s));
});
