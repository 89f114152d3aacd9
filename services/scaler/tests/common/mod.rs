//! Shared by the scaler's integration tests: a scaler on the in-process bus, fed votes by hand.
#![allow(dead_code)]

pub mod tansu;

use std::sync::Arc;
use std::time::Duration;

use autoscaler_bus::{Bus, MemoryBus, Outgoing, Overflow, Subscription};
use autoscaler_contract::fixtures;
use autoscaler_contract::{decode, encode, Decision, Strategy, Vote, DECISIONS_TOPIC, VOTES_TOPIC};
use autoscaler_scaler::{run, Actuator, ScalerConfig, ScalerDeps, ScalerError, ScalerReport};
use autoscaler_voting::VotingConfig;
use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

/// Metric time 0 of every test.
pub fn t0() -> DateTime<Utc> {
    fixtures::t0()
}

/// The three models' votes on vector `id` of `service` at `at_secs`: all "up", or all
/// "no action" and safe at one replica fewer.
pub fn votes(id: &str, service: &str, at_secs: i64, up: bool) -> Vec<Vote> {
    let t = fixtures::at(at_secs);
    fixtures::votes(&format!("{id}@{}", t.timestamp_millis()), |v| {
        v.service(service)
            .at(t)
            .ballot(up)
            .one_fewer((!up).then_some(0.05))
    })
}

/// A running scaler (majority, 1 s decision window) and a reader of its decisions.
pub struct Scaler {
    pub bus: MemoryBus,
    pub decisions: Box<dyn Subscription>,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<Result<ScalerReport, ScalerError>>,
}

/// Start a scaler acting through `actuator`, with its state in `state_db` when given.
pub async fn start(actuator: Arc<dyn Actuator>, state_db: Option<std::path::PathBuf>) -> Scaler {
    let bus = MemoryBus::new(64, Overflow::Block);
    let decisions = bus.subscribe(DECISIONS_TOPIC, "test").await.unwrap();
    let mut cfg = ScalerConfig::new(VotingConfig::new(Strategy::Majority));
    cfg.decision_window = Duration::from_secs(1);
    cfg.state_db = state_db;
    // The fixtures' metric times are fixed (2024) and minutes apart: the log's own clock.
    cfg.clock = autoscaler_contract::ClockMode::Replay;
    cfg.max_skew_secs = 86_400;
    let shutdown = CancellationToken::new();
    let deps = ScalerDeps {
        bus: Arc::new(bus.clone()),
        actuator,
    };
    let handle = tokio::spawn(run(cfg, deps, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(50)).await;
    Scaler {
        bus,
        decisions,
        shutdown,
        handle,
    }
}

impl Scaler {
    /// Publish the three votes on vector `id`.
    pub async fn send_id(&self, id: &str, service: &str, at_secs: i64, up: bool) {
        for v in votes(id, service, at_secs, up) {
            self.bus
                .publish(Outgoing::new(VOTES_TOPIC, service, encode(&v)))
                .await
                .unwrap();
        }
    }

    /// Publish the three votes on vector `service@at_secs`.
    pub async fn send(&self, service: &str, at_secs: i64, up: bool) {
        self.send_id(&format!("{service}@{at_secs}"), service, at_secs, up)
            .await;
    }

    /// The next decision, if one comes `within`.
    pub async fn next(&mut self, within: Duration) -> Option<Decision> {
        match tokio::time::timeout(within, self.decisions.recv()).await {
            Ok(Some(Ok(d))) => Some(decode(&d.payload).unwrap()),
            _ => None,
        }
    }

    /// Send one vector's votes and return its decision.
    pub async fn decide(&mut self, service: &str, at_secs: i64, up: bool) -> Decision {
        self.send(service, at_secs, up).await;
        let d = self
            .next(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("no decision for {service}@{at_secs}"));
        assert_eq!(d.service, service);
        d
    }

    /// Stop it and return its report.
    pub async fn stop(self) -> ScalerReport {
        self.shutdown.cancel();
        self.handle.await.unwrap().unwrap()
    }
}
