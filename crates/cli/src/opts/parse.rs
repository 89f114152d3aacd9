//! Value parsers shared by several commands' options.

use autoscaler_contract::{ModelKind, Strategy};

/// `127.0.0.1:8081`.
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| {
        format!("`{s}` is not an IP address and port, e.g. 127.0.0.1:8081 or 0.0.0.0:8081")
    })
}

/// `xgboost`, `random_forest`, `logistic_regression`.
pub fn parse_model(s: &str) -> Result<ModelKind, String> {
    s.parse()
}

/// `majority`, `unanimous`, `weighted`.
pub fn parse_strategy(s: &str) -> Result<Strategy, String> {
    s.parse()
}

/// `MODEL=WEIGHT`, e.g. `xgboost=2`.
pub fn parse_weight(s: &str) -> Result<(ModelKind, f64), String> {
    let (m, w) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not MODEL=WEIGHT"))?;
    let w: f64 = w
        .parse()
        .map_err(|_| format!("weight `{w}` of {m} is not a number"))?;
    Ok((m.parse()?, w))
}
