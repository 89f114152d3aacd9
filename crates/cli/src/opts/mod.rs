//! Option groups shared by several commands (each command's own options live in its
//! `cmd/<name>.rs`), with their mapping into the services' configurations.

pub mod aggregator;
pub mod data;
pub mod learning;
pub mod models;
pub mod parse;
pub mod scaler;
pub mod telemetry;
