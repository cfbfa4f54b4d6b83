//! The safetensors header (JSON length prefix, dtypes, shapes, offsets) and every tensor's
//! conversion to f32.
#![no_main]

use embodied_r_reasoner::SafetensorsSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = embodied_r_fuzz::scratch_file("model.safetensors", data);
    let Ok(set) = SafetensorsSet::open_files(&[path]) else {
        return;
    };
    for name in set.tensor_names() {
        let _ = set.read_f32(&name);
    }
});
