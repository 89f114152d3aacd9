//! What a command runs with when an option is not given is the libraries' default: the
//! `Default` of each shared option group (what `demo` runs with) and the default models'
//! training configuration are what clap gives for an empty command line.

use autoscaler_cli::cmd::train::TrainArgs;
use autoscaler_cli::default_models::default_train_config;
use autoscaler_cli::opts::aggregator::AggregatorOpts;
use autoscaler_cli::opts::scaler::ScalerOpts;
use clap::{Args, CommandFactory, FromArgMatches, Parser};

/// Parse `argv` as the options `T`, with none of their environment variables set.
fn parse<T: Args + FromArgMatches>(argv: &[&str]) -> T {
    let cmd = T::augment_args(clap::Command::new("t").no_binary_name(true));
    for arg in cmd.get_arguments() {
        if let Some(var) = arg.get_env() {
            std::env::remove_var(var);
        }
    }
    let m = cmd.try_get_matches_from(argv).expect("parses");
    T::from_arg_matches(&m).expect("maps")
}

#[test]
fn aggregator_defaults_are_the_empty_command_line() {
    assert_eq!(
        format!("{:?}", parse::<AggregatorOpts>(&[])),
        format!("{:?}", AggregatorOpts::default())
    );
}

#[test]
fn scaler_defaults_are_the_empty_command_line() {
    assert_eq!(
        format!("{:?}", parse::<ScalerOpts>(&[])),
        format!("{:?}", ScalerOpts::default())
    );
}

#[test]
fn default_models_train_as_train_by_run_with_every_other_option_at_its_default() {
    let args: TrainArgs = parse(&[
        "--data",
        "x.csv",
        "--split",
        "by-run",
        "--seed",
        "7",
        "--sla-p95-ms",
        "300",
        "--created-at",
        "2026-01-01T00:00:00Z",
    ]);
    let from_cli = args.config().unwrap();
    let mut ours = default_train_config(from_cli.kinds.clone(), 300.0, 7);
    ours.created_at = from_cli.created_at.clone();
    assert_eq!(format!("{from_cli:?}"), format!("{ours:?}"));
}

#[test]
fn the_command_line_is_well_formed() {
    autoscaler_cli::cmd::Cli::command().debug_assert();
    assert!(
        autoscaler_cli::cmd::Cli::try_parse_from(["autoscaler", "demo", "--seed", "3"]).is_ok()
    );
}
