//! `ros2 play`: a rosbag2 recording played onto zenoh in a ROS 2 key layout, so a runtime (or
//! a ROS 2 system behind zenoh-bridge-ros2dds / on rmw_zenoh) receives it as if a robot were
//! publishing — no ROS 2 installation needed on either side.

#![allow(clippy::print_stdout)]

use crate::inproc::{session_to, tokio_runtime};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use embodied_r_agent::ros2::known_type_hash;
use embodied_r_agent::ros2::names::{Layout, NO_TYPE_HASH, qualify};
use embodied_r_agent::ros2::over_zenoh::TopicPublisher;
use embodied_r_perception::source::mcap::for_each_message;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `ros2` subcommands.
#[derive(Debug, Subcommand)]
pub enum Ros2Command {
    /// Play a rosbag2 MCAP recording onto zenoh in a ROS 2 key layout.
    Play(PlayArgs),
}

/// Which ROS 2 key layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// zenoh-bridge-ros2dds: the topic name without its leading '/'.
    Bridge,
    /// rmw_zenoh: <domain>/<topic>/<type>/<hash>.
    RmwZenoh,
}

/// `ros2 play`.
#[derive(Debug, Args)]
pub struct PlayArgs {
    /// The bag: an MCAP file or a rosbag2 directory.
    pub bag: PathBuf,
    /// Topics to play (repeatable); default: every topic.
    #[arg(long)]
    pub topic: Vec<String>,
    /// Key layout.
    #[arg(long, value_enum, default_value = "bridge")]
    pub layout: LayoutArg,
    /// zenoh-bridge-ros2dds namespace (bridge layout).
    #[arg(long, default_value = "/")]
    pub bridge_namespace: String,
    /// ROS_DOMAIN_ID (rmw_zenoh layout).
    #[arg(long, default_value_t = 0)]
    pub domain: u32,
    /// Humble's rmw_zenoh: no type hashes in keys.
    #[arg(long)]
    pub no_type_hashes: bool,
    /// zenoh endpoints to connect to (repeatable).
    #[arg(long)]
    pub connect: Vec<String>,
    /// Turn off multicast scouting.
    #[arg(long)]
    pub no_multicast: bool,
    /// realtime (the bag's own timing) or max (as fast as zenoh takes it).
    #[arg(long, value_parser = ["realtime", "max"], default_value = "realtime")]
    pub rate: String,
    /// Wait up to this many seconds for a subscriber of the first topic before playing.
    #[arg(long, default_value_t = 10.0)]
    pub wait_subscriber: f64,
    /// Play the bag this many times (0 = until interrupted).
    #[arg(long, default_value_t = 1)]
    pub loops: u32,
}

/// Runs a `ros2` subcommand.
pub fn run(c: &Ros2Command) -> Result<()> {
    match c {
        Ros2Command::Play(a) => play(a),
    }
}

fn layout(a: &PlayArgs) -> Layout {
    match a.layout {
        LayoutArg::Bridge => Layout::Bridge {
            namespace: a.bridge_namespace.clone(),
        },
        LayoutArg::RmwZenoh => Layout::RmwZenoh {
            domain: a.domain,
            type_hashes: !a.no_type_hashes,
        },
    }
}

/// The hash a key carries for `ros_type`: known types have theirs; others only work where the
/// layout carries none.
fn type_hash(layout: &Layout, ros_type: &str) -> Result<&'static str> {
    match (layout, known_type_hash(ros_type)) {
        (_, Some(h)) => Ok(h),
        (Layout::Bridge { .. }, None)
        | (
            Layout::RmwZenoh {
                type_hashes: false, ..
            },
            None,
        ) => Ok(NO_TYPE_HASH),
        (Layout::RmwZenoh { .. }, None) => bail!(
            "the REP-2016 hash of {ros_type} is not known here, and rmw_zenoh keys need it; play this topic with --layout bridge or leave it out with --topic"
        ),
    }
}

fn play(a: &PlayArgs) -> Result<()> {
    for t in &a.topic {
        qualify("/", t).with_context(|| format!("--topic {t}"))?;
    }
    let layout = layout(a);
    let rt = tokio_runtime()?;
    let session = rt.block_on(session_to(a.connect.clone(), !a.no_multicast, None))?;
    let max = a.rate == "max";
    let mut publishers: BTreeMap<String, TopicPublisher> = BTreeMap::new();
    let mut sent = 0u64;
    let mut failed: Option<anyhow::Error> = None;
    let mut round = 0u32;
    loop {
        round += 1;
        let start = Instant::now();
        let mut first_ns: Option<u64> = None;
        let read = for_each_message(&a.bag, &a.topic, |m| {
            if m.encoding != "cdr" {
                tracing::warn!(
                    topic = m.topic,
                    "skipping a {} message (not cdr)",
                    m.encoding
                );
                return true;
            }
            if !publishers.contains_key(&m.topic) {
                let made = type_hash(&layout, &m.schema).and_then(|h| {
                    let p = TopicPublisher::declare(&session, &layout, &m.topic, &m.schema, h)?;
                    if publishers.is_empty() && a.wait_subscriber > 0.0 {
                        let until = Instant::now() + Duration::from_secs_f64(a.wait_subscriber);
                        while !p.has_subscriber() && Instant::now() < until {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    println!("{} ({}) -> {}", m.topic, m.schema, p.key());
                    Ok(p)
                });
                match made {
                    Ok(p) => {
                        publishers.insert(m.topic.clone(), p);
                    }
                    Err(e) => {
                        failed = Some(e.context(format!("topic {}", m.topic)));
                        return false;
                    }
                }
            }
            if !max {
                let t0 = *first_ns.get_or_insert(m.log_time_ns);
                let due = Duration::from_nanos(m.log_time_ns.saturating_sub(t0));
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let Some(p) = publishers.get(&m.topic) else {
                return true;
            };
            match p.put(m.data) {
                Ok(()) => sent += 1,
                Err(e) => {
                    failed = Some(anyhow::anyhow!("publishing: {e}"));
                    return false;
                }
            }
            true
        });
        if let Some(e) = failed.take() {
            return Err(e);
        }
        let n = read.with_context(|| format!("reading {}", a.bag.display()))?;
        if n == 0 {
            bail!(
                "{}: no messages{}",
                a.bag.display(),
                if a.topic.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", a.topic.join(", "))
                }
            );
        }
        if a.loops != 0 && round >= a.loops {
            break;
        }
    }
    // Let zenoh flush what is queued before the session closes.
    std::thread::sleep(Duration::from_millis(200));
    rt.block_on(async { session.close().await })
        .map_err(|e| anyhow::anyhow!("closing the zenoh session: {e}"))?;
    println!("played {sent} messages on {} topics", publishers.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_types_need_a_layout_without_hashes() {
        let bridge = Layout::Bridge {
            namespace: "/".into(),
        };
        assert_eq!(
            type_hash(&bridge, "tf2_msgs/msg/TFMessage").expect("bridge"),
            NO_TYPE_HASH
        );
        let rmw = Layout::RmwZenoh {
            domain: 0,
            type_hashes: true,
        };
        assert!(
            type_hash(&rmw, "std_msgs/msg/String")
                .expect("known")
                .starts_with("RIHS01_")
        );
        let e = type_hash(&rmw, "tf2_msgs/msg/TFMessage")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tf2_msgs/msg/TFMessage") && e.contains("--layout bridge"),
            "{e}"
        );
    }
}
