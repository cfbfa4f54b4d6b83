//! `embodied-r bench load`: many asks at once against a running robot over zenoh. Every ask
//! must end in an answer or a named refusal within its timeout; the report gives both
//! outcomes' round-trip percentiles and the refusals by code. One process is one client (its
//! `client` name); run several for several clients.

#![allow(clippy::print_stdout)]

use crate::inproc::tokio_runtime;
use crate::runtime_cli::{NetArgs, reply_timeout};
use anyhow::{Result, bail};
use clap::Args;
use embodied_r_agent::AskRequest;
use embodied_r_agent::client::ask;
use embodied_r_agent::stats::{Latencies, Percentiles};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// `bench load`.
#[derive(Debug, Args)]
pub struct LoadBenchArgs {
    /// The question every ask sends (numbered: "… (ask 7)").
    #[arg(long, default_value = "Which object is closest to me?")]
    pub question: String,
    /// Asks in all.
    #[arg(long, default_value_t = 25)]
    pub asks: usize,
    /// Asks outstanding at once.
    #[arg(long, default_value_t = 25)]
    pub concurrency: usize,
    /// `deadline_ms` of each ask (default: the robot's).
    #[arg(long)]
    pub deadline_ms: Option<u64>,
    /// How long to wait for each reply, seconds; an ask without a reply by then is "silent".
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// Who is asking (the robot's per-client bound); default: this process's zenoh session id.
    #[arg(long)]
    pub client: Option<String>,
    /// Print one JSON object: every ask's outcome and round trip, and the summary.
    #[arg(long)]
    pub json: bool,
    /// Network.
    #[command(flatten)]
    pub net: NetArgs,
}

/// One ask's fate.
#[derive(Debug, Clone, Serialize)]
pub struct AskOutcome {
    /// Order of sending.
    pub i: usize,
    /// `answered`, an error code (`busy`, `deadline_exceeded` …), or `silent` (no reply).
    pub outcome: String,
    /// Round trip, ms.
    pub ms: f64,
}

/// The totals.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSummary {
    /// The client name sent.
    pub client: String,
    /// Asks sent.
    pub asks: usize,
    /// Answers.
    pub answered: usize,
    /// Refusals and errors by code.
    pub refused: BTreeMap<String, usize>,
    /// Asks with no reply within the timeout.
    pub silent: usize,
    /// Round trips of answers.
    pub answered_ms: Option<Percentiles>,
    /// Round trips of refusals.
    pub refused_ms: Option<Percentiles>,
    /// First send to last reply, s.
    pub wall_s: f64,
}

/// Counts outcomes and their round-trip percentiles.
pub fn summarize(client: &str, outcomes: &[AskOutcome], wall_s: f64) -> LoadSummary {
    let mut answered = Latencies::new(outcomes.len());
    let mut refused_ms = Latencies::new(outcomes.len());
    let mut refused = BTreeMap::new();
    let (mut n_answered, mut silent) = (0, 0);
    for o in outcomes {
        match o.outcome.as_str() {
            "answered" => {
                n_answered += 1;
                answered.record(o.ms);
            }
            "silent" => silent += 1,
            code => {
                *refused.entry(code.to_string()).or_insert(0) += 1;
                refused_ms.record(o.ms);
            }
        }
    }
    LoadSummary {
        client: client.to_string(),
        asks: outcomes.len(),
        answered: n_answered,
        refused,
        silent,
        answered_ms: answered.percentiles(),
        refused_ms: refused_ms.percentiles(),
        wall_s,
    }
}

/// Runs the load.
pub fn run(a: &LoadBenchArgs) -> Result<()> {
    if a.asks == 0 || a.concurrency == 0 {
        bail!(
            "--asks {} --concurrency {}: expected at least 1 of each",
            a.asks,
            a.concurrency
        );
    }
    let timeout = reply_timeout(a.timeout)?;
    let key = format!("{}/ask", a.net.prefix());
    let rt = tokio_runtime()?;
    let (client, outcomes, wall_s) = rt.block_on(async {
        let session = a.net.open().await?;
        let client = a
            .client
            .clone()
            .unwrap_or_else(|| session.zid().to_string());
        let gate = Arc::new(tokio::sync::Semaphore::new(a.concurrency));
        let t0 = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..a.asks {
            let request = AskRequest {
                question: format!("{} (ask {i})", a.question),
                choices: None,
                window: None,
                deadline_ms: a.deadline_ms,
                ground_truth: None,
                category: None,
                client: Some(client.clone()),
            };
            let (session, key, gate) = (session.clone(), key.clone(), gate.clone());
            tasks.spawn(async move {
                let _permit = gate.acquire_owned().await;
                let t = Instant::now();
                let outcome = match ask(&session, &key, &request, timeout).await {
                    Ok(v) if v.get("text").is_some() => "answered".to_string(),
                    Ok(v) => v["error"]["code"]
                        .as_str()
                        .unwrap_or("unnamed_error")
                        .to_string(),
                    Err(e) => {
                        tracing::warn!("ask {i}: {e}");
                        "silent".to_string()
                    }
                };
                AskOutcome {
                    i,
                    outcome,
                    ms: t.elapsed().as_secs_f64() * 1e3,
                }
            });
        }
        let mut outcomes = Vec::with_capacity(a.asks);
        while let Some(done) = tasks.join_next().await {
            outcomes.push(done?);
        }
        let wall_s = t0.elapsed().as_secs_f64();
        let _ = session.close().await;
        outcomes.sort_by_key(|o| o.i);
        anyhow::Ok((client, outcomes, wall_s))
    })?;
    let summary = summarize(&client, &outcomes, wall_s);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"asks": outcomes, "summary": summary})
        );
    } else {
        let pct = |p: &Option<Percentiles>| {
            p.map_or("-".to_string(), |p| {
                format!(
                    "p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                    p.p50, p.p99, p.max
                )
            })
        };
        println!(
            "{} asks from {client:?} in {wall_s:.1} s ({} at once)",
            a.asks, a.concurrency
        );
        println!(
            "  answered {:>4}  {}",
            summary.answered,
            pct(&summary.answered_ms)
        );
        let refused: usize = summary.refused.values().sum();
        println!("  refused  {refused:>4}  {}", pct(&summary.refused_ms));
        for (code, n) in &summary.refused {
            println!("    {code}: {n}");
        }
        println!("  silent   {:>4}", summary.silent);
    }
    if summary.silent > 0 {
        bail!(
            "{} of {} asks got no reply within {} s",
            summary.silent,
            a.asks,
            a.timeout
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_counts_every_outcome_once() {
        let o = |i, outcome: &str, ms| AskOutcome {
            i,
            outcome: outcome.into(),
            ms,
        };
        let s = summarize(
            "c1",
            &[
                o(0, "answered", 900.0),
                o(1, "busy", 2.0),
                o(2, "answered", 1500.0),
                o(3, "busy", 4.0),
                o(4, "deadline_exceeded", 3000.0),
                o(5, "silent", 300_000.0),
            ],
            12.0,
        );
        assert_eq!((s.asks, s.answered, s.silent), (6, 2, 1));
        assert_eq!(s.refused["busy"], 2);
        assert_eq!(s.refused["deadline_exceeded"], 1);
        let a = s.answered_ms.unwrap();
        assert_eq!((a.p50, a.p99), (900.0, 1500.0));
        let r = s.refused_ms.unwrap();
        assert_eq!((r.count, r.p50, r.max), (3, 4.0, 3000.0));
    }
}
