//! # `autoscaler-cli`
//!
//! The `autoscaler` command as a library: one module per subcommand under [`cmd`], each owning
//! its clap arguments, mapping them into its service's configuration and calling the service's
//! library `run(config, deps, shutdown)` — the same function the tests call. `main.rs` only
//! parses, sets up logging and the runtime, and turns the outcome into an exit code.
//!
//! Imports go one way: `main → cmd::* → {bus, embedded, exit, opts, pipeline, report, …} →
//! service crates`. No command module imports a sibling: what two commands share (the
//! aggregator's and the scaler's options, the run-and-report body of `run` and `demo`) lives in
//! a shared module.
//!
//! | module | what |
//! |---|---|
//! | [`cmd`] | the [`Cli`](cmd::Cli), the [`Command`](cmd::Command) enum, one module per command |
//! | [`opts`] | option groups several commands flatten, and their mapping into configurations |
//! | [`bench`] | what the benchmark commands share: the vectors they publish, percentiles |
//! | [`bus`] | bus options and the bus they build (in-process or Kafka) |
//! | [`embedded`] | the whole pipeline in one process (what `run`, `demo` and tests drive) |
//! | [`pipeline`] | `run`'s and `demo`'s shared body: models, embedded run, blocks, summary |
//! | [`report`] | decision blocks and the summary people read |
//! | [`exit`] | exit codes and [`ConfigError`](exit::ConfigError) (exit 64) |
//! | [`signal`] | logging set-up and the shutdown token (SIGINT/SIGTERM) |
//! | [`default_models`] | training the default models into a directory that lacks them |
//! | [`reload`] | reloading a model on SIGHUP or when its files change |
//!
//! Exit codes: 0 done; 1 failed while running; 2 bad command line (clap); 64 bad configuration
//! (every problem listed); 130 stopped by a second signal.
//!
//! ## Adding a command
//!
//! 1. Write `crates/cli/src/cmd/<name>.rs` with `pub struct <Name>Args` (`#[derive(Debug,
//!    Clone, clap::Args)]`, every default `default_value_t = CONST` from the library that owns
//!    it) and `pub async fn run(a: <Name>Args, shutdown: CancellationToken) ->
//!    anyhow::Result<()>`. Import shared modules and libraries, never another `cmd` module.
//! 2. In `cmd/mod.rs`: add `pub mod <name>;`, a variant `<Name>(<name>::<Name>Args)` to
//!    [`Command`](cmd::Command) (its doc comment is the help line), and its arm
//!    `Command::<Name>(a) => <name>::run(a, shutdown).await,` in `Command::run`.
//! 3. A configuration that cannot run returns [`ConfigError`](exit::ConfigError) listing every
//!    problem (exit 64); anything else is an `anyhow` error (exit 1).

pub mod bench;
pub mod bus;
pub mod cmd;
pub mod default_models;
pub mod embedded;
pub mod exit;
pub mod opts;
pub mod pipeline;
pub mod reload;
pub mod report;
pub mod signal;
