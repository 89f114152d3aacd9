//! The node policy's pure part: which node a scale-in removes, whether the rest can absorb its
//! load, and the node cooldowns. No I/O: the caller gathers a [`NodeView`] per Swarm node (from
//! Docker and the node metrics) and acts on the answer.
//!
//! The rules, each a test below:
//!
//! * A scale-in is approved only if every node that remains stays under
//!   [`DEFAULT_MAX_CPU_AFTER_MOVE`] CPU and [`DEFAULT_MAX_MEMORY_AFTER_MOVE`] memory once the
//!   candidate's load is spread over them (in proportion to their capacity, as a spread
//!   scheduler would); both thresholds are configurable ([`NodePolicyConfig`]).
//! * The candidate is the least busy eligible node (the lowest of its CPU and memory maxima).
//! * Never the last manager; managers are not chosen at all unless
//!   [`NodePolicyConfig::allow_managers`] is set.
//! * Never a node this autoscaler did not launch ([`NodeView::ours`]).
//! * A node that is down or stopped reporting ([`NodeHealth::Missing`]) is never counted as
//!   capacity and never chosen: its tasks are unknown.
//! * Cooldowns: [`NODE_SCALE_OUT_COOLDOWN_SECS`] after a scale-out before the next scale-out,
//!   [`NODE_SCALE_IN_COOLDOWN_SECS`] after any node action before a scale-in.

use std::fmt;

/// A remaining node must stay under this CPU fraction after a scale-in moves the candidate's
/// load onto it (TrafficShaprX's manager approval rule: 65 %).
pub const DEFAULT_MAX_CPU_AFTER_MOVE: f64 = 0.65;
/// A remaining node must stay under this memory fraction after a scale-in moves the
/// candidate's load onto it (65 %).
pub const DEFAULT_MAX_MEMORY_AFTER_MOVE: f64 = 0.65;
/// Seconds after a node scale-out before the next node scale-out (300 s).
pub const NODE_SCALE_OUT_COOLDOWN_SECS: u64 = 300;
/// Seconds after any node action (out or in) before a node scale-in (240 s).
pub const NODE_SCALE_IN_COOLDOWN_SECS: u64 = 240;
/// Whether managers may be chosen for a scale-in by default (no: the last manager never is,
/// and by default no manager is).
pub const DEFAULT_ALLOW_MANAGER_REMOVAL: bool = false;

/// A Swarm node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// A manager (holds Raft state; the last one is never removed).
    Manager,
    /// A worker.
    Worker,
}

/// Whether a node is there to count on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeHealth {
    /// Swarm reports it ready, active, and its metrics are fresh.
    Ready,
    /// Ready, but not taking tasks (availability `drain` or `pause`): not capacity, not a
    /// candidate (a drain is already under way or an operator paused it).
    NotActive,
    /// Swarm marks it down, or its reports stopped: never capacity, never a candidate.
    Missing,
}

/// One node as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    /// Swarm node id.
    pub id: String,
    /// Manager or worker.
    pub role: NodeRole,
    /// Launched by this autoscaler (tagged `autoscaler:managed=true` for this cluster).
    pub ours: bool,
    /// Ready, not active, or missing.
    pub health: NodeHealth,
    /// CPU capacity, in cores.
    pub cpu_cores: f64,
    /// Memory capacity, in bytes.
    pub memory_bytes: f64,
    /// CPU in use, as a fraction of [`Self::cpu_cores`] (0.0–1.0).
    pub cpu_used: f64,
    /// Memory in use, as a fraction of [`Self::memory_bytes`] (0.0–1.0).
    pub memory_used: f64,
}

impl NodeView {
    /// The node's load for ordering: the higher of its CPU and memory fractions.
    pub fn busyness(&self) -> f64 {
        self.cpu_used.max(self.memory_used)
    }
}

/// The node policy's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct NodePolicyConfig {
    /// CPU fraction each remaining node must stay under after a scale-in.
    pub max_cpu_after_move: f64,
    /// Memory fraction each remaining node must stay under after a scale-in.
    pub max_memory_after_move: f64,
    /// Seconds after a scale-out before the next scale-out.
    pub scale_out_cooldown_secs: u64,
    /// Seconds after any node action before a scale-in.
    pub scale_in_cooldown_secs: u64,
    /// Whether a manager may be chosen (never the last one).
    pub allow_managers: bool,
}

impl Default for NodePolicyConfig {
    fn default() -> Self {
        Self {
            max_cpu_after_move: DEFAULT_MAX_CPU_AFTER_MOVE,
            max_memory_after_move: DEFAULT_MAX_MEMORY_AFTER_MOVE,
            scale_out_cooldown_secs: NODE_SCALE_OUT_COOLDOWN_SECS,
            scale_in_cooldown_secs: NODE_SCALE_IN_COOLDOWN_SECS,
            allow_managers: DEFAULT_ALLOW_MANAGER_REMOVAL,
        }
    }
}

/// Why a node may not be removed.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No node of that id in the view.
    UnknownNode(String),
    /// The node was not launched by this autoscaler.
    NotOurs(String),
    /// The node is down or stopped reporting: its tasks are unknown.
    Missing(String),
    /// The node is drained or paused already.
    NotActive(String),
    /// It is the last ready manager.
    LastManager(String),
    /// It is a manager and managers are not removable by configuration.
    ManagerNotAllowed(String),
    /// No other ready node would be left to take its tasks.
    NoRemainingCapacity(String),
    /// A remaining node would go over a threshold.
    WouldOverload {
        /// The candidate.
        candidate: String,
        /// The first remaining node that would be over.
        node: String,
        /// Its CPU fraction after the move.
        cpu_after: f64,
        /// Its memory fraction after the move.
        memory_after: f64,
    },
    /// Within the scale-in cooldown.
    Cooldown {
        /// Seconds left.
        remaining_secs: u64,
    },
    /// No node is eligible at all (none ours, ready and active).
    NoCandidate,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownNode(id) => write!(f, "node {id} is not in the cluster view"),
            Self::NotOurs(id) => write!(f, "node {id} was not launched by this autoscaler"),
            Self::Missing(id) => write!(f, "node {id} is missing (down or not reporting)"),
            Self::NotActive(id) => write!(f, "node {id} is not active (drain or pause)"),
            Self::LastManager(id) => write!(f, "node {id} is the last ready manager"),
            Self::ManagerNotAllowed(id) => {
                write!(f, "node {id} is a manager and managers are not removable")
            }
            Self::NoRemainingCapacity(id) => {
                write!(f, "removing node {id} leaves no ready node for its tasks")
            }
            Self::WouldOverload {
                candidate,
                node,
                cpu_after,
                memory_after,
            } => write!(
                f,
                "removing node {candidate} would put node {node} at {:.0} % CPU / {:.0} % memory",
                cpu_after * 100.0,
                memory_after * 100.0
            ),
            Self::Cooldown { remaining_secs } => {
                write!(f, "node scale-in cooldown: {remaining_secs} s left")
            }
            Self::NoCandidate => write!(f, "no node is eligible for removal"),
        }
    }
}

/// Checks whether `candidate` may be removed from `nodes`: the candidate's own eligibility
/// (ours, ready and active, not the last manager) and the capacity of the rest.
///
/// The candidate's used CPU (cores) and memory (bytes) are spread over the remaining ready,
/// active nodes in proportion to their capacity; every one of them must then stay strictly
/// under the configured fractions. Missing and inactive nodes are not counted as capacity.
pub fn check_scale_in(
    nodes: &[NodeView],
    candidate: &str,
    config: &NodePolicyConfig,
) -> Result<(), Refusal> {
    let cand = nodes
        .iter()
        .find(|n| n.id == candidate)
        .ok_or_else(|| Refusal::UnknownNode(candidate.to_string()))?;
    eligible(nodes, cand, config)?;

    let rest: Vec<&NodeView> = nodes
        .iter()
        .filter(|n| n.id != cand.id && n.health == NodeHealth::Ready)
        .collect();
    let rest_cpu: f64 = rest.iter().map(|n| n.cpu_cores).sum();
    let rest_mem: f64 = rest.iter().map(|n| n.memory_bytes).sum();
    if rest.is_empty() || rest_cpu <= 0.0 || rest_mem <= 0.0 {
        return Err(Refusal::NoRemainingCapacity(cand.id.clone()));
    }
    let moved_cpu = cand.cpu_used * cand.cpu_cores;
    let moved_mem = cand.memory_used * cand.memory_bytes;
    for n in rest {
        let cpu_after = if n.cpu_cores > 0.0 {
            (n.cpu_used * n.cpu_cores + moved_cpu * n.cpu_cores / rest_cpu) / n.cpu_cores
        } else {
            f64::INFINITY
        };
        let memory_after = if n.memory_bytes > 0.0 {
            (n.memory_used * n.memory_bytes + moved_mem * n.memory_bytes / rest_mem)
                / n.memory_bytes
        } else {
            f64::INFINITY
        };
        // NaN (a garbage metric) compares false: refuse rather than approve.
        let cpu_ok = cpu_after < config.max_cpu_after_move;
        let mem_ok = memory_after < config.max_memory_after_move;
        if !(cpu_ok && mem_ok) {
            return Err(Refusal::WouldOverload {
                candidate: cand.id.clone(),
                node: n.id.clone(),
                cpu_after,
                memory_after,
            });
        }
    }
    Ok(())
}

/// The candidate's own eligibility, without the capacity check.
fn eligible(nodes: &[NodeView], cand: &NodeView, config: &NodePolicyConfig) -> Result<(), Refusal> {
    if !cand.ours {
        return Err(Refusal::NotOurs(cand.id.clone()));
    }
    match cand.health {
        NodeHealth::Missing => return Err(Refusal::Missing(cand.id.clone())),
        NodeHealth::NotActive => return Err(Refusal::NotActive(cand.id.clone())),
        NodeHealth::Ready => {}
    }
    if cand.role == NodeRole::Manager {
        let other_ready_managers = nodes
            .iter()
            .filter(|n| {
                n.id != cand.id && n.role == NodeRole::Manager && n.health != NodeHealth::Missing
            })
            .count();
        if other_ready_managers == 0 {
            return Err(Refusal::LastManager(cand.id.clone()));
        }
        if !config.allow_managers {
            return Err(Refusal::ManagerNotAllowed(cand.id.clone()));
        }
    }
    Ok(())
}

/// Picks the node a scale-in removes: the least busy eligible node whose removal passes
/// [`check_scale_in`] (ties: lower CPU, then the node id, so the choice is deterministic).
/// `Err` carries the refusal of the least busy eligible node, or [`Refusal::NoCandidate`].
pub fn choose_scale_in(nodes: &[NodeView], config: &NodePolicyConfig) -> Result<String, Refusal> {
    let mut candidates: Vec<&NodeView> = nodes
        .iter()
        .filter(|n| eligible(nodes, n, config).is_ok())
        .collect();
    candidates.sort_by(|a, b| {
        a.busyness()
            .total_cmp(&b.busyness())
            .then(a.cpu_used.total_cmp(&b.cpu_used))
            .then(a.id.cmp(&b.id))
    });
    let mut first_refusal = None;
    for c in candidates {
        match check_scale_in(nodes, &c.id, config) {
            Ok(()) => return Ok(c.id.clone()),
            Err(r) => {
                first_refusal.get_or_insert(r);
            }
        }
    }
    Err(first_refusal.unwrap_or(Refusal::NoCandidate))
}

/// When the last node actions happened (Unix seconds); the caller persists it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeCooldowns {
    /// The last node scale-out, if any.
    pub last_scale_out: Option<u64>,
    /// The last node scale-in, if any.
    pub last_scale_in: Option<u64>,
}

impl NodeCooldowns {
    /// Seconds left before a scale-out is allowed at `now` (0: allowed).
    pub fn scale_out_wait(&self, now: u64, config: &NodePolicyConfig) -> u64 {
        wait(self.last_scale_out, now, config.scale_out_cooldown_secs)
    }

    /// Seconds left before a scale-in is allowed at `now` (0: allowed). Any node action, out
    /// or in, starts it: a node just launched is not removed four minutes later.
    pub fn scale_in_wait(&self, now: u64, config: &NodePolicyConfig) -> u64 {
        wait(self.last_scale_out, now, config.scale_in_cooldown_secs).max(wait(
            self.last_scale_in,
            now,
            config.scale_in_cooldown_secs,
        ))
    }

    /// [`choose_scale_in`] behind the scale-in cooldown.
    pub fn choose_scale_in(
        &self,
        now: u64,
        nodes: &[NodeView],
        config: &NodePolicyConfig,
    ) -> Result<String, Refusal> {
        match self.scale_in_wait(now, config) {
            0 => choose_scale_in(nodes, config),
            remaining_secs => Err(Refusal::Cooldown { remaining_secs }),
        }
    }
}

fn wait(last: Option<u64>, now: u64, cooldown: u64) -> u64 {
    match last {
        Some(t) => (t.saturating_add(cooldown)).saturating_sub(now),
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

    fn node(id: &str, cpu: f64, mem: f64) -> NodeView {
        NodeView {
            id: id.to_string(),
            role: NodeRole::Worker,
            ours: true,
            health: NodeHealth::Ready,
            cpu_cores: 2.0,
            memory_bytes: 4.0 * GIB,
            cpu_used: cpu,
            memory_used: mem,
        }
    }

    fn manager(id: &str, cpu: f64, mem: f64) -> NodeView {
        NodeView {
            role: NodeRole::Manager,
            ours: false,
            ..node(id, cpu, mem)
        }
    }

    #[test]
    fn approves_when_the_rest_stays_under_65_percent() {
        // Three equal nodes at 30 %: moving one's load onto two gives 45 % each.
        let nodes = [
            node("a", 0.3, 0.3),
            node("b", 0.3, 0.3),
            node("c", 0.3, 0.3),
        ];
        assert_eq!(
            check_scale_in(&nodes, "a", &NodePolicyConfig::default()),
            Ok(())
        );
    }

    #[test]
    fn refuses_when_cpu_would_pass_65_percent() {
        // Two nodes at 40 % CPU: the survivor would be at 80 %.
        let nodes = [node("a", 0.4, 0.1), node("b", 0.4, 0.1)];
        match check_scale_in(&nodes, "a", &NodePolicyConfig::default()) {
            Err(Refusal::WouldOverload {
                node, cpu_after, ..
            }) => {
                assert_eq!(node, "b");
                assert!((cpu_after - 0.8).abs() < 1e-9, "{cpu_after}");
            }
            other => panic!("expected an overload refusal, got {other:?}"),
        }
    }

    #[test]
    fn refuses_when_memory_would_pass_65_percent() {
        let nodes = [node("a", 0.1, 0.35), node("b", 0.1, 0.35)];
        assert!(matches!(
            check_scale_in(&nodes, "a", &NodePolicyConfig::default()),
            Err(Refusal::WouldOverload { .. })
        ));
    }

    #[test]
    fn threshold_is_configurable_and_strict() {
        // 30 % + 30 % = 60 % on the survivor: under 65 %, not under 60 %.
        let nodes = [node("a", 0.3, 0.1), node("b", 0.3, 0.1)];
        assert_eq!(
            check_scale_in(&nodes, "a", &NodePolicyConfig::default()),
            Ok(())
        );
        let strict = NodePolicyConfig {
            max_cpu_after_move: 0.60,
            ..NodePolicyConfig::default()
        };
        assert!(check_scale_in(&nodes, "a", &strict).is_err());
    }

    #[test]
    fn load_is_spread_by_capacity() {
        // b has 6 cores, c has 2: of a's 1.6 cores in use, b gets 1.2 and c 0.4.
        let mut b = node("b", 0.4, 0.1);
        b.cpu_cores = 6.0;
        let nodes = [node("a", 0.8, 0.1), b, node("c", 0.1, 0.1)];
        // b: (2.4 + 1.2) / 6 = 60 %; c: (0.2 + 0.4) / 2 = 30 %.
        assert_eq!(
            check_scale_in(&nodes, "a", &NodePolicyConfig::default()),
            Ok(())
        );
        let strict = NodePolicyConfig {
            max_cpu_after_move: 0.55,
            ..NodePolicyConfig::default()
        };
        match check_scale_in(&nodes, "a", &strict) {
            Err(Refusal::WouldOverload {
                node, cpu_after, ..
            }) => {
                assert_eq!(node, "b");
                assert!((cpu_after - 0.6).abs() < 1e-9, "{cpu_after}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_node_is_not_capacity() {
        // With c counted, a's load fits (b: 40 % + 20 % = 60 %); c is missing, so the
        // survivor b alone takes it: 40 % + 40 % = 80 %.
        let mut c = node("c", 0.0, 0.0);
        c.health = NodeHealth::Missing;
        let nodes = [node("a", 0.4, 0.1), node("b", 0.4, 0.1), c.clone()];
        assert!(matches!(
            check_scale_in(&nodes, "a", &NodePolicyConfig::default()),
            Err(Refusal::WouldOverload { .. })
        ));
        let counted = [
            node("a", 0.4, 0.1),
            node("b", 0.4, 0.1),
            node("c", 0.0, 0.0),
        ];
        assert_eq!(
            check_scale_in(&counted, "a", &NodePolicyConfig::default()),
            Ok(())
        );
    }

    #[test]
    fn missing_node_is_never_chosen_even_if_idle() {
        let mut idle = node("idle", 0.0, 0.0);
        idle.health = NodeHealth::Missing;
        let nodes = [
            idle,
            node("a", 0.2, 0.2),
            node("b", 0.1, 0.1),
            node("c", 0.3, 0.3),
        ];
        let cfg = NodePolicyConfig::default();
        assert_eq!(choose_scale_in(&nodes, &cfg), Ok("b".to_string()));
        assert_eq!(
            check_scale_in(&nodes, "idle", &cfg),
            Err(Refusal::Missing("idle".to_string()))
        );
    }

    #[test]
    fn chooses_the_least_busy_node() {
        // busyness = max(cpu, mem): a 0.5, b 0.2, c 0.25 -> b.
        let nodes = [
            node("a", 0.1, 0.5),
            node("b", 0.2, 0.1),
            node("c", 0.25, 0.0),
        ];
        assert_eq!(
            choose_scale_in(&nodes, &NodePolicyConfig::default()),
            Ok("b".to_string())
        );
    }

    #[test]
    fn never_a_node_not_ours() {
        let mut theirs = node("theirs", 0.0, 0.0);
        theirs.ours = false;
        let nodes = [theirs, node("a", 0.2, 0.2), node("b", 0.3, 0.3)];
        let cfg = NodePolicyConfig::default();
        assert_eq!(choose_scale_in(&nodes, &cfg), Ok("a".to_string()));
        assert_eq!(
            check_scale_in(&nodes, "theirs", &cfg),
            Err(Refusal::NotOurs("theirs".to_string()))
        );
    }

    #[test]
    fn never_the_last_manager() {
        let mut m = manager("m", 0.0, 0.0);
        m.ours = true;
        let cfg = NodePolicyConfig {
            allow_managers: true,
            ..NodePolicyConfig::default()
        };
        let nodes = [m.clone(), node("w", 0.1, 0.1)];
        assert_eq!(
            check_scale_in(&nodes, "m", &cfg),
            Err(Refusal::LastManager("m".to_string()))
        );
        // The only other manager is missing: still the last one.
        let mut gone = manager("m2", 0.0, 0.0);
        gone.health = NodeHealth::Missing;
        let nodes = [m.clone(), gone, node("w", 0.1, 0.1)];
        assert_eq!(
            check_scale_in(&nodes, "m", &cfg),
            Err(Refusal::LastManager("m".to_string()))
        );
        // With a second live manager it may go, when managers are allowed …
        let nodes = [m.clone(), manager("m2", 0.1, 0.1), node("w", 0.1, 0.1)];
        assert_eq!(check_scale_in(&nodes, "m", &cfg), Ok(()));
        // … and not by default.
        assert_eq!(
            check_scale_in(&nodes, "m", &NodePolicyConfig::default()),
            Err(Refusal::ManagerNotAllowed("m".to_string()))
        );
    }

    #[test]
    fn no_candidate_and_no_capacity() {
        let cfg = NodePolicyConfig::default();
        assert_eq!(
            choose_scale_in(&[manager("m", 0.1, 0.1)], &cfg),
            Err(Refusal::NoCandidate)
        );
        assert_eq!(
            check_scale_in(&[node("a", 0.0, 0.0)], "a", &cfg),
            Err(Refusal::NoRemainingCapacity("a".to_string()))
        );
        assert_eq!(
            check_scale_in(&[node("a", 0.0, 0.0)], "zz", &cfg),
            Err(Refusal::UnknownNode("zz".to_string()))
        );
    }

    #[test]
    fn skips_a_candidate_whose_removal_overloads() {
        // a is least busy by max() but huge; removing it overloads b and c. d is next and fits.
        let mut a = node("a", 0.30, 0.30);
        a.cpu_cores = 16.0;
        let nodes = [
            a,
            node("b", 0.32, 0.1),
            node("c", 0.33, 0.1),
            node("d", 0.31, 0.1),
        ];
        let cfg = NodePolicyConfig::default();
        assert!(check_scale_in(&nodes, "a", &cfg).is_err());
        assert_eq!(choose_scale_in(&nodes, &cfg), Ok("d".to_string()));
    }

    #[test]
    fn garbage_metrics_refuse() {
        let nodes = [node("a", 0.1, 0.1), node("b", f64::NAN, 0.1)];
        assert!(check_scale_in(&nodes, "a", &NodePolicyConfig::default()).is_err());
    }

    #[test]
    fn cooldowns_300_up_240_down() {
        let cfg = NodePolicyConfig::default();
        assert_eq!(NODE_SCALE_OUT_COOLDOWN_SECS, 300);
        assert_eq!(NODE_SCALE_IN_COOLDOWN_SECS, 240);
        let fresh = NodeCooldowns::default();
        assert_eq!(fresh.scale_out_wait(1_000, &cfg), 0);
        assert_eq!(fresh.scale_in_wait(1_000, &cfg), 0);

        let out = NodeCooldowns {
            last_scale_out: Some(1_000),
            last_scale_in: None,
        };
        assert_eq!(out.scale_out_wait(1_000, &cfg), 300);
        assert_eq!(out.scale_out_wait(1_299, &cfg), 1);
        assert_eq!(out.scale_out_wait(1_300, &cfg), 0);
        // A scale-out also holds scale-in for 240 s.
        assert_eq!(out.scale_in_wait(1_100, &cfg), 140);
        assert_eq!(out.scale_in_wait(1_240, &cfg), 0);

        let inn = NodeCooldowns {
            last_scale_out: None,
            last_scale_in: Some(2_000),
        };
        assert_eq!(inn.scale_in_wait(2_239, &cfg), 1);
        assert_eq!(
            inn.scale_out_wait(2_001, &cfg),
            0,
            "scale-out is never held by a scale-in"
        );

        let nodes = [node("a", 0.1, 0.1), node("b", 0.1, 0.1)];
        assert_eq!(
            inn.choose_scale_in(2_100, &nodes, &cfg),
            Err(Refusal::Cooldown {
                remaining_secs: 140
            })
        );
        assert!(inn.choose_scale_in(2_240, &nodes, &cfg).is_ok());
    }
}
