//! MCAP reading (records, chunks, compression, schemas) and each image message's decoding.
#![no_main]

use embodied_r_perception::source::mcap::{decode_message, for_each_message, image_topics};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = embodied_r_fuzz::scratch_file("bag.mcap", data);
    let _ = image_topics(&path);
    let _ = for_each_message(&path, &[], |m| {
        let _ = decode_message(&m.schema, &m.data, 0, m.log_time_ns);
        true
    });
});
