//! Charts as inline SVG: stacked columns, horizontal bars and heat maps,
//! drawn in Rust so the report needs no script or network to show them.
//! Every drawn mark has the class `mark` and a `<title>` with its value.

use std::fmt::Write;

/// The series colours, in order.
const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// The colour of series `i`.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// `s` with `&`, `<`, `>`, `"` and `'` escaped for HTML and SVG text.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A number with thousands separators and `decimals` decimals.
pub fn grouped(x: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, x.abs());
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), ""), |(a, b)| (a, b));
    let mut out = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if x < 0.0 && x.abs() >= 0.5 * 10f64.powi(-(decimals as i32)) {
        out.insert(0, '-');
    }
    out
}

/// A round upper bound for an axis over values up to `max`.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let step = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * step >= max {
            return m * step;
        }
    }
    10.0 * step
}

/// Columns of stacked series over categories (months): `series` are
/// (name, one value per category). Values below zero are drawn as zero.
pub fn stacked_columns(categories: &[String], series: &[(String, Vec<f64>)], unit: &str) -> String {
    let (w, h, left, bottom, top) = (760.0, 340.0, 70.0, 90.0, 30.0);
    let totals: Vec<f64> = (0..categories.len())
        .map(|i| series.iter().map(|s| s.1[i].max(0.0)).sum())
        .collect();
    let max = nice_max(totals.iter().copied().fold(0.0, f64::max));
    let plot_h = h - bottom - top;
    let slot = (w - left - 10.0) / categories.len().max(1) as f64;
    let mut svg = open(w, h + 24.0 * series.len().div_ceil(LEGEND_ROW) as f64);
    axis(&mut svg, left, top, plot_h, w, max, unit);
    for (i, cat) in categories.iter().enumerate() {
        let x = left + slot * i as f64 + slot * 0.15;
        let mut y = top + plot_h;
        for (k, (name, values)) in series.iter().enumerate() {
            let v = values[i].max(0.0);
            if v <= 0.0 {
                continue;
            }
            let bar = v / max * plot_h;
            y -= bar;
            let _ = write!(
                svg,
                r#"<rect class="mark" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bar:.1}" fill="{}"><title>{} {}: {} {}</title></rect>"#,
                slot * 0.7,
                colour(k),
                escape(cat),
                escape(name),
                grouped(v, 0),
                escape(unit)
            );
        }
        if categories.len() <= 16 || i % 2 == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" transform="rotate(-40 {:.1} {:.1})">{}</text>"#,
                x + slot * 0.35,
                top + plot_h + 14.0,
                x + slot * 0.35,
                top + plot_h + 14.0,
                escape(cat)
            );
        }
    }
    legend(&mut svg, series.iter().map(|s| s.0.as_str()), h - 24.0);
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars: one row per label, one bar per series (side by side).
pub fn horizontal_bars(labels: &[String], series: &[(String, Vec<f64>)], unit: &str) -> String {
    let row_h = 14.0 * series.len() as f64 + 10.0;
    let widest = labels
        .iter()
        .map(|l| text_width(l, 12.0))
        .fold(0.0, f64::max);
    let (w, left, top) = (760.0, (widest + 16.0).max(80.0), 10.0);
    let h = top + row_h * labels.len() as f64 + 10.0;
    let max = nice_max(
        series
            .iter()
            .flat_map(|s| s.1.iter().copied())
            .fold(0.0, f64::max),
    );
    let plot_w = w - left - 90.0;
    let mut svg = open(w, h + 24.0 * series.len().div_ceil(LEGEND_ROW) as f64);
    for (i, label) in labels.iter().enumerate() {
        let y0 = top + row_h * i as f64;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"#,
            left - 8.0,
            y0 + row_h / 2.0,
            escape(label)
        );
        for (k, (name, values)) in series.iter().enumerate() {
            let v = values[i].max(0.0);
            let bw = v / max * plot_w;
            let y = y0 + 4.0 + 14.0 * k as f64;
            let _ = write!(
                svg,
                r#"<rect class="mark" x="{left:.1}" y="{y:.1}" width="{:.1}" height="12" fill="{}"><title>{} {}: {} {}</title></rect><text x="{:.1}" y="{:.1}" font-size="11">{}</text>"#,
                bw.max(1.0),
                colour(k),
                escape(label),
                escape(name),
                grouped(v, 0),
                escape(unit),
                left + bw.max(1.0) + 4.0,
                y + 10.0,
                grouped(v, 0)
            );
        }
    }
    legend(&mut svg, series.iter().map(|s| s.0.as_str()), h);
    svg.push_str("</svg>");
    svg
}

/// A heat map: `values[row][column]` in 0..=`max` (None: no cell), each
/// cell labelled with `label(value)`.
pub fn heatmap(
    rows: &[String],
    columns: &[String],
    values: &[Vec<Option<f64>>],
    max: f64,
    label: impl Fn(f64) -> String,
) -> String {
    let widest = rows.iter().map(|r| text_width(r, 11.0)).fold(0.0, f64::max);
    let tallest = columns
        .iter()
        .map(|c| text_width(c, 11.0))
        .fold(0.0, f64::max);
    let (cell_w, cell_h) = (52.0, 24.0);
    let left = widest + 16.0;
    // Column labels are turned 40° when they are wider than a cell.
    let turned = tallest > cell_w - 4.0;
    let top = if turned { tallest * 0.65 + 20.0 } else { 30.0 };
    let w = left + cell_w * columns.len() as f64 + if turned { tallest * 0.8 } else { 10.0 };
    let h = top + cell_h * rows.len() as f64 + 10.0;
    let mut svg = open(w.max(300.0), h);
    for (j, c) in columns.iter().enumerate() {
        let (x, y) = (left + cell_w * (j as f64 + 0.5), top - 8.0);
        if turned {
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{y:.1}" font-size="11" text-anchor="start" transform="rotate(-40 {x:.1} {y:.1})">{}</text>"#,
                escape(c)
            );
        } else {
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{y:.1}" font-size="11" text-anchor="middle">{}</text>"#,
                escape(c)
            );
        }
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + cell_h * i as f64;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"#,
            left - 6.0,
            y + cell_h * 0.65,
            escape(r)
        );
        for (j, v) in values[i].iter().enumerate() {
            let Some(v) = v else { continue };
            let share = if max > 0.0 {
                (v / max).clamp(0.0, 1.0)
            } else {
                0.0
            };
            // From pale to deep blue.
            let (r0, g0, b0) = (240.0, 245.0, 255.0);
            let (r1, g1, b1) = (33.0, 102.0, 172.0);
            let mix = |a: f64, b: f64| (a + (b - a) * share).round() as u8;
            let fill = format!("rgb({},{},{})", mix(r0, r1), mix(g0, g1), mix(b0, b1));
            let ink = if share > 0.55 { "#fff" } else { "#222" };
            let x = left + cell_w * j as f64;
            let _ = write!(
                svg,
                r#"<rect class="mark" x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{fill}"><title>{} × {}: {}</title></rect><text x="{:.1}" y="{:.1}" font-size="10" text-anchor="middle" fill="{ink}">{}</text>"#,
                cell_w - 2.0,
                cell_h - 2.0,
                escape(r),
                escape(&columns[j]),
                escape(&label(*v)),
                x + cell_w / 2.0 - 1.0,
                y + cell_h * 0.62,
                escape(&label(*v))
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// About how wide `text` is at `size` px: CJK characters a full em, others
/// about 0.6 em.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars()
        .map(|c| if c.is_ascii() { 0.6 } else { 1.0 })
        .sum::<f64>()
        * size
}

fn open(w: f64, h: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w:.0} {h:.0}" width="{w:.0}" height="{h:.0}" role="img">"#
    )
}

fn axis(svg: &mut String, left: f64, top: f64, plot_h: f64, w: f64, max: f64, unit: &str) {
    let decimals = if (max / 4.0).fract() == 0.0 { 0 } else { 1 };
    for k in 0..=4 {
        let v = max * k as f64 / 4.0;
        let y = top + plot_h - plot_h * k as f64 / 4.0;
        let _ = write!(
            svg,
            r##"<line x1="{left:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            w - 10.0,
            left - 6.0,
            y + 4.0,
            grouped(v, decimals)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="4" y="{:.1}" font-size="11">{}</text>"#,
        top - 16.0,
        escape(unit)
    );
}

/// Legend entries per row.
const LEGEND_ROW: usize = 4;

fn legend<'a>(svg: &mut String, names: impl Iterator<Item = &'a str>, y0: f64) {
    for (k, name) in names.enumerate() {
        let x = 70.0 + 170.0 * (k % LEGEND_ROW) as f64;
        let y = y0 + 8.0 + 24.0 * (k / LEGEND_ROW) as f64;
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{y:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}" font-size="12">{}</text>"#,
            colour(k),
            x + 16.0,
            y + 10.0,
            escape(name)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_text_escaped() {
        assert_eq!(grouped(1234567.891, 2), "1,234,567.89");
        assert_eq!(grouped(-1000.0, 0), "-1,000");
        assert_eq!(grouped(999.0, 0), "999");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn charts_draw_one_mark_per_value() {
        let cats = vec!["2026-01".to_string(), "2026-02".to_string()];
        let svg = stacked_columns(
            &cats,
            &[
                ("淘宝".into(), vec![1.0, 2.0]),
                ("京东".into(), vec![0.0, 3.0]),
            ],
            "元",
        );
        assert_eq!(
            svg.matches("class=\"mark\"").count(),
            3,
            "a zero draws nothing"
        );
        let bars = horizontal_bars(&cats, &[("a".into(), vec![5.0, 0.0])], "元");
        assert_eq!(bars.matches("class=\"mark\"").count(), 2);
        let heat = heatmap(
            &cats,
            &cats,
            &[vec![Some(1.0), None], vec![Some(0.5), Some(0.0)]],
            1.0,
            |v| format!("{v}"),
        );
        assert_eq!(heat.matches("class=\"mark\"").count(), 3);
        assert!(nice_max(73.0) == 100.0 && nice_max(0.0) == 1.0 && nice_max(201.0) == 250.0);
    }
}
