//! Helpers the commands share: the async runtime, a runtime served in this process with a
//! console session connected to it over loopback (`demo`, `bench runtime`), one-line text.

use anyhow::{Context, Result};
use embodied_r_agent::{AgentError, RunSummary, Runtime};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A two-worker tokio runtime (the machine has two cores; the LM has its own thread).
pub(crate) fn tokio_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `tcp/127.0.0.1:<a free port>`.
pub(crate) fn loopback_endpoint() -> Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .context("finding a free loopback port")?;
    Ok(format!("tcp/127.0.0.1:{port}"))
}

/// A zenoh peer session that connects only to `endpoints` (no multicast), configured by
/// `config_file` (a zenoh JSON5 file: TLS certificates, credentials) when given.
pub(crate) async fn session_to(
    endpoints: Vec<String>,
    multicast: bool,
    config_file: Option<std::path::PathBuf>,
) -> Result<zenoh::Session> {
    let net = embodied_r_sim::bridge::NetConfig {
        mode: Some("peer".into()),
        connect: endpoints,
        listen: vec![],
        multicast_scouting: multicast,
        config_file,
        max_message_bytes: None,
    };
    zenoh::open(embodied_r_sim::bridge::zenoh_config(&net)?)
        .await
        .map_err(|e| anyhow::anyhow!("opening a zenoh session: {e}"))
}

/// A runtime running on this process's tokio runtime, and a console session connected to it.
pub(crate) struct InProcess {
    server: JoinHandle<Result<RunSummary, AgentError>>,
    stop: oneshot::Sender<()>,
    /// The console's session.
    pub session: zenoh::Session,
}

impl InProcess {
    /// Starts `runtime` (whose config listens on `endpoint`) and connects a session to it.
    pub async fn start(runtime: Runtime, endpoint: &str) -> Result<InProcess> {
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(runtime.run(
            async move {
                let _ = stop_rx.await;
            },
            move |_| {
                let _ = ready_tx.send(());
            },
        ));
        if ready_rx.await.is_err() {
            return match server.await {
                Ok(Err(e)) => Err(anyhow::Error::new(e).context("starting the runtime")),
                _ => Err(anyhow::anyhow!("the runtime stopped while starting")),
            };
        }
        let session = session_to(vec![endpoint.to_string()], false, None).await?;
        Ok(InProcess {
            server,
            stop,
            session,
        })
    }

    /// Closes the session, stops the runtime and returns its summary.
    pub async fn stop(self) -> Result<RunSummary> {
        let _ = self.session.close().await;
        let _ = self.stop.send(());
        Ok(self
            .server
            .await
            .map_err(|e| anyhow::anyhow!("the runtime task failed: {e}"))??)
    }
}

/// `s` on one line, cut to `n` characters with an ellipsis.
pub(crate) fn one_line(s: &str, n: usize) -> String {
    let s = s.replace('\n', " ");
    if s.chars().count() <= n {
        s
    } else {
        format!(
            "{}…",
            s.chars().take(n.saturating_sub(1)).collect::<String>()
        )
    }
}
