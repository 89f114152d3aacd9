//! The `autoscaler` binary: parse the command line, set up logging and the runtime, run the
//! command, exit with its code. Everything else is in the `autoscaler_cli` library.

use std::time::Duration;

use autoscaler_cli::cmd::Cli;
use autoscaler_cli::{exit, signal};
use clap::Parser;

fn main() {
    let cli = Cli::parse();
    signal::init_tracing(&cli.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let outcome = runtime.block_on(async { cli.command.run(signal::shutdown_on_signal()).await });
    let code = exit::report(outcome);
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}
