//! Model inputs of loaded records: the models crate's one feature function
//! ([`autoscaler_models::history::feature_values`]) over each record's window of recent polls,
//! built with the same [`History`] rules as the inference service.

use autoscaler_models::history::{
    default_history_feature_names, feature_values, History, HistoryPoint,
};
use autoscaler_models::ModelError;

use crate::data::{Loaded, Record};
use crate::labels::groups;
use crate::TrainingError;

/// Whether the default feature list includes the time of day. Off: in short recorded runs (the
/// peer's GKE runs last about 17 minutes each, each load pattern at other hours) the time of day
/// identifies the run rather than a daily cycle, and a model learns the pattern's hours; pass
/// `time_of_day_sin,time_of_day_cos` in the feature list where days repeat.
pub const DEFAULT_TIME_OF_DAY: bool = false;

/// The default feature list for `loaded`: the ten contract features, the per-replica ones when
/// every row has a replica count, the lags and rolling statistics, the time of day when
/// [`DEFAULT_TIME_OF_DAY`], and the service's identity when several services share the model.
pub fn default_features(loaded: &Loaded) -> Vec<String> {
    let services: Vec<String> = loaded.records.iter().map(|r| r.service.clone()).collect();
    default_history_feature_names(&services, loaded.all_have_replicas(), DEFAULT_TIME_OF_DAY)
}

/// The model input of every record, in `names` order, NaN where a value is missing (never 0);
/// `None` for a record whose window is shorter than the model needs (the inference service
/// abstains there). Windows are per (run, service), in time order.
pub fn feature_rows(
    records: &[Record],
    names: &[String],
) -> Result<Vec<Option<Vec<f64>>>, TrainingError> {
    let mut out = vec![None; records.len()];
    for g in groups(records) {
        let mut h = History::default();
        for i in g {
            let r = &records[i];
            let point = HistoryPoint {
                time: r.timestamp,
                features: r.features.clone(),
            };
            let window = h.push(&r.service, point);
            out[i] = match feature_values(window, &r.service, r.replicas, names) {
                Ok(v) => Some(v.into_iter().map(|x| x.unwrap_or(f64::NAN)).collect()),
                Err(ModelError::NotEnoughHistory { .. }) => None,
                Err(e) => return Err(e.into()),
            };
        }
    }
    Ok(out)
}
