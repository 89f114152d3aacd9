//! `autoscaler drift`: the learning loop's drift check on its own — population stability of
//! each feature of the most recent rows against the live model card's reference, and the live
//! models' recall there against their validation recall. Exit code 1 on an alarm (so a cron job
//! or the scheduled `retrain` can act on it).

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::opts::learning::WindowOpts;

/// `autoscaler drift`.
#[derive(Debug, Clone, Args)]
pub struct DriftArgs {
    /// The window and the live models.
    #[command(flatten)]
    pub window: WindowOpts,
    /// Print the report as JSON.
    #[arg(long, env = "AUTOSCALER_DRIFT_JSON")]
    pub json: bool,
}

/// Check, print, and fail on an alarm.
pub async fn run(a: DriftArgs, _shutdown: CancellationToken) -> anyhow::Result<()> {
    let cfg = a.window.config(None, chrono::Utc::now().to_rfc3339())?;
    let report =
        tokio::task::spawn_blocking(move || autoscaler_training::learning::check_drift(&cfg))
            .await??;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let mut psi: Vec<(&String, &f64)> = report.psi.iter().collect();
        psi.sort_by(|x, y| y.1.total_cmp(x.1));
        println!("{:<32} {:>7}", "feature (highest PSI first)", "PSI");
        for (name, p) in psi.iter().take(10) {
            println!("{name:<32} {p:>7.3}");
        }
        for (m, (recent, val)) in &report.live_recall {
            println!("live {m}: recall {recent:.3} on the recent rows, {val:.3} on validation");
        }
    }
    if report.alarm {
        anyhow::bail!("DRIFT ALARM: {}", report.reasons.join("; "));
    }
    println!("no drift past the thresholds");
    Ok(())
}
