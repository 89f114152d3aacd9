//! The `forecast-eval` plot: one model's forecast and interval at one horizon over the actual
//! series (SVG), for the last [`PLOT_BUCKETS`] buckets evaluated.

use std::path::Path;

use plotters::prelude::*;

use crate::ForecastError;

/// Buckets shown (two days).
pub const PLOT_BUCKETS: usize = 2 * crate::BUCKETS_PER_DAY;

/// Draw `actual` and the forecasts `(target bucket, mean, lower, upper)` to `path`.
pub fn write_forecast_plot(
    path: &Path,
    title: &str,
    actual: &[f64],
    forecasts: &[(usize, f64, f64, f64)],
) -> Result<(), ForecastError> {
    let err = |e: String| ForecastError::Invalid(format!("plot {}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    }
    let end = forecasts
        .last()
        .map(|f| f.0 + 1)
        .unwrap_or(actual.len())
        .min(actual.len());
    let start = end.saturating_sub(PLOT_BUCKETS);
    let shown: Vec<&(usize, f64, f64, f64)> = forecasts
        .iter()
        .filter(|f| f.0 >= start && f.0 < end)
        .collect();
    let ymax = actual[start..end]
        .iter()
        .copied()
        .chain(shown.iter().map(|f| f.3))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.05;
    let hours = |b: usize| b as f64 * crate::BUCKET_SECS as f64 / 3600.0;
    let root = SVGBackend::new(path, (1200, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(hours(start)..hours(end), 0.0..ymax)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc("hours since trace start")
        .y_desc("requests/s (5-min mean)")
        .draw()
        .map_err(|e| err(e.to_string()))?;
    let band = RGBColor(158, 202, 225);
    for (sel, colour, label) in [(2usize, band, "lower"), (3, band, "upper")] {
        chart
            .draw_series(LineSeries::new(
                shown
                    .iter()
                    .map(|f| (hours(f.0), if sel == 2 { f.2 } else { f.3 })),
                colour,
            ))
            .map_err(|e| err(e.to_string()))?
            .label(format!("interval {label}"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour));
    }
    chart
        .draw_series(LineSeries::new(
            (start..end).map(|b| (hours(b), actual[b])),
            BLACK,
        ))
        .map_err(|e| err(e.to_string()))?
        .label("actual")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    let blue = RGBColor(31, 119, 180);
    chart
        .draw_series(LineSeries::new(
            shown.iter().map(|f| (hours(f.0), f.1)),
            blue,
        ))
        .map_err(|e| err(e.to_string()))?
        .label("forecast")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(e.to_string()))?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
