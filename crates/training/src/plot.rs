//! The evaluation plot: ROC and precision/recall curves, side by side, as SVG.

use std::path::Path;

use plotters::prelude::*;

use crate::evaluate::{curves, EvalReport};
use crate::TrainingError;

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Draw the ROC and precision/recall curves of every model and rule of `report` to `path`
/// (SVG).
pub fn write_plot(report: &EvalReport, path: &Path) -> Result<(), TrainingError> {
    let err = |e: String| TrainingError::Plot {
        path: path.to_path_buf(),
        reason: e,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| TrainingError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let lines = curves(report);
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (left, right) = root.split_horizontally(600);
    for (panel, is_roc) in [(left, true), (right, false)] {
        let (title, xl, yl) = if is_roc {
            ("ROC", "false-positive rate", "true-positive rate (recall)")
        } else {
            ("Precision / recall", "recall", "precision")
        };
        let mut chart = ChartBuilder::on(&panel)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..1.0f64, 0.0..1.0f64)
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(xl)
            .y_desc(yl)
            .draw()
            .map_err(|e| err(e.to_string()))?;
        for (k, (name, roc, pr)) in lines.iter().enumerate() {
            let colour = COLOURS[k % COLOURS.len()];
            let pts = if is_roc { roc.clone() } else { pr.clone() };
            let auc = if is_roc {
                report
                    .models
                    .iter()
                    .chain(&report.rules)
                    .nth(k)
                    .and_then(|r| r.metrics.roc_auc)
            } else {
                report
                    .models
                    .iter()
                    .chain(&report.rules)
                    .nth(k)
                    .and_then(|r| r.metrics.pr_auc)
            };
            let label = match auc {
                Some(a) => format!("{name} ({a:.3})"),
                None => name.clone(),
            };
            chart
                .draw_series(LineSeries::new(pts, colour.stroke_width(2)))
                .map_err(|e| err(e.to_string()))?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(if is_roc {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::LowerLeft
            })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
