//! The external-simulator bridge across two processes on loopback: `embodied-r sim stream` plays
//! the external simulator; this test is the runtime's side. Frames with poses arrive over zenoh,
//! a navigation hint goes back, and the simulator's camera turns by it.
#![allow(clippy::unwrap_used, clippy::print_stderr, missing_docs)]

use embodied_r_sim::bridge::{FrameSource, NavHint, NetConfig};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn heading(pose: &embodied_r_perception::Pose) -> f64 {
    let f = pose.rotation * nalgebra::Vector3::new(0.0, 0.0, 1.0);
    f.y.atan2(f.x).to_degrees()
}

#[test]
fn simulator_streams_frames_and_follows_a_nav_hint() {
    let port = free_port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let prefix = format!("sim/test{}", std::process::id());
    let mut child = Command::new(env!("CARGO_BIN_EXE_embodied-r"))
        .args([
            "sim",
            "stream",
            "--scene",
            "indoor_0001",
            "--prefix",
            &prefix,
            "--listen",
            &endpoint,
        ])
        .args([
            "--no-multicast",
            "--follow-hints",
            "--frames",
            "60",
            "--fps",
            "20",
            "--wait-subscriber",
            "60",
        ])
        .args([
            "--width",
            "160",
            "--height",
            "120",
            "--frames-per-action",
            "4",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Connect to the simulator's listener (it may take a moment to come up).
    let net = NetConfig {
        mode: Some("peer".into()),
        connect: vec![endpoint.clone()],
        listen: vec![],
        multicast_scouting: false,
        config_file: None,
        max_message_bytes: None,
    };
    let start = Instant::now();
    let session = loop {
        match embodied_r_sim::bridge::open(&net) {
            Ok(s) => break s,
            Err(e) if start.elapsed() < Duration::from_secs(30) => {
                eprintln!("retrying: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("cannot reach the simulator: {e}"),
        }
    };
    let source = FrameSource::new(&session, &prefix, 16).unwrap();
    let first = source
        .next_frame(Duration::from_secs(60))
        .expect("no frame from the simulator");
    assert_eq!((first.width, first.height), (160, 120));
    let h0 = heading(first.pose.as_ref().expect("frames carry poses"));

    source
        .send_hint(&NavHint {
            action: embodied_r_perception::Action::RotateLeft,
            target: None,
            reason: Some("test".into()),
            question_id: None,
        })
        .unwrap();

    let mut last_seq = first.seq;
    let mut turned = None;
    while let Some(f) = source.next_frame(Duration::from_secs(20)) {
        assert!(f.seq > last_seq, "sequence numbers increase");
        last_seq = f.seq;
        let d = (heading(f.pose.as_ref().unwrap()) - h0 + 540.0) % 360.0 - 180.0;
        if (d - 30.0).abs() < 0.5 {
            turned = Some(f.seq);
            break;
        }
        assert!((-0.5..30.5).contains(&d), "heading moved by {d} degrees");
    }
    assert!(
        turned.is_some(),
        "the simulator never completed the 30-degree left turn"
    );
    assert_eq!(source.stats().bad, 0);

    // Let the simulator finish its frames and report.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "simulator did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("published 60 frames")
            && stdout.contains("applied 1 navigation hints (0 malformed)"),
        "{stdout}"
    );
}
