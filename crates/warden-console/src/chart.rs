//! Charts, drawn on the server as SVG by `plotters`.
//!
//! A chart is a few lines over a time range, without text: the page writes the title, the
//! range and the largest value beside it in HTML, so no font is needed on the server and
//! the SVG stays a few kilobytes. Colors come from a fixed palette chosen for contrast on
//! a white background.

use plotters::prelude::*;

/// One line: its points as (epoch seconds, value), oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Line {
    /// What it shows (the page's legend).
    pub label: String,
    /// The points.
    pub points: Vec<(i64, f64)>,
}

/// Colors, in the order lines take them (dark blue, red, green, amber, purple).
pub const PALETTE: [(u8, u8, u8); 5] = [
    (0x1f, 0x4e, 0x8c),
    (0xb3, 0x26, 0x1e),
    (0x2e, 0x7d, 0x32),
    (0x9a, 0x67, 0x00),
    (0x6a, 0x1b, 0x9a),
];

/// The largest value of any line (0 when there is none).
pub fn peak(lines: &[Line]) -> f64 {
    lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
}

/// The lines as an SVG document of `width` × `height` pixels, over `from..to` (epoch
/// seconds) and from 0 to the largest value, framed and with a dot on each datapoint.
/// Points outside the range or not finite are left out.
pub fn svg(lines: &[Line], from: i64, to: i64, width: u32, height: u32) -> String {
    draw(lines, from, to, (width, height), true)
}

/// A sparkline: the lines alone, no frame, background or dots, so that a page of a
/// thousand rows stays light for the browser.
pub fn sparkline(lines: &[Line], from: i64, to: i64, width: u32, height: u32) -> String {
    draw(lines, from, to, (width, height), false)
}

fn draw(lines: &[Line], from: i64, to: i64, (width, height): (u32, u32), full: bool) -> String {
    let mut out = String::new();
    let to = to.max(from + 1);
    let top = peak(lines).max(1.0) * 1.1;
    {
        let root = SVGBackend::with_string(&mut out, (width, height)).into_drawing_area();
        let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
            if full {
                root.fill(&WHITE)?;
                // A frame, so that an empty range still reads as a chart.
                root.draw(&Rectangle::new(
                    [(0, 0), (width as i32 - 1, height as i32 - 1)],
                    RGBColor(0xd0, 0xd0, 0xd0).stroke_width(1),
                ))?;
            }
            let mut chart = ChartBuilder::on(&root)
                .margin(3)
                .build_cartesian_2d(from..to, 0.0..top)?;
            for (i, line) in lines.iter().enumerate() {
                let (r, g, b) = PALETTE[i % PALETTE.len()];
                let color = RGBColor(r, g, b);
                let points: Vec<(i64, f64)> = line
                    .points
                    .iter()
                    .copied()
                    .filter(|(t, v)| (from..=to).contains(t) && v.is_finite())
                    .collect();
                chart.draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?;
                if full {
                    // Each datapoint as a dot too: a lone minute has no line to show it.
                    chart.draw_series(points.iter().map(|p| Circle::new(*p, 2, color.filled())))?;
                }
            }
            root.present()?;
            Ok(())
        })();
        // Drawing into a string fails only on a coordinate plotters cannot map, and every
        // point was filtered into range: an empty chart is the honest fallback.
        drop(drawn);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_an_svg_with_one_path_per_line_and_no_inline_style() {
        let lines = vec![
            Line {
                label: "Invocations".into(),
                points: vec![(0, 1.0), (60, 3.0), (120, 2.0)],
            },
            Line {
                label: "Errors".into(),
                points: vec![(0, 0.0), (60, 1.0), (120, f64::NAN), (9_999, 5.0)],
            },
        ];
        let s = svg(&lines, 0, 120, 300, 80);
        assert!(s.starts_with("<svg"), "{s}");
        assert!(s.trim_end().ends_with("</svg>"));
        assert_eq!(s.matches("<polyline").count(), 2, "{s}");
        // A strict Content-Security-Policy refuses inline styles.
        assert!(!s.contains("style="), "{s}");
        assert_eq!(peak(&lines), 5.0);
    }

    #[test]
    fn a_sparkline_is_only_its_lines() {
        let line = Line {
            label: String::new(),
            points: vec![(0, 1.0), (60, 2.0)],
        };
        let s = sparkline(std::slice::from_ref(&line), 0, 60, 120, 28);
        assert_eq!(s.matches("<polyline").count(), 1, "{s}");
        assert!(!s.contains("<rect") && !s.contains("<circle"), "{s}");
        assert!(s.len() < svg(&[line], 0, 60, 120, 28).len());
    }

    #[test]
    fn an_empty_or_degenerate_chart_is_still_a_document() {
        let s = svg(&[], 10, 10, 100, 40);
        assert!(s.starts_with("<svg"));
        assert_eq!(peak(&[]), 0.0);
    }
}
