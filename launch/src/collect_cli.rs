//! `episodes collect`: gathers the episode logs of a fleet over zenoh into one directory per
//! robot (the work is [`embodied_r_agent::collect`]; this is its command line).

#![allow(clippy::print_stdout)]

use anyhow::{Context, Result};
use clap::Args;
use embodied_r_agent::collect::{CollectOptions, Collected, collect};
use std::path::PathBuf;
use std::time::Duration;

/// `embodied-r episodes collect`.
#[derive(Debug, Clone, Args)]
pub struct CollectArgs {
    /// Where the episodes go: DIR/<robot>/ is an episode log like the robot's own.
    #[arg(long)]
    pub dir: PathBuf,
    /// Key prefix of the runtimes to collect from (`*` matches one robot id).
    #[arg(long, default_value = "robots/*/embodied-r")]
    pub prefix: String,
    /// zenoh endpoints to connect to, e.g. a router's tcp/10.0.0.2:7447 (repeatable).
    #[arg(long)]
    pub connect: Vec<String>,
    /// Turn off multicast scouting (find robots only through --connect).
    #[arg(long)]
    pub no_multicast: bool,
    /// A zenoh JSON5 configuration file (TLS, credentials); --connect and --no-multicast
    /// override it.
    #[arg(long, env = "EMBODIED_R_ZENOH_CONFIG")]
    pub zenoh_config: Option<PathBuf>,
    /// Ask every robot alive for the episodes this directory lacks this often, seconds.
    #[arg(long, default_value_t = 30.0)]
    pub resync_s: f64,
    /// Exit once nothing new arrived for this many seconds and no catch-up is running
    /// (default: run until SIGINT/SIGTERM).
    #[arg(long)]
    pub idle_exit_s: Option<f64>,
    /// One JSON object per episode written, and the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

fn seconds(what: &str, s: f64) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("{what} = {s}: expected a positive number of seconds"))
}

/// Runs `episodes collect`.
pub fn run(a: &CollectArgs) -> Result<()> {
    let opts = CollectOptions {
        dir: a.dir.clone(),
        prefix: a.prefix.clone(),
        resync: seconds("--resync-s", a.resync_s)?,
        idle_exit: a
            .idle_exit_s
            .map(|s| seconds("--idle-exit-s", s))
            .transpose()?,
        ..CollectOptions::default()
    };
    let rt = crate::inproc::tokio_runtime()?;
    let summary = rt.block_on(async {
        let session =
            crate::inproc::session_to(a.connect.clone(), !a.no_multicast, a.zenoh_config.clone())
                .await?;
        let json = a.json;
        let summary = collect(
            &session,
            &opts,
            crate::runtime_cli::shutdown_signal(),
            || {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"collecting": opts.prefix, "dir": opts.dir})
                    );
                } else {
                    println!(
                        "collecting {}/episode into {}",
                        opts.prefix,
                        opts.dir.display()
                    );
                }
            },
            |c: &Collected| {
                if json {
                    println!("{}", serde_json::to_string(c).unwrap_or_default());
                } else {
                    println!("{} {} ({} frames, {})", c.robot, c.id, c.frames, c.via);
                }
            },
        )
        .await
        .with_context(|| format!("collecting into {}", a.dir.display()))?;
        let _ = session.close().await;
        anyhow::Ok(summary)
    })?;
    if a.json {
        println!(
            "{}",
            serde_json::json!({ "summary": serde_json::to_value(&summary)? })
        );
    } else {
        for (robot, c) in &summary.robots {
            println!(
                "{robot}: {} collected, {} duplicates skipped, {} held",
                c.collected, c.duplicates, c.total
            );
        }
        println!(
            "{} episodes in {:.1} s ({} duplicates skipped, {} refused)",
            summary.collected, summary.seconds, summary.duplicates, summary.rejected
        );
    }
    Ok(())
}
