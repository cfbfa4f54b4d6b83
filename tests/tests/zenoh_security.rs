//! zenoh transport security end to end: a real `embodied-r run` process listening only on a
//! mutual-TLS endpoint, with zenoh access control keyed on certificate common names, and
//! console sessions in this test process. Certificates are made here with rcgen: a fleet CA
//! signs the runtime's, the operator console's and an intruder's; a second CA signs a stranger's.
//! - the console (CN `console`) asks and gets an answer, and receives the runtime's status;
//! - the intruder (a valid certificate from the fleet CA, CN `intruder`) connects but may not
//!   ask: its query gets no reply and never reaches the runtime (its received count stays),
//!   and what it publishes on the runtime's answer key reaches nobody — while a relay (CN
//!   `relay`, allowed to publish answers and nothing else) publishing the same bytes on the
//!   same key over the same kind of session does reach the console, so the intruder's
//!   message is stopped by the access rules, not lost for a routing reason;
//! - a stranger (a certificate from another CA), a TLS client without a certificate, and a
//!   plain TCP client are refused: their session fails to open.

#![allow(clippy::print_stderr, clippy::unwrap_used)]

use embodied_r_agent::AskRequest;
use embodied_r_agent::client::{ClientError, ask};
use embodied_r_tests::{Proc, free_port, question, runtime_config};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, Issuer, KeyPair};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const PREFIX: &str = "robots/secure/embodied-r";

/// A CA that signs leaf certificates.
fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// A leaf certificate for `cn` (valid for 127.0.0.1) signed by `issuer`, written as
/// `<dir>/<file>.pem` and `<dir>/<file>.key`; returns the two paths.
fn leaf(
    dir: &Path,
    file: &str,
    cn: &str,
    issuer: &Issuer<'_, impl rcgen::SigningKey>,
) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    let cert = p.signed_by(&key, issuer).unwrap();
    let (c, k) = (
        dir.join(format!("{file}.pem")),
        dir.join(format!("{file}.key")),
    );
    std::fs::write(&c, cert.pem()).unwrap();
    std::fs::write(&k, key.serialize_pem()).unwrap();
    (c, k)
}

fn json_path(p: &Path) -> String {
    serde_json::to_string(&p.display().to_string()).unwrap()
}

/// The runtime's zenoh configuration: mutual TLS, and access control by certificate CN.
fn runtime_zenoh(dir: &Path, ca: &Path, cert: &Path, key: &Path) -> PathBuf {
    let text = format!(
        r#"{{
  transport: {{ link: {{ tls: {{
    root_ca_certificate: {ca},
    listen_certificate: {cert},
    listen_private_key: {key},
    enable_mtls: true,
  }} }} }},
  access_control: {{
    enabled: true,
    default_permission: "deny",
    rules: [
      {{ id: "console asks", permission: "allow", flows: ["ingress"],
         messages: ["query", "declare_subscriber", "declare_liveliness_subscriber", "liveliness_query"],
         key_exprs: ["{PREFIX}/**"] }},
      {{ id: "runtime answers", permission: "allow", flows: ["egress"],
         messages: ["reply", "put", "declare_queryable", "liveliness_token"],
         key_exprs: ["{PREFIX}/**"] }},
      {{ id: "relay publishes answers", permission: "allow", flows: ["ingress"],
         messages: ["put"], key_exprs: ["{PREFIX}/answer"] }},
    ],
    subjects: [
      {{ id: "operator console", cert_common_names: ["console"] }},
      {{ id: "answer relay", cert_common_names: ["relay"] }},
    ],
    policies: [
      {{ rules: ["console asks", "runtime answers"], subjects: ["operator console"] }},
      {{ rules: ["relay publishes answers"], subjects: ["answer relay"] }},
    ],
  }},
}}"#,
        ca = json_path(ca),
        cert = json_path(cert),
        key = json_path(key),
    );
    let p = dir.join("runtime-zenoh.json5");
    std::fs::write(&p, text).unwrap();
    p
}

fn secure_config(dir: &Path, zenoh_file: &Path, port: u16) -> PathBuf {
    let text = format!(
        r#"[source]
kind = "sim"
scene = "indoor_0000"
width = 160
height = 120
actions = 200
rate = "realtime"

[describer]
kind = "sim"

[zenoh]
config = "{zenoh}"
listen = ["tls/127.0.0.1:{port}"]
multicast = false
status_period_ms = 200

[log]
enabled = false
"#,
        zenoh = zenoh_file.display(),
    );
    runtime_config(dir, "secure.toml", "secure", &text)
}

/// A client session to the runtime at `endpoint`, with TLS settings when given (a client
/// that cannot connect fails to open).
async fn client(
    endpoint: &str,
    tls: Option<(&Path, Option<(&Path, &Path)>)>,
) -> Result<zenoh::Session, String> {
    let mut c = zenoh::Config::default();
    let mut set = |k: &str, v: String| c.insert_json5(k, &v).unwrap();
    set("mode", "\"client\"".into());
    set("connect/endpoints", format!("[\"{endpoint}\"]"));
    set("connect/timeout_ms", "3000".into());
    set("scouting/multicast/enabled", "false".into());
    if let Some((ca, pair)) = tls {
        set("transport/link/tls/root_ca_certificate", json_path(ca));
        if let Some((cert, key)) = pair {
            set("transport/link/tls/connect_certificate", json_path(cert));
            set("transport/link/tls/connect_private_key", json_path(key));
            set("transport/link/tls/enable_mtls", "true".into());
        }
    }
    zenoh::open(c).await.map_err(|e| e.to_string())
}

fn req() -> AskRequest {
    question("What is ahead of me?", 30_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_console_may_ask_over_mutual_tls() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let fleet = ca("fleet CA");
    let other = ca("someone else's CA");
    std::fs::write(d.join("ca.pem"), fleet.pem()).unwrap();
    let ca_pem = d.join("ca.pem");
    let (rt_cert, rt_key) = leaf(d, "runtime", "runtime", &fleet);
    let (console_cert, console_key) = leaf(d, "console", "console", &fleet);
    let (intruder_cert, intruder_key) = leaf(d, "intruder", "intruder", &fleet);
    let (relay_cert, relay_key) = leaf(d, "relay", "relay", &fleet);
    let (stranger_cert, stranger_key) = leaf(d, "stranger", "console", &other);

    let port = free_port();
    let zf = runtime_zenoh(d, &ca_pem, &rt_cert, &rt_key);
    let cfg = secure_config(d, &zf, port);
    let mut rt = Proc::spawn(&["run", "--config", cfg.to_str().unwrap()], &[]);
    rt.wait_line("ready ", Duration::from_secs(180));
    let endpoint = format!("tls/127.0.0.1:{port}");
    let key = format!("{PREFIX}/ask");

    // The console: answered (asking until the camera has delivered key frames).
    let console = client(
        &endpoint,
        Some((&ca_pem, Some((&console_cert, &console_key)))),
    )
    .await
    .unwrap();
    let status = console
        .declare_subscriber(format!("{PREFIX}/status"))
        .await
        .unwrap();
    let mut answer = Value::Null;
    for _ in 0..120 {
        answer = ask(&console, &key, &req(), Duration::from_secs(60))
            .await
            .unwrap_or(Value::Null);
        if answer.get("text").is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        answer.get("text").is_some(),
        "the console is answered: {answer}"
    );
    let st = tokio::time::timeout(Duration::from_secs(10), status.recv_async())
        .await
        .expect("the console receives status")
        .unwrap();
    let st: Value = serde_json::from_slice(&st.payload().to_bytes()).unwrap();
    let received = st["asks"]["received"].as_u64().unwrap();

    // The intruder: a valid fleet certificate, but not the console's identity.
    let intruder = client(
        &endpoint,
        Some((&ca_pem, Some((&intruder_cert, &intruder_key)))),
    )
    .await
    .expect("a fleet certificate connects");
    let r = ask(&intruder, &key, &req(), Duration::from_secs(5)).await;
    eprintln!("intruder ask: {r:?}");
    assert!(
        matches!(r, Err(ClientError::NoReply { .. })),
        "the intruder's query must go unanswered (no reply at all): {r:?}"
    );
    // The control: a relay allowed to publish answers reaches the console on the answer key;
    // then the intruder's identical message, sent the same way, must not.
    let relay = client(&endpoint, Some((&ca_pem, Some((&relay_cert, &relay_key)))))
        .await
        .expect("a fleet certificate connects");
    let answers = console
        .declare_subscriber(format!("{PREFIX}/answer"))
        .await
        .unwrap();
    let mut relayed = None;
    for i in 0..40 {
        // The subscription takes a moment to reach the runtime: publish until one arrives.
        relay
            .put(
                format!("{PREFIX}/answer"),
                format!("{{\"text\": \"relayed {i}\"}}"),
            )
            .await
            .unwrap();
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(250), answers.recv_async()).await
        {
            relayed = Some(String::from_utf8_lossy(&s.payload().to_bytes()).into_owned());
            break;
        }
    }
    let relayed = relayed.expect("the allowed relay's answer reaches the console");
    assert!(relayed.contains("relayed"), "{relayed}");
    while answers.try_recv().ok().flatten().is_some() {}
    for _ in 0..5 {
        intruder
            .put(format!("{PREFIX}/answer"), "{\"text\": \"forged\"}")
            .await
            .unwrap();
    }
    // The same bytes again from the relay, after the forgeries: they arrive, in order, with
    // nothing of the intruder's before them.
    relay
        .put(format!("{PREFIX}/answer"), "{\"text\": \"relayed last\"}")
        .await
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), answers.recv_async())
        .await
        .expect("the relay's last answer arrives")
        .unwrap();
    let next = String::from_utf8_lossy(&next.payload().to_bytes()).into_owned();
    assert_eq!(
        next, "{\"text\": \"relayed last\"}",
        "a forged answer reached the console"
    );
    let forged = tokio::time::timeout(Duration::from_secs(1), answers.recv_async()).await;
    assert!(
        forged.is_err(),
        "a forged answer reached the console: {forged:?}"
    );
    // Nothing of the intruder's reached the runtime's ask queue.
    let st = tokio::time::timeout(Duration::from_secs(10), status.recv_async())
        .await
        .unwrap()
        .unwrap();
    let st: Value = serde_json::from_slice(&st.payload().to_bytes()).unwrap();
    assert_eq!(st["asks"]["received"].as_u64(), Some(received), "{st}");

    // Strangers cannot even connect: another CA, no client certificate, no TLS at all.
    let strangers = [
        (
            "another CA",
            client(
                &endpoint,
                Some((&ca_pem, Some((&stranger_cert, &stranger_key)))),
            )
            .await,
        ),
        (
            "no client certificate",
            client(&endpoint, Some((&ca_pem, None))).await,
        ),
        (
            "plain TCP",
            client(&format!("tcp/127.0.0.1:{port}"), None).await,
        ),
    ];
    for (what, s) in strangers {
        match s {
            Err(e) => eprintln!("{what}: refused ({e})"),
            Ok(_) => panic!("{what}: the session opened; the link must be refused"),
        }
    }
    let console_again = ask(&console, &key, &req(), Duration::from_secs(60))
        .await
        .unwrap();
    assert!(console_again.get("text").is_some(), "{console_again}");

    rt.terminate();
    assert_eq!(
        rt.wait_exit(Duration::from_secs(60)),
        Some(0),
        "{}",
        rt.stderr()
    );
}
