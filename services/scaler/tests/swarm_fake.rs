//! The Swarm actuator against a stand-in Docker Engine API on 127.0.0.1 (plain HTTP, the few
//! endpoints it calls: `/version`, inspect and update of a service), so the faults a real
//! daemon only shows by accident are tested every run: an update whose answer is lost (it may
//! have happened), a name Docker resolves as an ID prefix, and the lease epoch label that
//! fences a deposed scaler. The real daemon is `tests/swarm.rs`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use autoscaler_scaler::swarm::LABEL_LEASE_EPOCH;
use autoscaler_scaler::{Actuator, ActuatorError, SwarmActuator, SwarmConfig};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One service of the stand-in daemon.
#[derive(Debug, Clone)]
struct Svc {
    id: String,
    name: String,
    version: u64,
    replicas: i64,
    labels: HashMap<String, String>,
}

/// What the stand-in does with an update.
#[derive(Debug, Clone, Copy, PartialEq)]
enum OnUpdate {
    /// Apply it and answer.
    Answer,
    /// Apply it, then never answer (the client times out: did it happen?).
    ApplyThenHang,
    /// Hang without applying it.
    Hang,
    /// Apply it, then hang, and from then on answer nothing at all.
    ApplyThenDie,
}

#[derive(Debug)]
struct Daemon {
    services: Vec<Svc>,
    on_update: OnUpdate,
    dead: bool,
    updates: u32,
}

impl Daemon {
    fn find(&self, key: &str) -> Option<usize> {
        // Like dockerd: exact ID, exact name, then an ID prefix.
        self.services
            .iter()
            .position(|s| s.id == key || s.name == key)
            .or_else(|| self.services.iter().position(|s| s.id.starts_with(key)))
    }
}

fn service_json(s: &Svc) -> Value {
    json!({
        "ID": s.id,
        "Version": {"Index": s.version},
        "Spec": {
            "Name": s.name,
            "Labels": s.labels,
            "Mode": {"Replicated": {"Replicas": s.replicas}},
            "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}}
        }
    })
}

async fn handle(daemon: Arc<Mutex<Daemon>>, mut sock: tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = &buf[head_end..head_end + len];
    let first = head.lines().next().unwrap_or_default().to_string();
    let mut parts = first.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let path = path
        .strip_prefix("/v1.41")
        .or_else(|| path.strip_prefix("/v1.44"))
        .unwrap_or(path)
        .to_string();
    let query = target
        .split_once('?')
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    let (status, answer, hang) = {
        let mut d = daemon.lock().unwrap();
        if d.dead {
            (0, Value::Null, true)
        } else if path == "/version" {
            (
                200,
                json!({"ApiVersion": "1.41", "Version": "20.10.24"}),
                false,
            )
        } else if let Some(rest) = path.strip_prefix("/services/") {
            let (key, update) = match rest.strip_suffix("/update") {
                Some(k) => (k.to_string(), true),
                None => (rest.to_string(), false),
            };
            match d.find(&key) {
                None => (
                    404,
                    json!({"message": format!("service {key} not found")}),
                    false,
                ),
                Some(i) if !update && method == "GET" => (200, service_json(&d.services[i]), false),
                Some(i) => {
                    let version: u64 = query
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("version="))
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if version != d.services[i].version {
                        (500, json!({"message": "update out of sequence"}), false)
                    } else {
                        let spec: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                        let mode = d.on_update;
                        d.updates += 1;
                        if mode != OnUpdate::Hang {
                            let s = &mut d.services[i];
                            s.version += 1;
                            if let Some(r) = spec["Mode"]["Replicated"]["Replicas"].as_i64() {
                                s.replicas = r;
                            }
                            if let Some(l) = spec["Labels"].as_object() {
                                s.labels = l
                                    .iter()
                                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").into()))
                                    .collect();
                            }
                        }
                        if mode == OnUpdate::ApplyThenDie {
                            d.dead = true;
                        }
                        (200, json!({"Warnings": null}), mode != OnUpdate::Answer)
                    }
                }
            }
        } else {
            (404, json!({"message": "not here"}), false)
        }
    };
    if hang {
        tokio::time::sleep(Duration::from_secs(30)).await;
        return;
    }
    let body = answer.to_string();
    let reply = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = sock.write_all(reply.as_bytes()).await;
    let _ = sock.shutdown().await;
}

async fn daemon(services: Vec<Svc>) -> (Arc<Mutex<Daemon>>, SwarmActuator) {
    let d = Arc::new(Mutex::new(Daemon {
        services,
        on_update: OnUpdate::Answer,
        dead: false,
        updates: 0,
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let d2 = d.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(handle(d2.clone(), sock));
        }
    });
    let act = SwarmActuator::new(SwarmConfig {
        docker_host: format!("tcp://127.0.0.1:{port}"),
        // Long enough for a loaded machine; the hanging cases wait it out.
        timeout: Duration::from_secs(2),
        ..Default::default()
    });
    (d, act)
}

fn svc(id: &str, name: &str, replicas: i64) -> Svc {
    Svc {
        id: id.into(),
        name: name.into(),
        version: 10,
        replicas,
        labels: [("autoscaler.enable".to_string(), "true".to_string())].into(),
    }
}

/// Medium 7: `api` is not a service, but Docker resolves it as a prefix of another service's
/// ID: it is refused, read or scaled; the exact name and the full ID work.
#[tokio::test]
async fn a_name_docker_resolves_as_an_id_prefix_is_refused() {
    let (d, act) = daemon(vec![svc("apiq7x3kz9", "payments", 2)]).await;
    assert!(
        matches!(
            act.current("api").await,
            Err(ActuatorError::UnknownService(_))
        ),
        "an ID prefix is not a name"
    );
    assert!(matches!(
        act.set_replicas("api", 2, 3).await,
        Err(ActuatorError::UnknownService(_))
    ));
    assert_eq!(d.lock().unwrap().updates, 0);
    assert_eq!(act.current("payments").await.unwrap(), 2);
    assert_eq!(act.current("apiq7x3kz9").await.unwrap(), 2);
}

/// Medium 8: the update's answer is lost (the daemon applied it, then timed out on us): the
/// actuator reads back what happened instead of failing, so the scaler records the change and
/// its cooldown. Not applied: a plain, retryable failure. Nothing to read back either: the
/// outcome is `Ambiguous` (the scaler keeps the cooldown).
#[tokio::test]
async fn an_update_whose_answer_is_lost_is_read_back() {
    let (d, act) = daemon(vec![svc("id-orders-0001", "orders", 2)]).await;
    d.lock().unwrap().on_update = OnUpdate::ApplyThenHang;
    act.set_replicas("orders", 2, 3).await.expect("it happened");
    assert_eq!(act.current("orders").await.unwrap(), 3);

    d.lock().unwrap().on_update = OnUpdate::Hang;
    let e = act.set_replicas("orders", 3, 4).await.unwrap_err();
    assert!(matches!(e, ActuatorError::Unavailable(_)), "{e:?}");
    assert_eq!(act.current("orders").await.unwrap(), 3);

    d.lock().unwrap().on_update = OnUpdate::ApplyThenDie;
    let e = act.set_replicas("orders", 3, 4).await.unwrap_err();
    assert!(matches!(e, ActuatorError::Ambiguous(_)), "{e:?}");
}

/// High 5 (fencing): a change under lease epoch 3 after one under epoch 5 is refused, and the
/// epoch travels with the change in the same versioned update.
#[tokio::test]
async fn the_lease_epoch_label_fences_a_deposed_scaler() {
    let (d, act) = daemon(vec![svc("id-carts-0001", "carts", 2)]).await;
    act.set_replicas_fenced("carts", 2, 3, 5).await.unwrap();
    assert_eq!(
        d.lock().unwrap().services[0]
            .labels
            .get(LABEL_LEASE_EPOCH)
            .map(String::as_str),
        Some("5")
    );
    let e = act.set_replicas_fenced("carts", 3, 4, 3).await.unwrap_err();
    assert!(
        matches!(
            e,
            ActuatorError::Fenced {
                epoch: 3,
                seen: 5,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(act.current("carts").await.unwrap(), 3);
    act.set_replicas_fenced("carts", 3, 4, 6).await.unwrap();
    assert_eq!(act.current("carts").await.unwrap(), 4);
}

/// Low: a service labelled `autoscaler.dry_run=true` since the decision read it is not changed.
#[tokio::test]
async fn a_fresh_dry_run_label_is_honoured_right_before_the_update() {
    let mut s = svc("id-user-0001", "user", 2);
    s.labels.insert("autoscaler.dry_run".into(), "true".into());
    let (d, act) = daemon(vec![s]).await;
    assert!(matches!(
        act.set_replicas("user", 2, 3).await,
        Err(ActuatorError::Refused(_))
    ));
    assert_eq!(d.lock().unwrap().updates, 0);
}
