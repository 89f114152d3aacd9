//! For tests of a full disk: run one test of the current test binary again, in a private mount
//! namespace where a tiny tmpfs is mounted on a fresh directory (`unshare -m`, root needed).
//! The child test finds the directory in an environment variable and fills the disk itself.

use std::path::Path;
use std::process::Command;

/// What the child printed, when it ran.
#[derive(Debug)]
pub struct ChildRun {
    /// Whether it passed.
    pub success: bool,
    /// Its standard output (the test harness's, with `--nocapture`).
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Run test `child` of this binary with a `size` tmpfs (e.g. `1m`) mounted on a new directory,
/// whose path (passed through `value`) is in the environment variable `env`. `Err` says why it
/// could not run (no `unshare`, not root): the caller skips, or fails under CI.
pub fn run_child_on_tmpfs(
    child: &str,
    size: &str,
    env: &str,
    value: impl Fn(&Path) -> String,
) -> Result<ChildRun, String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir =
        std::env::temp_dir().join(format!("autoscaler-tmpfs-{}-{nanos:x}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let script = r#"mount -t tmpfs -o "size=$1" tmpfs "$2" && shift 2 && exec "$@""#;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            size,
        ])
        .arg(&dir)
        .arg(exe)
        .args(["--exact", child, "--nocapture", "--test-threads=1"])
        .env(env, value(&dir))
        .output();
    // The tmpfs lived in the child's namespace only: what is left is the empty directory.
    let _ = std::fs::remove_dir_all(&dir);
    let out = out.map_err(|e| format!("unshare: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() && !stdout.contains("running 1 test") {
        // unshare or mount refused (not root): the child never ran.
        return Err(format!("no private tmpfs: {}", stderr.trim()));
    }
    Ok(ChildRun {
        success: out.status.success(),
        stdout,
        stderr,
    })
}
