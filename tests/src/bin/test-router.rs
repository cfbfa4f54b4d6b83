//! A zenoh router for the end-to-end tests: the zenoh library's own router mode (what `zenohd`
//! runs), listening on the endpoint given as the only argument, loopback only, no scouting.
//! Prints `ready` once listening; runs until killed. Tests kill it (SIGKILL) and start it again
//! on the same port to see the runtime reconnect.

#![allow(clippy::print_stdout)]

use std::io::Write;

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() -> Result<(), String> {
    let endpoint = std::env::args()
        .nth(1)
        .ok_or("usage: test-router tcp/127.0.0.1:PORT")?;
    let mut c = zenoh::Config::default();
    let set = |c: &mut zenoh::Config, k: &str, v: &str| {
        c.insert_json5(k, v)
            .map_err(|e| format!("zenoh config {k} = {v}: {e}"))
    };
    set(&mut c, "mode", "\"router\"")?;
    set(&mut c, "listen/endpoints", &format!("[\"{endpoint}\"]"))?;
    set(&mut c, "scouting/multicast/enabled", "false")?;
    set(&mut c, "scouting/gossip/enabled", "false")?;
    let _session = zenoh::open(c)
        .await
        .map_err(|e| format!("opening the router on {endpoint}: {e}"))?;
    println!("ready");
    std::io::stdout().flush().map_err(|e| e.to_string())?;
    std::future::pending::<()>().await;
    Ok(())
}
