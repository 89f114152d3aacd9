//! Plots of a backtest (SVG): a timeline per service — load and the oracle's demand, replicas
//! per policy, p95 per policy against the SLA — and a Pareto chart (replica-hours against
//! SLA-violation minutes: HPA's sweep as a line, every other policy as a point).

use std::path::{Path, PathBuf};

use autoscaler_policy::PolicyKind;
use plotters::prelude::*;

use crate::Backtest;

/// Why a plot could not be written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Only SVG is built (PNG would need plotters' bitmap backend and an image encoder).
    #[error("cannot plot to {path}: only .svg is supported (PNG would need plotters' bitmap backend and an image encoder, which this build leaves out)")]
    Format {
        /// The file.
        path: PathBuf,
    },
    /// Drawing or writing failed.
    #[error("cannot plot to {path}: {reason}")]
    Draw {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

const COLOURS: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(255, 187, 120),
];

fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

const PANEL_H: u32 = 230;
const PARETO_H: u32 = 480;
const WIDTH: u32 = 1200;

/// Write the timeline and the Pareto chart of `bt` to `path` (`.svg`).
pub fn write_plot(bt: &Backtest, path: &Path) -> Result<(), PlotError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !ext.eq_ignore_ascii_case("svg") {
        return Err(PlotError::Format {
            path: path.to_path_buf(),
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| PlotError::Draw {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    }
    let err = |e: String| PlotError::Draw {
        path: path.to_path_buf(),
        reason: e,
    };
    let height = bt.services.len() as u32 * 3 * PANEL_H + PARETO_H;
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let (timelines, pareto) = root.split_vertically(height - PARETO_H);
    let panels = timelines.split_evenly((bt.services.len() * 3, 1));
    for (i, svc) in bt.services.iter().enumerate() {
        draw_service(bt, i, svc, &panels[3 * i..3 * i + 3]).map_err(err)?;
    }
    draw_pareto(bt, &pareto).map_err(err)?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

/// Write only the Pareto chart of `bt` to `path` (`.svg`; what the README shows).
pub fn write_pareto(bt: &Backtest, path: &Path) -> Result<(), PlotError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if !ext.eq_ignore_ascii_case("svg") {
        return Err(PlotError::Format {
            path: path.to_path_buf(),
        });
    }
    let err = |e: String| PlotError::Draw {
        path: path.to_path_buf(),
        reason: e,
    };
    let root = SVGBackend::new(path, (WIDTH, PARETO_H)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    draw_pareto(bt, &root).map_err(err)?;
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

fn draw_service(bt: &Backtest, i: usize, svc: &str, panels: &[Area<'_>]) -> Result<(), String> {
    let hours = bt.hours.max(1e-9);
    let e = |x: String| x;
    let first = bt.policies.first().map(|p| &p.per_service[i].timeline);
    let Some(first) = first else { return Ok(()) };
    // Load and demand.
    let max_load = first.iter().map(|p| p.load_rps).fold(1.0, f64::max);
    let mut c = ChartBuilder::on(&panels[0])
        .caption(
            format!("{svc}: load (requests/s) and the oracle's demand (replicas)"),
            ("sans-serif", 16),
        )
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..hours, 0.0..max_load * 1.05)
        .map_err(|x| e(x.to_string()))?;
    c.configure_mesh()
        .y_desc("requests/s")
        .draw()
        .map_err(|x| e(x.to_string()))?;
    c.draw_series(LineSeries::new(
        first.iter().map(|p| (p.hour, p.load_rps)),
        colour(0).stroke_width(1),
    ))
    .map_err(|x| e(x.to_string()))?
    .label("load")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour(0)));
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(x.to_string()))?;
    // Replicas per policy.
    let max_rep = bt
        .policies
        .iter()
        .flat_map(|p| {
            p.per_service[i]
                .timeline
                .iter()
                .map(|t| t.replicas.max(t.demand))
        })
        .max()
        .unwrap_or(1) as f64;
    let mut c = ChartBuilder::on(&panels[1])
        .caption(format!("{svc}: replicas per policy"), ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(24)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..hours, 0.0..max_rep + 1.0)
        .map_err(|x| e(x.to_string()))?;
    c.configure_mesh()
        .y_desc("replicas")
        .draw()
        .map_err(|x| e(x.to_string()))?;
    for (k, p) in bt.policies.iter().enumerate() {
        let col = colour(k);
        c.draw_series(LineSeries::new(
            p.per_service[i]
                .timeline
                .iter()
                .map(|t| (t.hour, t.replicas as f64)),
            col.stroke_width(if p.kind == PolicyKind::Hybrid { 2 } else { 1 }),
        ))
        .map_err(|x| e(x.to_string()))?
        .label(p.name.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(x.to_string()))?;
    // p95 per policy, capped at 4 × SLA.
    let cap = 4.0 * bt.sla_p95_ms;
    let mut c = ChartBuilder::on(&panels[2])
        .caption(
            format!("{svc}: p95 (ms, capped at 4 × SLA) against the SLA"),
            ("sans-serif", 16),
        )
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..hours, 0.0..cap * 1.02)
        .map_err(|x| e(x.to_string()))?;
    c.configure_mesh()
        .x_desc("hours")
        .y_desc("p95 ms")
        .draw()
        .map_err(|x| e(x.to_string()))?;
    for (k, p) in bt.policies.iter().enumerate() {
        let col = colour(k);
        c.draw_series(LineSeries::new(
            p.per_service[i]
                .timeline
                .iter()
                .map(|t| (t.hour, t.p95_ms.min(cap))),
            col.stroke_width(1),
        ))
        .map_err(|x| e(x.to_string()))?;
    }
    c.draw_series(LineSeries::new(
        [(0.0, bt.sla_p95_ms), (hours, bt.sla_p95_ms)],
        BLACK.stroke_width(2),
    ))
    .map_err(|x| e(x.to_string()))?
    .label("SLA")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.stroke_width(2)));
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(x.to_string()))?;
    Ok(())
}

fn draw_pareto(bt: &Backtest, area: &Area<'_>) -> Result<(), String> {
    let e = |x: String| x;
    let xs = bt.policies.iter().map(|p| p.replica_hours);
    let (x_lo, x_hi) = xs.fold((f64::INFINITY, 0.0f64), |(lo, hi), x| {
        (lo.min(x), hi.max(x))
    });
    let y_hi = bt
        .policies
        .iter()
        .map(|p| p.sla_violation_minutes)
        .fold(1.0, f64::max);
    let pad = ((x_hi - x_lo) * 0.05).max(1.0);
    let mut c = ChartBuilder::on(area)
        .caption(
            format!(
                "Pareto: replica-hours against SLA-violation minutes ({}, {} h)",
                bt.trace, bt.hours
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((x_lo - pad).max(0.0)..x_hi + pad, 0.0..y_hi * 1.1)
        .map_err(|x| e(x.to_string()))?;
    c.configure_mesh()
        .x_desc("replica-hours")
        .y_desc("SLA-violation minutes")
        .draw()
        .map_err(|x| e(x.to_string()))?;
    let curve = bt.hpa_curve();
    if !curve.is_empty() {
        let col = colour(7);
        c.draw_series(LineSeries::new(curve.clone(), col.stroke_width(2)))
            .map_err(|x| e(x.to_string()))?
            .label("HPA sweep")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        c.draw_series(
            curve
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 3, col.filled())),
        )
        .map_err(|x| e(x.to_string()))?;
        for p in bt.policies.iter().filter(|p| p.kind == PolicyKind::Hpa) {
            c.draw_series(std::iter::once(Text::new(
                p.name.clone(),
                (p.replica_hours, p.sla_violation_minutes),
                ("sans-serif", 12),
            )))
            .map_err(|x| e(x.to_string()))?;
        }
    }
    for (k, p) in bt
        .policies
        .iter()
        .enumerate()
        .filter(|(_, p)| p.kind != PolicyKind::Hpa)
    {
        let col = colour(k);
        let pt = (p.replica_hours, p.sla_violation_minutes);
        c.draw_series(std::iter::once(Circle::new(pt, 6, col.filled())))
            .map_err(|x| e(x.to_string()))?
            .label(p.name.clone())
            .legend(move |(x, y)| Circle::new((x + 9, y), 5, col.filled()));
        c.draw_series(std::iter::once(Text::new(
            format!(" {}", p.name),
            pt,
            ("sans-serif", 13),
        )))
        .map_err(|x| e(x.to_string()))?;
    }
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(x.to_string()))?;
    Ok(())
}
