//! The episode-log reader (torn and corrupted tails), the dataset rows made from what it
//! read, and the label-file reader on the same bytes (people's labels, `labels.jsonl`).
#![no_main]

use embodied_r_reasoner::episode::{LogContents, embodied_r_row, grpo_row, read_segment};
use embodied_r_reasoner::labels::{apply_labels, read_labels};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = embodied_r_fuzz::scratch_file("episodes-000001.jsonl", data);
    let mut out = LogContents::default();
    if read_segment(&path, &mut out).is_ok() {
        for r in &out.records {
            let _ = grpo_row(r);
            let _ = embodied_r_row(r);
        }
        for w in &out.warnings {
            assert!(
                w.offset <= data.len() as u64,
                "warning offset inside the file"
            );
        }
    }
    let labels_file = embodied_r_fuzz::scratch_file("labels.jsonl", data);
    if let Some(dir) = labels_file.parent()
        && let Ok(labels) = read_labels(dir)
    {
        for w in &labels.warnings {
            assert!(
                w.offset <= data.len() as u64,
                "label warning offset inside the file"
            );
        }
        let orphans = apply_labels(&mut out.records, &labels);
        assert!(orphans <= labels.by_episode.len());
    }
});
