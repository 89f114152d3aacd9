//! The Docker daemon restarted mid-update (issue 15, "Prove it"), against a `dockerd` of the
//! test's own: its own network namespace (`ip netns`), data root, exec root, containerd and
//! single-node Swarm — never the shared daemon other tests use.
//!
//! The scaler talks to that daemon through a Unix-socket proxy the test runs. When the proxy
//! sees the service update go by, it forwards it, swallows the answer, and the test SIGKILLs the
//! daemon: the update may or may not have been applied. The scaler must stay up, record the
//! outcome as unknown and keep the cooldown (no second scale at once), and once the daemon is
//! back, act again on the count it reads — one step per decision, never two.
//!
//! Needs root, `ip` and `dockerd` (`scripts/swarm-up.sh` installs docker.io); skips without
//! them, fails under CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use autoscaler_scaler::{SwarmActuator, SwarmConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

mod common;
use common::start;

/// The whole test finishes within this.
const TEST_TIMEOUT: Duration = Duration::from_secs(240);

fn is_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true")
}

fn image() -> String {
    std::env::var("AUTOSCALER_TEST_IMAGE")
        .unwrap_or_else(|_| "autoscaler-test/busybox:local".into())
}

fn skip(why: &str) {
    assert!(!is_ci(), "CI: {why}");
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED a_docker_restart_mid_update_is_recorded_as_unknown_and_never_acts_twice: {why}"
    );
}

/// A `dockerd` in a network namespace of its own.
struct PrivateDaemon {
    netns: String,
    dir: PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateDaemon {
    fn socket(&self) -> PathBuf {
        self.dir.join("docker.sock")
    }

    fn docker(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket().display()))
            .args(args)
            .output()
            .map_err(|e| format!("docker {args:?}: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
        } else {
            Err(format!(
                "docker {args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn create(dir: &Path) -> Result<Self, String> {
        let netns = format!("as-dr-{}", std::process::id());
        let ok = |c: &mut Command| {
            c.status()
                .map_err(|e| format!("{c:?}: {e}"))
                .and_then(|s| s.success().then_some(()).ok_or(format!("{c:?}: {s}")))
        };
        ok(Command::new("ip").args(["netns", "add", &netns]))?;
        let d = PrivateDaemon {
            netns,
            dir: dir.to_path_buf(),
            child: None,
        };
        ok(Command::new("ip").args(["netns", "exec", &d.netns, "ip", "link", "set", "lo", "up"]))?;
        Ok(d)
    }

    /// Start (or restart on the same data root) and wait until it answers.
    fn start(&mut self) -> Result<Duration, String> {
        let t = Instant::now();
        // A containerd left by a killed dockerd: killed too, and its pid file removed — a dead
        // one may linger as a zombie (nothing reaps it here), which dockerd would take for a
        // running containerd and wait on for good.
        let pidfile = self.dir.join("exec/containerd/containerd.pid");
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            let _ = std::fs::remove_file(&pidfile);
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("dockerd.log"))
            .map_err(|e| e.to_string())?;
        // `nsenter --net`, not `ip netns exec`: the latter remounts /sys, which hides the
        // cgroup hierarchies dockerd needs.
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", self.netns))
            .arg("dockerd")
            .arg(format!("--data-root={}", self.dir.join("data").display()))
            .arg(format!("--exec-root={}", self.dir.join("exec").display()))
            .arg(format!(
                "--pidfile={}",
                self.dir.join("dockerd.pid").display()
            ))
            .arg(format!("--host=unix://{}", self.socket().display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--containerd-namespace=as-docker-restart",
                "--containerd-plugins-namespace=as-docker-restart-plugins",
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("dockerd: {e}"))?;
        self.child = Some(child);
        while t.elapsed() < Duration::from_secs(60) {
            if self.docker(&["info", "--format", "{{.ID}}"]).is_ok() {
                return Ok(t.elapsed());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("no answer within 60 s; log:\n{}", self.log()))
    }

    /// SIGKILL: no shutdown path runs.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default()
    }
}

impl Drop for PrivateDaemon {
    fn drop(&mut self) {
        let _ = self.docker(&["swarm", "leave", "--force"]);
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(15) {
                if c.try_wait().ok().flatten().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Its containerd (a child that outlives a killed dockerd).
        let pid = self.dir.join("exec/containerd/containerd.pid");
        if let Ok(pid) = std::fs::read_to_string(pid) {
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
        }
        // Mounts it left behind (it shares this host's mount namespace), deepest first.
        let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
        let dir = self.dir.display().to_string();
        let mut ours: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter(|m| m.starts_with(&dir))
            .collect();
        ours.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in ours {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.netns])
            .status();
    }
}

/// Forwards the Docker API from `listen` to `upstream`. The first request whose line contains
/// `/update` is forwarded and its answer swallowed; `seen` is set when it went by.
async fn proxy(
    listen: UnixListener,
    upstream: PathBuf,
    armed: Arc<AtomicBool>,
    seen: Arc<tokio::sync::Notify>,
) {
    loop {
        let Ok((client, _)) = listen.accept().await else {
            return;
        };
        let upstream = upstream.clone();
        let armed = armed.clone();
        let seen = seen.clone();
        tokio::spawn(async move {
            let Ok(server) = UnixStream::connect(&upstream).await else {
                return; // the daemon is down: the client sees the connection close
            };
            let (mut cr, mut cw) = client.into_split();
            let (mut sr, mut sw) = server.into_split();
            let swallow = Arc::new(AtomicBool::new(false));
            let swallow_up = swallow.clone();
            let up = tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let chunk = &buf[..n];
                    let is_update = chunk.windows(7).any(|w| w == b"/update");
                    if is_update && armed.swap(false, Ordering::SeqCst) {
                        swallow_up.store(true, Ordering::SeqCst);
                        if sw.write_all(chunk).await.is_err() {
                            break;
                        }
                        seen.notify_one();
                        continue;
                    }
                    if sw.write_all(chunk).await.is_err() {
                        break;
                    }
                }
            });
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match sr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if swallow.load(Ordering::SeqCst) {
                    continue; // the answer to the update is lost
                }
                if cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
            let _ = cw.shutdown().await;
            up.abort();
        });
    }
}

fn replicas(d: &PrivateDaemon, name: &str) -> u32 {
    d.docker(&[
        "service",
        "inspect",
        name,
        "--format",
        "{{.Spec.Mode.Replicated.Replicas}}",
    ])
    .unwrap_or_else(|e| panic!("{e}"))
    .parse()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root, ip netns and dockerd (scripts/swarm-up.sh installs docker.io)"]
async fn a_docker_restart_mid_update_is_recorded_as_unknown_and_never_acts_twice() {
    for tool in ["ip", "nsenter", "dockerd", "docker"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map(|o| !o.status.success())
            .unwrap_or(true)
        {
            return skip(&format!("no `{tool}`"));
        }
    }
    // Short paths: a Unix socket path is limited to 108 bytes.
    let dir = tempfile::Builder::new()
        .prefix("as-dr")
        .tempdir_in("/tmp")
        .unwrap();
    let mut daemon = match PrivateDaemon::create(dir.path()) {
        Ok(d) => d,
        Err(e) => return skip(&format!("no network namespace (root needed): {e}")),
    };
    let started = match daemon.start() {
        Ok(t) => t,
        Err(e) => return skip(&format!("the private dockerd did not start: {e}")),
    };
    eprintln!("private dockerd answered after {started:?}");
    daemon
        .docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"])
        .unwrap();
    let name = "dr-orders";
    daemon
        .docker(&[
            "service",
            "create",
            "--detach",
            "--name",
            name,
            "--label",
            "autoscaler.enable=true",
            "--label",
            "autoscaler.max=5",
            "--replicas",
            "1",
            // Never placed: the replica count is what is scaled, and no container (nor its
            // shim) is left behind by the killed daemon.
            "--constraint",
            "node.labels.autoscaler-test-never==true",
            &image(),
        ])
        .unwrap();

    let proxy_path = dir.path().join("proxy.sock");
    let armed = Arc::new(AtomicBool::new(true));
    let seen = Arc::new(tokio::sync::Notify::new());
    tokio::spawn(proxy(
        UnixListener::bind(&proxy_path).unwrap(),
        daemon.socket(),
        armed.clone(),
        seen.clone(),
    ));
    let actuator = SwarmActuator::new(SwarmConfig {
        docker_host: proxy_path.display().to_string(),
        timeout: Duration::from_secs(5),
        ..SwarmConfig::default()
    });

    tokio::time::timeout(TEST_TIMEOUT, async {
        let state = dir.path().join("state.db");
        let mut s = start(Arc::new(actuator), Some(state)).await;
        // The daemon dies right after it received the update (its answer never arrives), and
        // stays down longer than the scaler's read-back.
        let pid = daemon.child.as_ref().expect("running").id();
        let killer = async {
            seen.notified().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        };
        let (d, ()) = tokio::join!(s.decide(name, 0, true), killer);
        daemon.kill(); // reaps it
        assert!(!d.acted, "{d:?}");
        assert!(
            d.adjustments.iter().any(|a| a.contains("outcome unknown")),
            "the lost answer is recorded as unknown: {:?}",
            d.adjustments
        );

        let back = daemon
            .start()
            .expect("the daemon restarts on its data root");
        eprintln!("restarted dockerd answered after {back:?}");
        // Swarm's manager may need a moment after the API answers.
        let t = Instant::now();
        let after = loop {
            match daemon.docker(&[
                "service",
                "inspect",
                name,
                "--format",
                "{{.Spec.Mode.Replicated.Replicas}}",
            ]) {
                Ok(n) => break n.parse::<u32>().unwrap(),
                Err(e) if t.elapsed() < Duration::from_secs(60) => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Err(e) => panic!("the service after the restart: {e}"),
            }
        };
        assert!(
            after == 1 || after == 2,
            "one step at most happened: {after}"
        );
        eprintln!(
            "after the restart the service has {after} replicas (the lost update {})",
            if after == 2 {
                "happened"
            } else {
                "did not happen"
            }
        );

        // Within the cooldown the change is not repeated, whatever happened.
        let d = s.decide(name, 120, true).await;
        assert!(!d.acted, "{d:?}");
        assert!(
            d.adjustments[0].starts_with("cooldown"),
            "{:?}",
            d.adjustments
        );
        assert_eq!(replicas(&daemon, name), after);

        // After it, one step from the count read back — never a second step for the first.
        let d = s.decide(name, 301, true).await;
        assert!(d.acted, "{d:?}\n{}", daemon.log());
        assert_eq!(d.from_replicas, Some(after));
        assert_eq!(replicas(&daemon, name), after + 1);
        let r = s.stop().await;
        assert_eq!(r.decisions, 3, "{r:?}");
    })
    .await
    .expect("the test took too long");
}
