//! The runtime's configuration as an operator writes it: a TOML file, then `EMBODIED_R_*`
//! environment variables and `--set KEY=VALUE` overrides on top, through to the validated
//! `Config` (every error must name its key). Input: the TOML text, then NUL-separated
//! `NAME=VALUE` environment entries (`EMBODIED_R_` is prefixed when missing) and `--set`
//! entries after a second NUL NUL.
#![no_main]

use embodied_r_agent::config::ConfigLoader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (head, sets) = text.split_once("\0\0").unwrap_or((&text, ""));
    let mut parts = head.split('\0');
    let toml = parts.next().unwrap_or_default();
    let env: Vec<(String, String)> = parts
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| {
            let k = if k.starts_with("EMBODIED_R_") {
                k.to_string()
            } else {
                format!("EMBODIED_R_{k}")
            };
            (k, v.to_string())
        })
        .collect();
    let path = embodied_r_fuzz::scratch_file("runtime.toml", toml.as_bytes());
    let loaded = ConfigLoader::new()
        .file(&path)
        .and_then(|l| l.env(env))
        .and_then(|l| l.overrides(sets.split('\0').filter(|s| !s.is_empty())))
        .and_then(|l| l.build());
    match loaded {
        Ok(c) => {
            let _ = c.prefix();
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
