//! The CDR decoders of `sensor_msgs/Image` and `sensor_msgs/CompressedImage`, through to the
//! rgb8 frame the runtime keeps. The first byte picks the type.
#![no_main]

use embodied_r_perception::ros::{COMPRESSED_IMAGE, IMAGE, image_to_frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    let ty = if kind & 1 == 0 {
        IMAGE
    } else {
        COMPRESSED_IMAGE
    };
    if let Ok(f) = image_to_frame(ty, payload, 0, 1.0) {
        assert_eq!(
            f.rgb.len(),
            f.width as usize * f.height as usize * 3,
            "frame size matches its pixels"
        );
    }
});
