//! A dependency-free SVG line chart of the training metrics (metrics.jsonl → curves.svg).

use std::fmt::Write;

/// One named series of (x, y) points.
pub struct Series {
    /// Legend label.
    pub name: String,
    /// Points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Stroke colour (CSS).
    pub color: &'static str,
}

/// One chart panel.
pub struct Panel {
    /// Title above the panel.
    pub title: String,
    /// Its series.
    pub series: Vec<Series>,
}

const W: f64 = 560.0;
const H: f64 = 300.0;
const PAD: f64 = 50.0;

fn nice(v: f64) -> String {
    if v.abs() >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// Renders panels side by side as one SVG document.
pub fn render(panels: &[Panel]) -> String {
    let total_w = W * panels.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total_w}" height="{H}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (pi, p) in panels.iter().enumerate() {
        let ox = pi as f64 * W;
        let pts = p.series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in pts {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 == x0 {
            x1 = x0 + 1.0;
        }
        if y1 == y0 {
            y1 = y0 + 1.0;
        }
        let sx = |x: f64| ox + PAD + (x - x0) / (x1 - x0) * (W - 1.5 * PAD);
        let sy = |y: f64| H - PAD + (y0 - y) / (y1 - y0) * (H - 1.8 * PAD);
        let _ = writeln!(s, r#"<text x="{}" y="18" font-size="13" font-weight="bold">{}</text>"#, ox + PAD, p.title);
        let _ = writeln!(
            s,
            r##"<path d="M{a} {b} L{a} {c} L{d} {c}" stroke="#444" fill="none"/>"##,
            a = ox + PAD,
            b = 0.8 * PAD,
            c = H - PAD,
            d = ox + W - 0.5 * PAD
        );
        for k in 0..=4 {
            let y = y0 + (y1 - y0) * k as f64 / 4.0;
            let x = x0 + (x1 - x0) * k as f64 / 4.0;
            let _ =
                writeln!(s, r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#, ox + PAD - 4.0, sy(y) + 4.0, nice(y));
            let _ =
                writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#, sx(x), H - PAD + 15.0, nice(x));
        }
        let _ = writeln!(s, r#"<text x="{}" y="{}" text-anchor="middle">step</text>"#, ox + W / 2.0, H - 8.0);
        for (si, series) in p.series.iter().enumerate() {
            let d: Vec<String> = series
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            if !d.is_empty() {
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" stroke="{}" stroke-width="1.5" fill="none"/>"#,
                    d.join(" "),
                    series.color
                );
            }
            let ly = 0.8 * PAD + 14.0 * si as f64 + 6.0;
            let _ = writeln!(
                s,
                r#"<line x1="{a}" y1="{ly}" x2="{b}" y2="{ly}" stroke="{c}" stroke-width="2"/><text x="{t}" y="{ty}">{n}</text>"#,
                a = ox + W - 170.0,
                b = ox + W - 150.0,
                c = series.color,
                t = ox + W - 145.0,
                ty = ly + 4.0,
                n = series.name
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_valid_looking_svg() {
        let p = Panel {
            title: "loss".into(),
            series: vec![Series { name: "a".into(), points: vec![(0.0, 1.0), (1.0, 0.5)], color: "red" }],
        };
        let svg = render(&[p]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>") && svg.contains("polyline"));
    }
}
