//! The episode log under `kill -9`: a writer process appending through the runtime's own
//! `EpisodeLog` (`test-log-writer`) is SIGKILLed at random moments, sixty times over one log
//! directory (with segment rotation every few records, fsync on and off). After each kill,
//! replay must read every acknowledged record, in order, exactly once — losing at most the
//! record in flight — and the next writer must continue the same log after cutting off a torn
//! tail. And under a file-size limit (`prlimit --fsize`, a disk that fills): appends fail with
//! a clear error, nothing half-written stays behind, records that still fit keep going in, and
//! the runtime keeps answering while its status says logging is failing.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_agent::client::ask;
use embodied_r_reasoner::episode::{read_log, segments};
use embodied_r_tests::{Proc, free_port, question, sim_config, zenoh_peer};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc::sync_channel;
use std::time::Duration;

/// A small deterministic generator (the kill moments are reproducible from the seed).
fn next_random(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 33
}

#[test]
fn kill_9_mid_write_loses_at_most_the_record_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("episodes");
    let log_s = log.to_str().unwrap().to_string();
    let rounds = 60;
    let mut rng = 0x5eed_2026_u64;
    let mut acked: Vec<String> = Vec::new();
    let (mut unacked_kept, mut torn_tails) = (0usize, 0usize);
    for round in 0..rounds {
        let fsync = if round % 3 == 0 { "always" } else { "never" };
        let start = acked.len().to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_test-log-writer"))
            .args([log_s.as_str(), fsync, start.as_str(), "65536"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, rx) = sync_channel(1 << 20);
        let reader = std::thread::Builder::new()
            .name("writer stdout".into())
            .spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .unwrap();
        // Let it write, then kill it at a random moment 0–30 ms later.
        let first = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("round {round}: the writer acknowledged nothing"));
        std::thread::sleep(Duration::from_micros(next_random(&mut rng) % 30_000));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        acked.push(first);
        acked.extend(rx.try_iter());

        let contents = read_log(&log).unwrap();
        let got: Vec<&str> = contents.records.iter().map(|r| r.id.as_str()).collect();
        assert!(
            got.len() >= acked.len(),
            "round {round}: {} acknowledged, replay reads {}",
            acked.len(),
            got.len()
        );
        assert_eq!(
            &got[..acked.len()],
            acked.as_slice(),
            "round {round}: replay differs from what was acknowledged"
        );
        // Written whole but killed before it was acknowledged: at most that one record.
        let extra = got.len() - acked.len();
        assert!(
            extra <= 1,
            "round {round}: {extra} records nobody acknowledged"
        );
        if extra == 1 {
            unacked_kept += 1;
            acked.push(got[got.len() - 1].to_string());
        }
        // Only the last segment can end torn: every writer repairs the tail before appending.
        assert!(
            contents.warnings.len() <= 1,
            "round {round}: {:?}",
            contents.warnings
        );
        for w in &contents.warnings {
            assert!(w.what.contains("torn record"), "{w:?}");
            torn_tails += 1;
        }
    }
    let segs = segments(&log).unwrap().len();
    eprintln!(
        "{rounds} kills: {} records acknowledged and replayed, {unacked_kept} written-but-unacknowledged kept, {torn_tails} torn tails cut, {segs} segments",
        acked.len()
    );
    assert!(acked.len() > rounds, "the writer made progress");
    assert!(segs > 1, "segments rotated during the run");
}

#[test]
fn a_full_disk_fails_appends_cleanly_and_loses_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("episodes");
    let log_s = log.to_str().unwrap().to_string();
    // One 64 KiB segment limit on a 10 MB segment size: the segment fills, appends fail; a
    // smaller record may still fit after a larger one failed.
    let out = Command::new("prlimit")
        .arg("--fsize=65536")
        .arg(env!("CARGO_BIN_EXE_test-log-writer"))
        .args([log_s.as_str(), "always", "0", "10000000", "40"])
        .output()
        .expect("prlimit (util-linux) runs the writer");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let acked: Vec<&str> = stdout.lines().filter(|l| l.starts_with("crash-")).collect();
    let errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("error ")).collect();
    assert!(
        !out.status.success(),
        "the writer stops after 40 failures in a row"
    );
    assert!(!acked.is_empty() && !errors.is_empty(), "{stdout}");
    assert!(
        errors[0].contains("episodes-000001.jsonl") && errors[0].contains("too large"),
        "the error names the segment and the reason: {}",
        errors[0]
    );
    let contents = read_log(&log).unwrap();
    let got: Vec<&str> = contents.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(got, acked, "replay reads exactly the acknowledged records");
    assert!(
        contents.warnings.is_empty(),
        "no half-written record stayed behind: {:?}",
        contents.warnings
    );
    let size = std::fs::metadata(log.join("episodes-000001.jsonl"))
        .unwrap()
        .len();
    assert!(size <= 65536, "{size}");

    // Space again: the same log continues.
    let next = acked.len().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_test-log-writer"))
        .args([log_s.as_str(), "never", next.as_str(), "10000000"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut child = out;
    child.kill().unwrap();
    let rest = child.wait_with_output().unwrap();
    let more = String::from_utf8_lossy(&rest.stdout)
        .lines()
        .filter(|l| l.starts_with("crash-"))
        .count();
    let contents = read_log(&log).unwrap();
    assert!(
        contents.records.len() >= acked.len() + more,
        "{}",
        contents.records.len()
    );
    assert!(contents.records.len() <= acked.len() + more + 1);
    eprintln!(
        "full disk: {} records in, {} appends refused, then {more} more after space came back",
        acked.len(),
        errors.len()
    );
}

/// The runtime itself under a file-size limit: once its log segment cannot grow, every answer
/// still comes, the status reports the logging error, and the log holds whole records only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_keeps_answering_when_its_log_cannot_grow() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cfg = sim_config(dir.path(), port, "");
    let mut rt = Proc::spawn_under(
        &["prlimit", "--fsize=12000"],
        &["run", "--config", cfg.to_str().unwrap()],
        &[],
    );
    rt.wait_line("ready ", Duration::from_secs(180));
    let s = zenoh_peer(port).await;
    let key = "robots/sim/embodied-r/ask";
    let req = question("What is in front of me?", 60_000);
    let (mut answered, mut status_error) = (0, None);
    for _ in 0..40 {
        let v = ask(&s, key, &req, Duration::from_secs(90)).await.unwrap();
        if v["error"]["code"] == "no_frames" {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        assert!(v.get("error").is_none(), "answers continue: {v}");
        answered += 1;
        let sub = s
            .declare_subscriber("robots/sim/embodied-r/status")
            .await
            .unwrap();
        let st: serde_json::Value =
            serde_json::from_slice(&sub.recv_async().await.unwrap().payload().to_bytes()).unwrap();
        if let Some(e) = st["log"]["error"].as_str() {
            status_error = Some(e.to_string());
            // Two more answers while logging is failing.
            for _ in 0..2 {
                let v = ask(&s, key, &req, Duration::from_secs(90)).await.unwrap();
                assert!(v.get("error").is_none(), "answers continue: {v}");
                answered += 1;
            }
            break;
        }
    }
    let e = status_error.expect("the status reports the logging failure");
    assert!(e.contains("episodes-") && e.contains("too large"), "{e}");
    rt.terminate();
    assert_eq!(
        rt.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        rt.stderr()
    );
    assert!(rt.stderr().contains("episode log:"), "{}", rt.stderr());
    let contents = read_log(&dir.path().join("episodes")).unwrap();
    assert!(!contents.records.is_empty());
    assert!(
        contents.records.len() < answered,
        "some answers were not logged"
    );
    assert!(contents.warnings.is_empty(), "{:?}", contents.warnings);
    eprintln!(
        "log full: {answered} answers, {} logged, status said: {e}",
        contents.records.len()
    );
}
