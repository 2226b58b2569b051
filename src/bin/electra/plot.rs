//! Line charts of the training metrics (metrics.jsonl → curves.svg), drawn with plotters' pure-Rust
//! SVG backend: plotters lays out the axes, ticks and grid; text goes out as SVG `<text>` for the
//! viewer to render (no font files are read).

use electra::error::{Error, Result};
use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// One named series of (x, y) points.
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points, in x order; non-finite ones are left out.
    pub points: Vec<(f64, f64)>,
    /// Stroke colour (RGB).
    pub color: (u8, u8, u8),
    /// Dots on the points too (sparse series such as held-out evaluations); a series of one
    /// point always gets its dot.
    pub markers: bool,
}

/// A y axis with its own scale and the series drawn against it.
pub struct YAxis {
    /// Axis description, written along the axis.
    pub label: String,
    /// A range always shown (widened to fit the data), e.g. `Some((0.0, 1.0))` for a rate; `None`
    /// fits the data.
    pub range: Option<(f64, f64)>,
    /// Series drawn against this axis.
    pub series: Vec<Series>,
}

/// One chart panel: a left y axis and optionally a right one with an independent scale; the x
/// axis ("step") is shared.
pub struct Panel {
    /// Title above the panel.
    pub title: String,
    /// Primary (left) axis.
    pub left: YAxis,
    /// Secondary (right) axis.
    pub right: Option<YAxis>,
}

/// Size of one panel in pixels; panels sit side by side.
const PANEL_W: u32 = 640;
const PANEL_H: u32 = 420;
/// Title and legend strip above each chart.
const HEADER_H: u32 = 58;
/// Tick labels asked of plotters' mesh per axis (it picks round values, at most this many).
const X_TICKS: usize = 7;
const Y_TICKS: usize = 6;
const FONT: &str = "sans-serif";

fn err(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("plotting curves: {e}"))
}

fn finite(s: &Series) -> impl Iterator<Item = (f64, f64)> + '_ {
    s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite())
}

/// Smallest and largest of `vs`, or `None` for none.
fn extent(vs: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    vs.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A drawable range around `ext`: a data range padded by `pad` of its span, a degenerate one
/// (single point, all-equal values) widened around its value, (0, 1) when there is no data.
fn span(ext: Option<(f64, f64)>, pad: f64, unit: f64) -> Result<(f64, f64)> {
    let (lo, hi) = ext.unwrap_or((0.0, 1.0));
    let d = hi - lo;
    let (lo, hi) = if d <= 1e-9 * lo.abs().max(hi.abs()).max(1e-12) {
        let w = if lo == 0.0 { unit } else { (lo.abs() * 0.1).max(unit * 1e-3) };
        (lo - w, hi + w)
    } else {
        (lo - pad * d, hi + pad * d)
    };
    if lo.is_finite() && hi.is_finite() && hi - lo > 0.0 && (hi - lo).is_finite() {
        Ok((lo, hi))
    } else {
        Err(err(format!("values out of range ({lo}, {hi})")))
    }
}

fn y_range(axis: &YAxis) -> Result<(f64, f64)> {
    let data = extent(axis.series.iter().flat_map(finite).map(|p| p.1));
    match (axis.range, data) {
        (Some((a, b)), Some((lo, hi))) => span(Some((a.min(lo), b.max(hi))), 0.0, 1.0),
        (Some(r), None) => span(Some(r), 0.0, 1.0),
        (None, d) => span(d, 0.05, 1.0),
    }
}

/// Decimals that print every tick plotters will put on `range` (asked for `n` labels) exactly,
/// so an axis reads 0, 200, 400 or 0.5, 1.0, 1.5 or 0.25, 0.50, 0.75.
fn decimals(range: (f64, f64), n: usize) -> usize {
    let ticks = RangedCoordf64::from(range.0..range.1).key_points(n);
    let scale = (range.1 - range.0).abs().max(f64::MIN_POSITIVE);
    (0..=9)
        .find(|&d| {
            let m = 10f64.powi(d as i32);
            ticks.iter().all(|t| ((t * m).round() / m - t).abs() <= scale * 1e-6)
        })
        .unwrap_or(9)
}

fn tick_label(v: f64, d: usize) -> String {
    let s = format!("{v:.d$}");
    // "-0.0" for a tick at a rounded zero reads badly.
    if s.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

fn rgb(c: (u8, u8, u8)) -> RGBColor {
    RGBColor(c.0, c.1, c.2)
}

/// The line through a series' finite points.
fn line<'a>(s: &Series) -> LineSeries<SVGBackend<'a>, (f64, f64)> {
    LineSeries::new(finite(s).collect::<Vec<_>>(), rgb(s.color).stroke_width(2))
}

/// Its dots, where it has them.
fn dots(s: &Series) -> Vec<Circle<(f64, f64), i32>> {
    let pts: Vec<_> = finite(s).collect();
    if s.markers || pts.len() == 1 {
        pts.into_iter().map(|p| Circle::new(p, 3, rgb(s.color).filled())).collect()
    } else {
        Vec::new()
    }
}

/// Title, then one legend entry per series (a stroke, a dot where the series has them, its
/// name and, on a two-axis panel, which axis it reads against).
fn header(area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, p: &Panel) -> Result<()> {
    area.draw(&Text::new(p.title.clone(), (14, 6), (FONT, 21).into_font().style(FontStyle::Bold))).map_err(err)?;
    let sides: Vec<(&YAxis, &str)> = match &p.right {
        Some(r) => vec![(&p.left, " (left axis)"), (r, " (right axis)")],
        None => vec![(&p.left, "")],
    };
    let (mut x, mut y) = (16, 38);
    let max_x = PANEL_W as i32 - 10;
    for (axis, side) in sides {
        for s in &axis.series {
            let empty = finite(s).next().is_none();
            let text = format!("{}{}{}", s.name, side, if empty { " (no data)" } else { "" });
            // No font metrics in the SVG backend: a generous per-character width for 13 px (16 pt) text.
            let w = 30 + (text.chars().count() as f64 * 7.5) as i32 + 18;
            if x > 16 && x + w > max_x {
                (x, y) = (16, y + 17);
            }
            let c = rgb(s.color);
            area.draw(&PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2))).map_err(err)?;
            if s.markers {
                area.draw(&Circle::new((x + 12, y), 3, c.filled())).map_err(err)?;
            }
            area.draw(&Text::new(text, (x + 30, y - 7), (FONT, 16).into_font())).map_err(err)?;
            x += w;
        }
    }
    Ok(())
}

fn draw_panel(area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>, p: &Panel) -> Result<()> {
    let (head, body) = area.split_vertically(HEADER_H);
    header(&head, p)?;
    let all = p.left.series.iter().chain(p.right.iter().flat_map(|r| r.series.iter()));
    let xr = span(extent(all.flat_map(finite).map(|p| p.0)), 0.0, 1.0)?;
    let yl = y_range(&p.left)?;
    let (dx, dyl) = (decimals(xr, X_TICKS), decimals(yl, Y_TICKS));
    let x_fmt = |v: &f64| tick_label(*v, dx);
    let yl_fmt = |v: &f64| tick_label(*v, dyl);
    // plotters' font sizes are in points (pixels × 1.24).
    let axis_font = (FONT, 17).into_font();
    let desc_style = |axis: &YAxis| {
        let color = match axis.series.as_slice() {
            [only] => rgb(only.color),
            _ => BLACK,
        };
        axis_font.clone().color(&color)
    };

    let mut builder = ChartBuilder::on(&body);
    builder
        .margin_left(20)
        .margin_right(if p.right.is_some() { 8 } else { 28 })
        .margin_top(6)
        .margin_bottom(6)
        .x_label_area_size(44)
        .y_label_area_size(70);
    if p.right.is_some() {
        builder.right_y_label_area_size(70);
    }
    let chart = builder.build_cartesian_2d(xr.0..xr.1, yl.0..yl.1).map_err(err)?;
    // The primary mesh: x axis (shared) and left y axis. On a two-axis chart it is configured after
    // the secondary coordinates are set, which hands the right label area to the secondary axis.
    let mesh = |chart: &mut ChartContext<'_, SVGBackend<'_>, Cartesian2d<RangedCoordf64, RangedCoordf64>>| {
        chart
            .configure_mesh()
            .x_labels(X_TICKS)
            .y_labels(Y_TICKS)
            .x_label_formatter(&x_fmt)
            .x_desc("step")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(TRANSPARENT)
            .disable_y_axis()
            .draw()
            .map_err(err)?;
        // The left axis on its own, so that its description takes its series' colour.
        chart
            .configure_mesh()
            .y_labels(Y_TICKS)
            .y_label_formatter(&yl_fmt)
            .y_desc(p.left.label.as_str())
            .label_style((FONT, 15))
            .axis_desc_style(desc_style(&p.left))
            .disable_mesh()
            .disable_x_axis()
            .draw()
            .map_err(err)
    };
    let Some(right) = &p.right else {
        let mut chart = chart;
        mesh(&mut chart)?;
        for s in &p.left.series {
            chart.draw_series(line(s)).map_err(err)?;
            chart.draw_series(dots(s)).map_err(err)?;
        }
        return Ok(());
    };
    let yr = y_range(right)?;
    let dyr = decimals(yr, Y_TICKS);
    let yr_fmt = |v: &f64| tick_label(*v, dyr);
    let mut chart = chart.set_secondary_coord(xr.0..xr.1, yr.0..yr.1);
    mesh(&mut chart)?;
    chart
        .configure_secondary_axes()
        .y_labels(Y_TICKS)
        .y_label_formatter(&yr_fmt)
        .y_desc(right.label.as_str())
        .label_style((FONT, 15))
        .axis_desc_style(desc_style(right))
        .draw()
        .map_err(err)?;
    for s in &p.left.series {
        chart.draw_series(line(s)).map_err(err)?;
        chart.draw_series(dots(s)).map_err(err)?;
    }
    for s in &right.series {
        chart.draw_secondary_series(line(s)).map_err(err)?;
        chart.draw_secondary_series(dots(s)).map_err(err)?;
    }
    Ok(())
}

/// Renders panels side by side as one SVG document. Non-finite points are left out; a panel
/// without data is drawn as empty axes; an error (never a panic) for no panels or values whose
/// range cannot be drawn.
pub fn render(panels: &[Panel]) -> Result<String> {
    if panels.is_empty() {
        return Err(err("no panels"));
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PANEL_W * panels.len() as u32, PANEL_H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        for (area, p) in root.split_evenly((1, panels.len())).iter().zip(panels) {
            draw_panel(area, p)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(name: &str, points: Vec<(f64, f64)>, color: (u8, u8, u8)) -> Series {
        Series { name: name.into(), points, color, markers: false }
    }

    /// The shape of curves.svg: training losses on two axes, held-out rates on [0, 1].
    fn panels(mlm: Vec<(f64, f64)>, disc: Vec<(f64, f64)>, auc: Vec<(f64, f64)>) -> Vec<Panel> {
        vec![
            Panel {
                title: "training losses".into(),
                left: YAxis {
                    label: "MLM cross-entropy".into(),
                    range: None,
                    series: vec![series("generator MLM", mlm, (31, 119, 180))],
                },
                right: Some(YAxis {
                    label: "BCE".into(),
                    range: None,
                    series: vec![series("discriminator BCE", disc, (214, 39, 40))],
                }),
            },
            Panel {
                title: "held-out".into(),
                left: YAxis {
                    label: "rate".into(),
                    range: Some((0.0, 1.0)),
                    series: vec![Series { markers: true, ..series("disc ROC AUC", auc, (44, 160, 44)) }],
                },
                right: None,
            },
        ]
    }

    fn well_formed(svg: &str) {
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "non-finite coordinate in the SVG");
        // Every element that opens closes (plotters writes self-closing tags or text pairs).
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    /// The x position of each `<text x="..">label</text>` with that label.
    fn text_x(svg: &str, label: &str) -> Vec<f64> {
        svg.split("<text x=\"")
            .skip(1)
            .filter_map(|t| {
                let (x, rest) = t.split_once('"')?;
                let body = rest.split_once('>')?.1.split_once("</text>")?.0.trim();
                (body == label).then(|| x.parse().ok()).flatten()
            })
            .collect()
    }

    /// `<text ...>label</text>` contents.
    fn texts(svg: &str) -> Vec<String> {
        svg.split("<text")
            .skip(1)
            .filter_map(|t| Some(t.split_once('>')?.1.split_once("</text>")?.0.trim().to_string()))
            .collect()
    }

    #[test]
    fn draws_two_axes_ticks_legend_and_a_line_per_series() {
        let mlm: Vec<_> = (1..=50).map(|i| (i as f64 * 20.0, 10.0 - 0.12 * i as f64)).collect();
        let disc: Vec<_> = (1..=50).map(|i| (i as f64 * 20.0, 0.69 - 0.004 * i as f64)).collect();
        let auc: Vec<_> = (1..=10).map(|i| (i as f64 * 100.0, 0.5 + 0.04 * i as f64)).collect();
        let svg = render(&panels(mlm, disc, auc)).unwrap();
        well_formed(&svg);
        let t = texts(&svg);
        for name in ["generator MLM (left axis)", "discriminator BCE (right axis)", "disc ROC AUC"] {
            assert!(t.iter().any(|s| s == name), "legend entry {name:?} in {t:?}");
        }
        for label in ["step", "MLM cross-entropy", "BCE", "rate", "training losses", "held-out"] {
            assert!(t.iter().any(|s| s == label), "label {label:?} in {t:?}");
        }
        // Steps as integers, both loss scales with their own round ticks, rates in [0, 1].
        for tick in ["200", "1000", "4", "10", "0.50", "0.65", "0.0", "0.2", "1.0"] {
            assert!(t.iter().any(|s| s == tick), "tick {tick:?} in {t:?}");
        }
        // The BCE ticks stand on the right of the losses panel, the MLM ones on its left.
        let (bce, ce) = (text_x(&svg, "0.65"), text_x(&svg, "10"));
        assert!(bce.len() == 1 && bce[0] > 0.8 * PANEL_W as f64 && bce[0] < PANEL_W as f64, "{bce:?}");
        assert!(ce.len() == 1 && ce[0] < 0.2 * PANEL_W as f64, "{ce:?}");
        let numeric: Vec<_> = t.iter().filter(|s| s.parse::<f64>().is_ok()).collect();
        assert!(numeric.len() >= 20 && numeric.iter().all(|s| s.len() <= 5), "short tick labels: {numeric:?}");
        // One polyline per series (plus the legend strokes, which are two-point polylines).
        let long_lines = svg.split("<polyline").skip(1).filter(|p| p.split(' ').count() > 40).count();
        assert!(long_lines >= 3, "{long_lines} data lines");
        // The held-out series has a dot per point; each point of the training series has none.
        assert!(svg.matches("<circle").count() >= 10);
    }

    #[test]
    fn degenerate_inputs_draw_without_panicking() {
        let one = vec![(100.0, 3.0)];
        let flat: Vec<_> = (0..5).map(|i| (i as f64, 0.5)).collect();
        let nan = vec![(0.0, f64::NAN), (1.0, 2.0), (f64::NAN, 1.0), (2.0, f64::INFINITY), (3.0, 1.5)];
        let cases: Vec<Vec<Panel>> = vec![
            panels(vec![], vec![], vec![]),
            panels(one.clone(), one.clone(), one.clone()),
            panels(flat.clone(), flat.clone(), flat.clone()),
            panels(vec![(0.0, 0.0), (1.0, 0.0)], vec![(5.0, -0.0)], vec![]),
            panels(nan.clone(), vec![(0.0, f64::NAN)], nan.clone()),
            panels(vec![(0.0, 1e-300), (1.0, 1e-300)], vec![(1e12, 1e9), (2e12, 1e9 + 1.0)], vec![]),
        ];
        for p in &cases {
            let svg = render(p).unwrap();
            well_formed(&svg);
            assert!(texts(&svg).iter().any(|s| s == "step"));
        }
        let empty = render(&cases[0]).unwrap();
        assert!(texts(&empty).iter().any(|s| s == "generator MLM (left axis) (no data)"));
        // A single point gets a dot (a one-point line is invisible).
        assert!(render(&cases[1]).unwrap().contains("<circle"));
        assert!(render(&[]).is_err());
        let huge = panels(vec![(0.0, -f64::MAX), (1.0, f64::MAX)], vec![], vec![]);
        assert!(render(&huge).is_err());
    }

    #[test]
    fn tick_decimals_follow_the_tick_step() {
        assert_eq!(decimals((0.0, 1000.0), X_TICKS), 0);
        assert_eq!(decimals((0.0, 1.0), Y_TICKS), 1);
        assert_eq!(tick_label(-0.0001, 2), "0.00");
        assert_eq!(tick_label(2.5, 1), "2.5");
    }
}
