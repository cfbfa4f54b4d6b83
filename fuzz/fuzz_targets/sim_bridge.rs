//! What an external simulator sends over the zenoh bridge: the ERF1 frame envelope (header,
//! pose, JPEG) through to the frame the runtime queues, and the navigation-hint JSON the
//! simulator side reads. The first byte picks which.
#![no_main]

use embodied_r_sim::bridge::{FrameMessage, NavHint};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "sim/fuzz/frame";

fuzz_target!(|data: &[u8]| {
    let Some((&kind, payload)) = data.split_first() else {
        return;
    };
    if kind & 1 == 0 {
        if let Ok(m) = FrameMessage::decode(payload, KEY)
            && let Ok(f) = m.to_frame(KEY)
        {
            assert_eq!(
                f.rgb.len(),
                f.width as usize * f.height as usize * 3,
                "frame size matches its pixels"
            );
        }
    } else if let Ok(h) = NavHint::decode(payload, "sim/fuzz/nav_hint") {
        let again =
            NavHint::decode(&h.encode(), "sim/fuzz/nav_hint").expect("our own JSON decodes");
        assert_eq!(again, h, "round trip");
    }
});
