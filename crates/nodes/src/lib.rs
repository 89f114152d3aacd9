#![doc = r#"
# Node scaling (issue 12)

Swarm services can only grow as far as the nodes under them. This crate holds the two parts of
node scaling that need neither Docker nor the scaler's store:

* [`ec2`]: the EC2 actuator. It launches instances (from a launch template, or from an AMI,
  instance type, subnet, security groups and key) tagged `autoscaler:managed=true` and
  `autoscaler:cluster=<name>`, with user-data that joins the Swarm from a join token and
  manager address the caller read from Docker; it lists, describes and terminates instances,
  and refuses any instance that is not tagged as ours. EC2 errors are classified: throttling and
  capacity errors are retried with bounded backoff, auth errors are final.
* [`policy`]: the pure node policy: the capacity check before a scale-in (every remaining node
  under 65 % CPU and memory after taking the candidate's load), the least-busy choice, never the
  last manager, never a node not ours, missing nodes never counted nor chosen, and the node
  cooldowns (300 s up, 240 s down).

The scaler wires them to Docker (join token, node list, drain) and its store; the tests against
moto's EC2 server are in `tests/ec2.rs` (`scripts/moto-up.sh` starts one).
"#]
#![warn(missing_docs)]

pub mod ec2;
pub mod policy;

pub use ec2::{
    Ec2Actuator, Ec2Error, Ec2Settings, ErrorClass, LaunchRequest, LaunchSource, ManagedInstance,
    RetryPolicy, SwarmJoin,
};
pub use policy::{
    check_scale_in, choose_scale_in, NodeCooldowns, NodeHealth, NodePolicyConfig, NodeRole,
    NodeView, Refusal,
};
