//! The operator's side of the ask API: send a question to a robot over zenoh and wait for its
//! one reply (an answer or an error object).

use crate::api::AskRequest;
use std::time::Duration;

/// Why no reply arrived.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// zenoh failed.
    #[error("zenoh: {0}")]
    Zenoh(String),
    /// Nobody answered within the timeout.
    #[error(
        "no reply on {key} within {timeout_s:.1} s: is the runtime running, reachable (zenoh.connect / --connect) and using this robot id?"
    )]
    NoReply {
        /// The ask key.
        key: String,
        /// The timeout.
        timeout_s: f64,
    },
    /// The reply was not JSON.
    #[error("the reply on {key} is not JSON: {message}")]
    BadReply {
        /// The ask key.
        key: String,
        /// Parser message.
        message: String,
    },
}

/// Asks `key` and returns the reply's JSON. Waits up to `timeout`.
pub async fn ask(
    session: &zenoh::Session,
    key: &str,
    request: &AskRequest,
    timeout: Duration,
) -> Result<serde_json::Value, ClientError> {
    let body = serde_json::to_string(request).map_err(|e| ClientError::Zenoh(e.to_string()))?;
    ask_raw(session, key, body.into_bytes(), timeout).await
}

/// Sends raw bytes (tests send malformed ones) and returns the reply's JSON.
pub async fn ask_raw(
    session: &zenoh::Session,
    key: &str,
    payload: Vec<u8>,
    timeout: Duration,
) -> Result<serde_json::Value, ClientError> {
    let replies = session
        .get(key)
        .payload(payload)
        .timeout(timeout)
        .await
        .map_err(|e| ClientError::Zenoh(format!("querying {key}: {e}")))?;
    if let Ok(reply) = replies.recv_async().await {
        let (bytes, from_zenoh) = match reply.result() {
            Ok(sample) => (sample.payload().to_bytes().into_owned(), false),
            Err(err) => (err.payload().to_bytes().into_owned(), true),
        };
        return match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(v),
            // zenoh's own error replies are plain text: "Timeout" when the query outlived its
            // timeout (no robot answered in time: the message may have been dropped on the way).
            Err(_) if from_zenoh && bytes == b"Timeout" => Err(ClientError::NoReply {
                key: key.to_string(),
                timeout_s: timeout.as_secs_f64(),
            }),
            Err(_) if from_zenoh => Err(ClientError::Zenoh(format!(
                "querying {key}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
            Err(e) => Err(ClientError::BadReply {
                key: key.to_string(),
                message: e.to_string(),
            }),
        };
    }
    Err(ClientError::NoReply {
        key: key.to_string(),
        timeout_s: timeout.as_secs_f64(),
    })
}
