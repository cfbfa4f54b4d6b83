//! The Embodied-R (JSON array) and GRPO (JSONL) dataset readers. The first byte picks the
//! file kind the loader sees.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let name = if kind & 1 == 0 {
        "rows.json"
    } else {
        "rows.jsonl"
    };
    let path = embodied_r_fuzz::scratch_file(name, body);
    if let Ok((examples, _report)) = embodied_r_trainer::data::load(&path) {
        for e in &examples {
            let _ = e.messages();
            let _ = e.question();
        }
    }
});
