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

/// Feature rows of every record, per feature list.
pub(crate) type Rows = std::rc::Rc<Vec<Option<Vec<f64>>>>;

/// The feature rows of a window's records, built once per feature list: the candidate's three
/// models, the live ones, the drift check and the shadow log (and `evaluate`'s three models)
/// usually share one list, and
/// building the history features of 100,000 rows is not free.
pub(crate) struct FeatureCache<'a> {
    pub(crate) records: &'a [Record],
    built: Vec<(Vec<String>, Rows)>,
}

impl<'a> FeatureCache<'a> {
    pub(crate) fn new(records: &'a [Record]) -> Self {
        FeatureCache {
            records,
            built: Vec::new(),
        }
    }

    /// The rows for `names` ([`feature_rows`]), built on first use.
    pub(crate) fn rows(&mut self, names: &[String]) -> Result<Rows, TrainingError> {
        if let Some((_, r)) = self.built.iter().find(|(n, _)| n == names) {
            return Ok(r.clone());
        }
        let r: Rows = std::rc::Rc::new(feature_rows(self.records, names)?);
        self.built.push((names.to_vec(), r.clone()));
        Ok(r)
    }

    /// Feature lists built so far.
    #[cfg(test)]
    pub(crate) fn builds(&self) -> usize {
        self.built.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{load_csvs, BadRows, DataInput};
    use autoscaler_simulator::TrainingDataConfig;

    #[test]
    fn the_feature_cache_builds_each_list_once_and_gives_feature_rows() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("sim.csv");
        let cfg = TrainingDataConfig {
            runs: 1,
            days_per_run: 1,
            ..TrainingDataConfig::default()
        };
        crate::simulated_csv(&cfg, &csv).unwrap();
        let loaded = load_csvs(
            &[DataInput {
                path: csv,
                pattern: None,
            }],
            BadRows::Fail,
        )
        .unwrap();
        let names = crate::default_features(&loaded);
        let mut cache = FeatureCache::new(&loaded.records);
        let a = cache.rows(&names).unwrap();
        let b = cache.rows(&names).unwrap();
        assert!(std::rc::Rc::ptr_eq(&a, &b));
        assert_eq!(cache.builds(), 1);
        let direct = feature_rows(&loaded.records, &names).unwrap();
        assert_eq!(a.len(), direct.len());
        // NaN-aware equality: the same values, missing where missing.
        for (x, y) in a.iter().zip(&direct) {
            match (x, y) {
                (Some(x), Some(y)) => {
                    assert!(x.iter().zip(y).all(|(u, v)| u.to_bits() == v.to_bits()))
                }
                (None, None) => {}
                _ => panic!("one has history, the other not"),
            }
        }
        let fewer = names[..3].to_vec();
        let c = cache.rows(&fewer).unwrap();
        assert_eq!(cache.builds(), 2);
        assert_eq!(c.iter().flatten().next().map(Vec::len), Some(3));
    }
}
