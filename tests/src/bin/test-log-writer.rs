//! Appends episode records through the runtime's own writer (`agent::episodes::EpisodeLog`) as
//! fast as it can, printing each record's id on stdout once `append` has returned (the record
//! is then acknowledged). The crash tests SIGKILL it at random moments and check what replay
//! reads against what was acknowledged.
//!
//! A failed append prints `error <message>` and, up to MAX_ERRORS failures in a row (default 0),
//! the writer goes on with the next record (the full-disk tests run it under a file-size limit).
//!
//! Usage: test-log-writer DIR always|never START SEGMENT_BYTES [MAX_ERRORS]

#![allow(clippy::print_stdout)]

use embodied_r_agent::config::{FsyncPolicy, LogConfig};
use embodied_r_agent::episodes::EpisodeLog;
use embodied_r_reasoner::episode::EpisodeRecord;
use std::io::Write;

fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    let (dir, fsync, start, segment, max_errors) = match args.as_slice() {
        [_, d, f, s, b] => (d, f, s, b, 0u32),
        [_, d, f, s, b, m] => (
            d,
            f,
            s,
            b,
            m.parse().map_err(|e| format!("MAX_ERRORS: {e}"))?,
        ),
        _ => {
            return Err(
                "usage: test-log-writer DIR always|never START SEGMENT_BYTES [MAX_ERRORS]".into(),
            );
        }
    };
    embodied_r_agent::episodes::surface_file_size_limits();
    let fsync = match fsync.as_str() {
        "always" => FsyncPolicy::Always,
        "never" => FsyncPolicy::Never,
        other => return Err(format!("fsync {other:?}: expected always or never")),
    };
    let start: u64 = start.parse().map_err(|e| format!("START {start:?}: {e}"))?;
    let segment_bytes: u64 = segment
        .parse()
        .map_err(|e| format!("SEGMENT_BYTES {segment:?}: {e}"))?;
    let cfg = LogConfig {
        dir: dir.into(),
        fsync,
        segment_bytes,
        max_segments: 1_000_000,
        frames: false,
        ..LogConfig::default()
    };
    let mut log = EpisodeLog::open(&cfg).map_err(|e| e.to_string())?;
    let mut out = std::io::stdout().lock();
    let mut errors = 0u32;
    for i in start.. {
        let mut r = EpisodeRecord::new(format!("crash-{i:08}"), "crash-test", "What is ahead?");
        // Records of varied, realistic size (a few hundred bytes to ~10 KB).
        r.completion = "<think>".to_string()
            + &"the door is left of the tower; ".repeat((i % 300) as usize)
            + "</think><answer>A</answer>";
        r.time_unix = i as f64;
        match log.append(&mut r, &[]) {
            Ok(()) => {
                errors = 0;
                writeln!(out, "{}", r.id).map_err(|e| e.to_string())?;
            }
            Err(e) => {
                errors += 1;
                writeln!(out, "error {e}").map_err(|e| e.to_string())?;
                if errors > max_errors {
                    out.flush().map_err(|e| e.to_string())?;
                    return Err(e.to_string());
                }
            }
        }
        out.flush().map_err(|e| e.to_string())?;
    }
    Ok(())
}
