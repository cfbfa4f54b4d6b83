//! `embodied-r config check` and `run` refuse bad configurations with messages that name the key,
//! the value, what is accepted and where the value came from.

#![allow(clippy::unwrap_used)]

use embodied_r_tests::run;

#[test]
fn shipped_configs_are_valid() {
    for f in [
        "launch/config/sim.toml",
        "launch/config/camera.toml",
        "launch/config/vlm-server.toml",
        "launch/config/ros2.toml",
        "launch/config/ros2-zenoh.toml",
    ] {
        let (code, out, err) = run(&["config", "check", f], &[]);
        assert_eq!(code, 0, "{f}: {err}");
        assert!(out.contains("robot_id"), "{f}: {out}");
    }
}

#[test]
fn bad_keys_and_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "robot_id = \"sim\"\n[api]\nqueu = 3\n").unwrap();
    let (code, _, err) = run(&["config", "check", bad.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("queu") && err.contains("queue") && err.contains("bad.toml"),
        "{err}"
    );

    let (code, _, err) = run(
        &["config", "check", "launch/config/sim.toml"],
        &[("EMBODIED_R_REASONER__TEMPERATURE", "hot")],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("reasoner.temperature") && err.contains("hot"),
        "{err}"
    );
    assert!(err.contains("EMBODIED_R_REASONER__TEMPERATURE"), "{err}");

    let (code, _, err) = run(
        &[
            "config",
            "check",
            "launch/config/sim.toml",
            "--set",
            "source.scene=moon_1",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("source.scene") && err.contains("moon_1") && err.contains("city_NNNN"),
        "{err}"
    );

    let (code, _, err) = run(&["run", "--config", "/nonexistent/robot.toml"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/robot.toml"), "{err}");
}

#[test]
fn overrides_apply_in_order_file_env_flag() {
    let (code, out, err) = run(
        &[
            "config",
            "check",
            "launch/config/sim.toml",
            "--set",
            "api.queue=9",
        ],
        &[
            ("EMBODIED_R_API__QUEUE", "7"),
            ("EMBODIED_R_ROBOT_ID", "rover-1"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("queue = 9"), "{out}");
    assert!(out.contains("robot_id = \"rover-1\""), "{out}");
}

#[test]
fn ros2_settings_are_checked_and_r2r_without_the_feature_says_how_to_build() {
    let dir = tempfile::tempdir().unwrap();
    let off = dir.path().join("off.toml");
    std::fs::write(
        &off,
        "[source]\nkind = \"ros2\"\ntopic = \"/camera/image_raw\"\n[describer]\nkind = \"openai\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["config", "check", off.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("ros2.transport") && err.contains("bridge"),
        "{err}"
    );
    let (code, _, err) = run(
        &[
            "config",
            "check",
            "launch/config/ros2-zenoh.toml",
            "--set",
            "ros2.answer_topic=/bad//name",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("ros2.answer_topic") && err.contains("empty token"),
        "{err}"
    );
    let (code, _, err) = run(
        &[
            "config",
            "check",
            "launch/config/ros2-zenoh.toml",
            "--source",
            "ros2:/1cam",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("source.topic") && err.contains("digit") && err.contains("--source"),
        "{err}"
    );
    // The r2r node is compiled only with the `ros2` feature (inside a sourced ROS 2).
    let (code, _, err) = run(
        &[
            "run",
            "--config",
            "launch/config/ros2.toml",
            "--set",
            "zenoh.multicast=false",
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("`ros2` feature") && err.contains("rmw_zenoh"),
        "{err}"
    );
}
