//! `run`, `config check`, `ask`, `watch`: the runtime and its operator console.

#![allow(clippy::print_stdout)]

use crate::inproc::{session_to, tokio_runtime};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use embodied_r_agent::client::ask;
use embodied_r_agent::config::{Config, ConfigLoader};
use embodied_r_agent::{AskRequest, Runtime};
use embodied_r_perception::buffer::WindowQuery;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `embodied-r run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The runtime's TOML configuration (see launch/config/).
    #[arg(long, env = "EMBODIED_R_CONFIG")]
    pub config: PathBuf,
    /// Listen for zenoh peers and clients here (repeatable), e.g. tcp/127.0.0.1:7447.
    #[arg(long)]
    pub listen: Vec<String>,
    /// Connect to these zenoh endpoints (repeatable).
    #[arg(long)]
    pub connect: Vec<String>,
    /// Override any key: --set api.queue=8 (repeatable; applied after EMBODIED_R_* variables).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Source overrides.
    #[command(flatten)]
    pub source: SourceArgs,
}

/// `--source`, `--topic`, `--rate`: where frames come from, over the config's `[source]`.
#[derive(Debug, Clone, Default, Args)]
pub struct SourceArgs {
    /// Where frames come from, overriding `[source]`: bag:PATH (a rosbag2 MCAP file or bag
    /// directory), ros2:TOPIC (a ROS 2 image topic, see `[ros2]`), folder:PATH, video:PATH,
    /// camera:INDEX, sim:SCENE or pattern:SEED (a synthetic moving test pattern).
    #[arg(long, value_name = "KIND:WHAT")]
    pub source: Option<String>,
    /// The image topic of a bag or of ROS 2 (source.topic).
    #[arg(long)]
    pub topic: Option<String>,
    /// Pacing of file and simulator sources: realtime (the frames' own timestamps) or max.
    #[arg(long, value_parser = ["realtime", "max"])]
    pub rate: Option<String>,
}

/// The `[source]` keys a `--source KIND:WHAT` sets (values as TOML literals).
pub fn source_overrides(spec: &str) -> Result<Vec<(&'static str, String)>> {
    let quote = |v: &str| toml::Value::String(v.to_string()).to_string();
    let Some((kind, what)) = spec.split_once(':') else {
        bail!(
            "--source {spec:?}: expected KIND:WHAT, e.g. bag:drive.mcap, ros2:/camera/image_raw, folder:frames/, video:run.mp4, camera:0, sim:city_0000 or pattern:1"
        );
    };
    if what.is_empty() {
        bail!("--source {spec:?}: nothing after {kind:?}");
    }
    Ok(match kind {
        "bag" | "mcap" => vec![("source.kind", quote("mcap")), ("source.path", quote(what))],
        "folder" | "video" => vec![("source.kind", quote(kind)), ("source.path", quote(what))],
        "ros2" => vec![
            ("source.kind", quote("ros2")),
            ("source.topic", quote(what)),
        ],
        "sim" => vec![("source.kind", quote("sim")), ("source.scene", quote(what))],
        "pattern" => {
            let seed: u32 = what.parse().with_context(|| {
                format!("--source {spec:?}: pattern needs a seed below 2^32, e.g. pattern:1")
            })?;
            vec![
                ("source.kind", quote("pattern")),
                ("source.seed", seed.to_string()),
            ]
        }
        "camera" => {
            let index: u32 = what.parse().with_context(|| {
                format!("--source {spec:?}: camera needs a device index, e.g. camera:0")
            })?;
            vec![
                ("source.kind", quote("camera")),
                ("source.device", index.to_string()),
            ]
        }
        other => bail!(
            "--source {spec:?}: unknown kind {other:?}; expected bag, ros2, folder, video, camera, sim or pattern"
        ),
    })
}

/// Loads the config with the command line's overrides.
fn load(
    config: &Path,
    sets: &[String],
    source: &SourceArgs,
    listen: &[String],
    connect: &[String],
) -> Result<Config> {
    load_with(config, sets, source, listen, connect, &[])
}

/// As [`load`], with ROS 2 parameters (key, TOML literal) applied after the environment and
/// before `--set`.
fn load_with(
    config: &Path,
    sets: &[String],
    source: &SourceArgs,
    listen: &[String],
    connect: &[String],
    params: &[(String, String)],
) -> Result<Config> {
    let a = source;
    let mut loader = ConfigLoader::new().file(config)?.env(std::env::vars())?;
    for (key, value) in params {
        loader.set(key, value, format!("from ROS 2 parameter {key}"))?;
    }
    let mut loader = loader.overrides(sets.iter().map(String::as_str))?;
    if let Some(spec) = &a.source {
        for (key, value) in source_overrides(spec)? {
            loader.set(key, &value, "from --source".into())?;
        }
    }
    if let Some(topic) = &a.topic {
        loader.set(
            "source.topic",
            &toml::Value::String(topic.clone()).to_string(),
            "from --topic".into(),
        )?;
    }
    if let Some(rate) = &a.rate {
        loader.set(
            "source.rate",
            &toml::Value::String(rate.clone()).to_string(),
            "from --rate".into(),
        )?;
    }
    if !listen.is_empty() {
        loader.set(
            "zenoh.listen",
            &serde_json::to_string(listen)?,
            "from --listen".into(),
        )?;
    }
    if !connect.is_empty() {
        loader.set(
            "zenoh.connect",
            &serde_json::to_string(connect)?,
            "from --connect".into(),
        )?;
    }
    Ok(loader.build()?)
}

/// A node started by ROS 2 reads its parameters (`-p`, `--params-file`) as configuration keys.
#[cfg(feature = "ros2")]
fn with_ros_parameters(a: &RunArgs, cfg: Config) -> Result<Config> {
    use embodied_r_agent::config::Ros2Transport;
    if cfg.ros2.transport != Ros2Transport::R2r {
        return Ok(cfg);
    }
    let params =
        embodied_r_agent::ros2::node::parameter_overrides(&cfg.ros2.node_name, &cfg.ros2.namespace)
            .context("starting the ROS 2 node")?;
    load_with(
        &a.config, &a.sets, &a.source, &a.listen, &a.connect, &params,
    )
    .with_context(|| {
        format!(
            "loading {} with the node's ROS 2 parameters",
            a.config.display()
        )
    })
}

#[cfg(not(feature = "ros2"))]
fn with_ros_parameters(_: &RunArgs, cfg: Config) -> Result<Config> {
    Ok(cfg)
}

/// Waits for SIGINT or SIGTERM.
pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `run`: prints `ready {json}` once it serves, `summary {json}` at exit.
pub fn run(a: &RunArgs) -> Result<()> {
    let cfg = load(&a.config, &a.sets, &a.source, &a.listen, &a.connect)
        .with_context(|| format!("loading {}", a.config.display()))?;
    let cfg = with_ros_parameters(a, cfg)?;
    let runtime = Runtime::new(cfg).context("starting the runtime")?;
    let rt = tokio_runtime()?;
    let summary = rt.block_on(runtime.run(shutdown_signal(), |ready| {
        println!("ready {}", serde_json::to_string(ready).unwrap_or_default());
    }))?;
    println!("summary {}", serde_json::to_string(&summary)?);
    Ok(())
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Checks a configuration (with EMBODIED_R_* and --set applied) and prints it in full.
    Check {
        /// The TOML file.
        file: PathBuf,
        /// Overrides, as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Source overrides, as for `run`.
        #[command(flatten)]
        source: SourceArgs,
    },
}

/// `config check`.
pub fn config(c: &ConfigCommand) -> Result<()> {
    match c {
        ConfigCommand::Check { file, sets, source } => {
            let cfg = load(file, sets, source, &[], &[])?;
            println!("# {} is valid; every setting in effect:", file.display());
            print!("{}", toml::to_string(&cfg).context("printing the config")?);
            Ok(())
        }
    }
}

/// How the console joins the zenoh network.
#[derive(Debug, Clone, Args)]
pub struct NetArgs {
    /// Robot id (the key prefix is robots/<id>/embodied-r unless --prefix is given).
    #[arg(long, default_value = "sim", env = "EMBODIED_R_ROBOT")]
    pub robot: String,
    /// Full key prefix instead of robots/<robot>/embodied-r.
    #[arg(long)]
    pub prefix: Option<String>,
    /// zenoh endpoints to connect to, e.g. tcp/127.0.0.1:7447 (repeatable).
    #[arg(long)]
    pub connect: Vec<String>,
    /// Turn off multicast scouting (find the runtime only through --connect).
    #[arg(long)]
    pub no_multicast: bool,
    /// A zenoh JSON5 configuration file for this console's session (TLS certificates and
    /// keys, credentials); --connect and --no-multicast override it.
    #[arg(long, env = "EMBODIED_R_ZENOH_CONFIG")]
    pub zenoh_config: Option<PathBuf>,
}

impl NetArgs {
    pub(crate) fn prefix(&self) -> String {
        self.prefix
            .clone()
            .unwrap_or_else(|| format!("robots/{}/embodied-r", self.robot))
    }

    pub(crate) async fn open(&self) -> Result<zenoh::Session> {
        session_to(
            self.connect.clone(),
            !self.no_multicast,
            self.zenoh_config.clone(),
        )
        .await
    }
}

/// `embodied-r ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// The question.
    pub question: String,
    /// An option, `A=text` or just `text` (lettered in order); repeat for each option.
    #[arg(long = "choice")]
    pub choices: Vec<String>,
    /// Key frames to use: all, last_n:N, last_seconds:S, since_seq:N.
    #[arg(long, default_value = "all")]
    pub window: String,
    /// The robot must reply within this many ms (default: the runtime's).
    #[arg(long)]
    pub deadline_ms: Option<u64>,
    /// How long to wait for a reply, seconds.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// Print the reply as JSON.
    #[arg(long)]
    pub json: bool,
    /// Who is asking, for the robot's per-client bound (api.per_client); default: this
    /// process's zenoh session id.
    #[arg(long)]
    pub client: Option<String>,
    /// The gold answer, when the operator knows it (an option letter or text, or a number for
    /// a question without options): recorded with the episode, which then trains as labelled.
    #[arg(long)]
    pub truth: Option<String>,
    /// Network.
    #[command(flatten)]
    pub net: NetArgs,
}

/// Parses `--window`.
pub fn parse_window(s: &str) -> Result<WindowQuery> {
    let bad =
        || anyhow::anyhow!("--window {s:?}: expected all, last_n:N, last_seconds:S or since_seq:N");
    if s == "all" {
        return Ok(WindowQuery::All);
    }
    let (k, v) = s.split_once(':').ok_or_else(bad)?;
    Ok(match k {
        "last_n" => WindowQuery::LastN(v.parse().map_err(|_| bad())?),
        "last_seconds" => WindowQuery::LastSeconds(v.parse().map_err(|_| bad())?),
        "since_seq" => WindowQuery::SinceSeq(v.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    })
}

/// Parses `--choice` values into option texts in letter order.
pub fn parse_choices(raw: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let want = (b'A' + i as u8) as char;
        let text = match c.split_once('=') {
            Some((l, t)) if l.len() == 1 && l.chars().all(|c| c.is_ascii_alphabetic()) => {
                let got = l.to_ascii_uppercase();
                if got != want.to_string() {
                    bail!("--choice {c:?}: options must be lettered in order; expected {want}=...");
                }
                t
            }
            _ => c.as_str(),
        };
        if text.trim().is_empty() {
            bail!("--choice {c:?}: the option text is empty");
        }
        out.push(text.trim().to_string());
    }
    if out.len() == 1 {
        bail!("one --choice given: give none (free-form) or at least two");
    }
    Ok(out)
}

/// Renders a reply for people.
pub fn render_reply(v: &serde_json::Value) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    if let Some(e) = v.get("error") {
        let _ = write!(
            s,
            "refused: {} — {}",
            e["code"].as_str().unwrap_or("?"),
            e["message"].as_str().unwrap_or("")
        );
        return s;
    }
    let _ = writeln!(s, "Answer:   {}", v["text"].as_str().unwrap_or(""));
    let has_choices = v["choice"].is_string() || v["lenient_choice"].is_string();
    if has_choices {
        let _ = writeln!(
            s,
            "Option:   {}",
            crate::verdict::reading(
                v["choice"].as_str(),
                v["lenient_choice"].as_str(),
                v["format_ok"].as_bool() == Some(true)
            )
        );
    }
    if let Some(acc) = v["rewards"]["accuracy"].as_f64() {
        let _ = writeln!(s, "Verdict:  {}", crate::verdict::judged(acc));
    }
    if let Some(t) = v["think"].as_str() {
        let _ = writeln!(s, "Think:    {t}");
    }
    let h = &v["nav_hint"];
    let _ = writeln!(
        s,
        "Nav hint: {}{} ({})",
        h["action"].as_str().unwrap_or("?"),
        h["target"]
            .as_str()
            .map(|t| format!(" → {t}"))
            .unwrap_or_default(),
        h["reason"].as_str().unwrap_or("")
    );
    let frames: Vec<String> = v["grounding"]["frames"]
        .as_array()
        .map(|a| a.iter().map(|f| f["seq"].to_string()).collect())
        .unwrap_or_default();
    let cited: Vec<String> = v["grounding"]["cited"]
        .as_array()
        .map(|a| a.iter().map(|f| f.to_string()).collect())
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "Frames:   {} key frames [{}], cited [{}]",
        frames.len(),
        frames.join(", "),
        cited.join(", ")
    );
    let consistent = match v["consistent"].as_bool() {
        Some(true) => "yes",
        Some(false) => "no",
        None => "n/a",
    };
    let _ = write!(
        s,
        "Checks:   format {}, consistent {consistent}; {} + {} in {:.0} ms",
        if v["format_ok"].as_bool() == Some(true) {
            "ok"
        } else {
            "broken"
        },
        v["model"].as_str().unwrap_or("?"),
        v["describer"].as_str().unwrap_or("?"),
        v["timings"]["total"].as_f64().unwrap_or(0.0)
    );
    s
}

/// `--timeout SECONDS` as a duration; anything but a positive number of seconds is an error.
pub(crate) fn reply_timeout(secs: f64) -> Result<Duration> {
    if !(secs.is_finite() && secs > 0.0 && secs < 1e9) {
        bail!("--timeout {secs}: expected a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `ask`.
pub fn ask_cmd(a: &AskArgs) -> Result<()> {
    let choices = parse_choices(&a.choices)?;
    // Checked here too, so a typo is named before anything is sent.
    let ground_truth = a
        .truth
        .as_deref()
        .map(|t| embodied_r_reasoner::labels::normalize_truth("--truth", &choices, t))
        .transpose()?;
    let request = AskRequest {
        question: a.question.clone(),
        choices: (!choices.is_empty()).then_some(choices),
        window: Some(parse_window(&a.window)?),
        deadline_ms: a.deadline_ms,
        ground_truth,
        category: None,
        client: None,
    };
    let timeout = reply_timeout(a.timeout)?;
    let key = format!("{}/ask", a.net.prefix());
    let rt = tokio_runtime()?;
    let reply = rt.block_on(async {
        let session = a.net.open().await?;
        let request = AskRequest {
            client: Some(
                a.client
                    .clone()
                    .unwrap_or_else(|| session.zid().to_string()),
            ),
            ..request
        };
        let spinner = indicatif::ProgressBar::new_spinner();
        spinner.set_style(
            indicatif::ProgressStyle::with_template("{spinner} asking {msg} … {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        spinner.set_message(key.clone());
        spinner.enable_steady_tick(Duration::from_millis(100));
        let t = Instant::now();
        let r = ask(&session, &key, &request, timeout).await;
        spinner.finish_and_clear();
        let _ = session.close().await;
        anyhow::Ok(r.map(|v| (v, t.elapsed()))?)
    });
    let (v, elapsed) = reply?;
    if a.json {
        println!("{v}");
    } else {
        println!("{}", render_reply(&v));
        println!("Round trip: {:.0} ms", elapsed.as_secs_f64() * 1e3);
    }
    if let Some(e) = v.get("error") {
        bail!(
            "the robot refused: {}: {}",
            e["code"].as_str().unwrap_or("?"),
            e["message"].as_str().unwrap_or("")
        );
    }
    Ok(())
}

/// `embodied-r watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Print raw JSON lines (`{"key": ..., "value": ...}`).
    #[arg(long)]
    pub json: bool,
    /// Exit after this many messages.
    #[arg(long)]
    pub count: Option<usize>,
    /// Exit after this many seconds.
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Network.
    #[command(flatten)]
    pub net: NetArgs,
}

fn status_line(v: &serde_json::Value) -> String {
    let lat = |k: &str| {
        v["latency_ms"][k]["p50"]
            .as_f64()
            .map(|p50| {
                format!(
                    " {k} p50/p95 {p50:.0}/{:.0} ms",
                    v["latency_ms"][k]["p95"].as_f64().unwrap_or(0.0)
                )
            })
            .unwrap_or_default()
    };
    format!(
        "status: {:.1} fps in, {} dropped, {} key frames buffered (newest {}), queue {}/{}, answered {} busy {} failed {}{}{}{}",
        v["source"]["fps_in"].as_f64().unwrap_or(0.0),
        v["source"]["dropped"],
        v["keyframes"]["buffered"],
        v["keyframes"]["newest"]["seq"],
        v["queue"]["depth"],
        v["queue"]["capacity"],
        v["asks"]["answered"],
        v["asks"]["busy"],
        v["asks"]["failed"],
        lat("describe"),
        lat("generate"),
        if v["log"]["error"].is_null() {
            String::new()
        } else {
            format!(" LOG FAILING: {}", v["log"]["error"])
        },
    )
}

/// `watch`.
pub fn watch(a: &WatchArgs) -> Result<()> {
    let prefix = a.net.prefix();
    let rt = tokio_runtime()?;
    rt.block_on(async {
        let session = a.net.open().await?;
        let sub = session
            .declare_subscriber(format!("{prefix}/**"))
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to {prefix}/**: {e}"))?;
        let liveliness = session
            .liveliness()
            .declare_subscriber(format!("{prefix}/alive"))
            .await
            .map_err(|e| anyhow::anyhow!("watching liveliness: {e}"))?;
        let end = a.seconds.map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
        let mut n = 0usize;
        loop {
            let left = end.map(|e| e.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) || a.count.is_some_and(|c| n >= c) {
                break;
            }
            let wait = left.unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                s = sub.recv_async() => {
                    let Ok(sample) = s else { break };
                    let key = sample.key_expr().to_string();
                    let leaf = key.rsplit('/').next().unwrap_or("").to_string();
                    if leaf == "keyframes" {
                        // binary: header only
                        let bytes = sample.payload().to_bytes();
                        match embodied_r_sim::bridge::FrameMessage::decode(&bytes, &key) {
                            Ok(m) if a.json => println!("{}", serde_json::json!({"key": key, "value": {"seq": m.header.seq, "stamp": m.header.stamp, "width": m.header.width, "height": m.header.height, "jpeg_bytes": m.image.len()}})),
                            Ok(m) => println!("key frame {} at {:.2} s ({}x{}, {} bytes)", m.header.seq, m.header.stamp, m.header.width, m.header.height, m.image.len()),
                            Err(e) => println!("malformed key frame: {e}"),
                        }
                        n += 1;
                        continue;
                    }
                    let v: serde_json::Value = match serde_json::from_slice(&sample.payload().to_bytes()) {
                        Ok(v) => v,
                        Err(e) => { println!("{key}: not JSON ({e})"); n += 1; continue; }
                    };
                    if a.json {
                        println!("{}", serde_json::json!({"key": key, "value": v}));
                    } else {
                        match leaf.as_str() {
                            "status" => println!("{}", status_line(&v)),
                            "answer" => println!("answer to {:?}:\n{}", v["question"].as_str().unwrap_or(""), render_reply(&v)),
                            "nav_hint" => println!("nav hint: {} ({})", v["action"].as_str().unwrap_or("?"), v["reason"].as_str().unwrap_or("")),
                            _ => println!("{key}: {v}"),
                        }
                    }
                    n += 1;
                }
                l = liveliness.recv_async() => {
                    if let Ok(s) = l {
                        let alive = s.kind() == zenoh::sample::SampleKind::Put;
                        if a.json {
                            println!("{}", serde_json::json!({"key": s.key_expr().to_string(), "value": {"alive": alive}}));
                        } else {
                            println!("{} is {}", s.key_expr(), if alive { "alive" } else { "gone" });
                        }
                    }
                }
                _ = tokio::time::sleep(wait) => break,
            }
        }
        let _ = session.close().await;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_specs_set_the_source_keys() {
        let bag = source_overrides("bag:/data/drive").expect("bag");
        assert_eq!(
            bag,
            vec![
                ("source.kind", "\"mcap\"".to_string()),
                ("source.path", "\"/data/drive\"".to_string())
            ]
        );
        let ros = source_overrides("ros2:/camera/image_raw/compressed").expect("ros2");
        assert_eq!(ros[1].1, "\"/camera/image_raw/compressed\"");
        assert_eq!(source_overrides("camera:2").expect("camera")[1].1, "2");
        let pattern = source_overrides("pattern:7").expect("pattern");
        assert_eq!(pattern[0].1, "\"pattern\"");
        assert_eq!(pattern[1], ("source.seed", "7".to_string()));
        // A Windows-style or colon-holding path keeps everything after the first colon.
        assert_eq!(
            source_overrides("video:C:/x.mp4").expect("video")[1].1,
            "\"C:/x.mp4\""
        );
        for (bad, why) in [
            ("drive.mcap", "KIND:WHAT"),
            ("bag:", "nothing after"),
            ("webcam:0", "unknown kind"),
            ("camera:front", "device index"),
            ("pattern:4294967296", "below 2^32"),
        ] {
            let e = format!("{:#}", source_overrides(bad).unwrap_err());
            assert!(e.contains(why) && e.contains(bad), "{bad}: {e}");
        }
    }

    #[test]
    fn reply_timeouts_are_positive_seconds() {
        assert_eq!(reply_timeout(2.5).unwrap(), Duration::from_millis(2500));
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 1e12] {
            let e = reply_timeout(bad).unwrap_err().to_string();
            assert!(e.starts_with("--timeout "), "{e}");
        }
    }

    #[test]
    fn choices_and_windows_parse_with_named_errors() {
        let c = parse_choices(&["A=the door".into(), "the sofa".into()]).unwrap();
        assert_eq!(c, ["the door", "the sofa"]);
        assert!(
            parse_choices(&["B=x".into(), "y".into()])
                .unwrap_err()
                .to_string()
                .contains("expected A=")
        );
        assert!(parse_choices(&["x".into()]).is_err());
        assert_eq!(parse_window("last_n:8").unwrap(), WindowQuery::LastN(8));
        assert!(
            parse_window("recent")
                .unwrap_err()
                .to_string()
                .contains("last_n:N")
        );
    }

    #[test]
    fn replies_render_for_people() {
        let v = serde_json::json!({"choice": "B", "text": "B. sofa", "think": "it is near",
            "nav_hint": {"action": "rotate left", "target": "sofa", "reason": "key frame 4 saw it on the left"},
            "grounding": {"frames": [{"seq": 0}, {"seq": 4}], "cited": [4]},
            "format_ok": true, "consistent": false, "model": "m", "describer": "d", "timings": {"total": 12.0}});
        let s = render_reply(&v);
        assert!(
            s.contains("Answer:   B. sofa")
                && s.contains("Option:   B (strict: the <answer> block)")
                && s.contains("rotate left → sofa"),
            "{s}"
        );
        assert!(!s.contains("Verdict"), "no truth, no verdict: {s}");
        assert!(
            s.contains("cited [4]") && s.contains("consistent no"),
            "{s}"
        );
        // The untrained model's prose reply, asked with its truth: the lenient reading is
        // shown as such, and the verdict is the strict one the episode log records.
        let v = serde_json::json!({"choice": null, "lenient_choice": "B", "text": "it is B",
            "rewards": {"format": 0.0, "accuracy": 0.0, "consistency": null},
            "nav_hint": {"action": "rotate left", "reason": "r"}, "format_ok": false});
        let s = render_reply(&v);
        assert!(
            s.contains("lenient reading: B, not scored")
                && s.contains("Verdict:  wrong (strict: the <answer> block)"),
            "{s}"
        );
        let e = render_reply(&serde_json::json!({"error": {"code": "busy", "message": "full"}}));
        assert_eq!(e, "refused: busy — full");
    }
}
