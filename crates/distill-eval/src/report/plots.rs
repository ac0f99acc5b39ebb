//! SVG plots drawn with plotters' SVG backend.
//!
//! Text is emitted as SVG `<text>` with the generic `sans-serif` family, so any viewer
//! renders it with its default font; no font files are needed at build or run time.
//! plotters can only estimate text widths without font files, so layouts leave slack.

use super::{plan, ModelReport, PlotKind, PlotSpec, ReportError, ReportInput};
use crate::metrics::ModelEvaluation;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::error::Error;

pub(super) type DrawResult<T = ()> = Result<T, Box<dyn Error>>;
pub(super) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

pub(super) const FONT: &str = "sans-serif";
const LINE_SIZE: (u32, u32) = (720, 420);
pub(super) const GREY: RGBColor = RGBColor(120, 120, 120);

/// Fixed colour per role, so a model looks the same in every plot.
pub(super) fn role_color(role: &str) -> RGBColor {
    match role {
        "teacher" => RGBColor(31, 119, 180),
        "student" => RGBColor(230, 110, 0),
        _ => RGBColor(44, 160, 44),
    }
}

/// Renders every plot of the report as `(file name, SVG text)`, in display order.
///
/// The file names are the ones [`super::render_markdown`] links to.
pub fn render_plots(input: &ReportInput) -> Result<Vec<(String, String)>, ReportError> {
    let models = input.models();
    plan(input)
        .into_iter()
        .map(|spec| {
            let svg = match spec.kind {
                PlotKind::Loss(i) => match models.get(i) {
                    Some(&(role, m)) => loss(&spec, role, m),
                    None => Err("model index out of range".into()),
                },
                PlotKind::ValAccuracy => val_accuracy(&spec, &models),
                PlotKind::Reliability => reliability(&spec, &models),
                PlotKind::Confusion => confusion(&spec, &input.student.evaluation),
            }
            .map_err(|e| ReportError::Plot { plot: spec.file(), message: e.to_string() })?;
            Ok((spec.file(), svg))
        })
        .collect()
}

/// Draws into a white SVG canvas and returns the SVG text.
pub(super) fn svg(size: (u32, u32), draw: impl FnOnce(&Area) -> DrawResult) -> DrawResult<String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(buf)
}

/// Axis range covering `values` with a little padding; never empty.
fn padded(values: impl Iterator<Item = f64>, clamp: Option<(f64, f64)>) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let pad = if hi > lo { (hi - lo) * 0.08 } else { lo.abs().max(1.0) * 0.1 };
    let (mut lo, mut hi) = (lo - pad, hi + pad);
    if let Some((min, max)) = clamp {
        lo = lo.max(min);
        hi = hi.min(max);
    }
    (lo, hi)
}

/// Enough decimals that tick labels over `span` stay distinct.
fn decimals(span: f64) -> usize {
    if span <= 0.0 || !span.is_finite() {
        return 2;
    }
    ((-(span / 5.0).log10()).ceil().max(0.0) as usize).min(6)
}

/// Epoch axis as integers, widened so a single epoch still has a range.
fn epoch_range(models: &[(&str, &ModelReport)]) -> (i64, i64) {
    let epochs = models.iter().flat_map(|(_, m)| m.history.iter().map(|e| e.epoch as i64));
    let (lo, hi) = epochs.fold((i64::MAX, i64::MIN), |(a, b), e| (a.min(e), b.max(e)));
    if lo > hi {
        (0, 1)
    } else if lo == hi {
        (lo - 1, hi + 1)
    } else {
        (lo, hi)
    }
}

/// One line series: legend label, colour, dashed or not, points.
struct Series {
    label: String,
    color: RGBColor,
    dashed: bool,
    points: Vec<(i64, f64)>,
}

/// Line chart over epochs, with markers so one-epoch series stay visible.
fn epoch_chart(spec: &PlotSpec, y_desc: &str, x: (i64, i64), y: (f64, f64), series: &[Series], legend_at: SeriesLabelPosition) -> DrawResult<String> {
    svg(LINE_SIZE, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&spec.title, (FONT, 22))
            .margin(16)
            .margin_top(24)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d(x.0..x.1, y.0..y.1)?;
        let dec = decimals(y.1 - y.0);
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc(y_desc)
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .light_line_style(RGBColor(238, 238, 238))
            .x_labels(10)
            .y_labels(8)
            .y_label_formatter(&|v| format!("{v:.dec$}"))
            .draw()?;
        for s in series {
            let style = s.color.stroke_width(2);
            let anno = if s.dashed {
                chart.draw_series(DashedLineSeries::new(s.points.clone(), 8, 5, style))?
            } else {
                chart.draw_series(LineSeries::new(s.points.clone(), style))?
            };
            let (color, dashed) = (s.color, s.dashed);
            anno.label(s.label.clone()).legend(move |(x, y)| legend_line(x, y, color, dashed));
            let marker = s.color.filled();
            chart.draw_series(s.points.iter().map(|&p| Circle::new(p, 3, marker)))?;
        }
        chart.configure_series_labels().position(legend_at).label_font((FONT, 15)).background_style(WHITE.mix(0.9)).border_style(GREY).draw()?;
        Ok(())
    })
}

fn legend_line<DB: DrawingBackend>(x: i32, y: i32, color: RGBColor, dashed: bool) -> DynElement<'static, DB, (i32, i32)> {
    let style = color.stroke_width(2);
    if dashed {
        DashedPathElement::new(vec![(x, y), (x + 24, y)], 6, 4, style).into_dyn()
    } else {
        PathElement::new(vec![(x, y), (x + 24, y)], style).into_dyn()
    }
}

/// Training loss (solid) and validation loss (dashed) of one model.
fn loss(spec: &PlotSpec, role: &str, m: &ModelReport) -> DrawResult<String> {
    let color = role_color(role);
    let train: Vec<(i64, f64)> = m.history.iter().filter(|e| e.train_loss.is_finite()).map(|e| (e.epoch as i64, e.train_loss)).collect();
    let val: Vec<(i64, f64)> = m.history.iter().filter_map(|e| Some((e.epoch as i64, e.val_loss.filter(|v| v.is_finite())?))).collect();
    let y = padded(train.iter().chain(&val).map(|p| p.1), None);
    let mut series = vec![Series { label: "train".into(), color, dashed: false, points: train }];
    if !val.is_empty() {
        series.push(Series { label: "validation".into(), color: darker(color), dashed: true, points: val });
    }
    let x = epoch_range(&[(role, m)]);
    epoch_chart(spec, "loss", x, y, &series, SeriesLabelPosition::UpperRight)
}

fn darker(c: RGBColor) -> RGBColor {
    RGBColor(c.0 / 2, c.1 / 2, c.2 / 2)
}

/// Validation accuracy of every model that recorded one.
fn val_accuracy(spec: &PlotSpec, models: &[(&str, &ModelReport)]) -> DrawResult<String> {
    let series: Vec<Series> = models
        .iter()
        .map(|&(role, m)| Series {
            label: role.to_string(),
            color: role_color(role),
            dashed: false,
            points: m.history.iter().filter_map(|e| Some((e.epoch as i64, e.val_accuracy.filter(|v| v.is_finite())?))).collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect();
    let y = padded(series.iter().flat_map(|s| s.points.iter().map(|p| p.1)), Some((0.0, 1.0)));
    let x = epoch_range(models);
    epoch_chart(spec, "validation accuracy", x, y, &series, SeriesLabelPosition::LowerRight)
}

/// Accuracy against confidence per non-empty bin, every model overlaid, with the
/// diagonal of perfect calibration.
fn reliability(spec: &PlotSpec, models: &[(&str, &ModelReport)]) -> DrawResult<String> {
    svg((600, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&spec.title, (FONT, 22))
            .margin(16)
            .margin_top(24)
            .x_label_area_size(48)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.02..1.02, -0.02..1.04)?;
        chart
            .configure_mesh()
            .x_desc("confidence (top-class probability)")
            .y_desc("accuracy")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .light_line_style(RGBColor(238, 238, 238))
            .x_label_formatter(&|v| format!("{v:.1}"))
            .y_label_formatter(&|v| format!("{v:.1}"))
            .draw()?;
        chart
            .draw_series(DashedLineSeries::new(vec![(0.0, 0.0), (1.0, 1.0)], 6, 4, GREY.stroke_width(1)))?
            .label("perfect calibration")
            .legend(|(x, y)| legend_line(x, y, GREY, true));
        for &(role, m) in models {
            let color = role_color(role);
            let points: Vec<(f64, f64)> = m.evaluation.reliability.iter().filter(|b| b.count > 0).map(|b| (b.mean_confidence, b.accuracy)).collect();
            chart
                .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
                .label(format!("{role} (ECE {:.3})", m.evaluation.ece))
                .legend(move |(x, y)| legend_line(x, y, color, false));
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.9))
            .border_style(GREY)
            .draw()?;
        Ok(())
    })
}

/// At most this many characters of a class name on the heat map's axes.
const MAX_LABEL_CHARS: usize = 20;

/// Shortens long names in the middle: class names often share a prefix or a suffix,
/// so keeping both ends keeps them distinguishable.
fn short(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    if chars.len() <= MAX_LABEL_CHARS {
        return name.to_string();
    }
    let head = (MAX_LABEL_CHARS - 1) / 2;
    let tail = MAX_LABEL_CHARS - 1 - head;
    let mut out: String = chars[..head].iter().collect();
    out.push('…');
    out.extend(&chars[chars.len() - tail..]);
    out
}

/// Heat map of counts, drawn cell by cell (rows = true class, columns = predicted).
fn confusion(spec: &PlotSpec, ev: &ModelEvaluation) -> DrawResult<String> {
    let k = ev.confusion.num_classes().max(1);
    let labels: Vec<String> = (0..k).map(|i| ev.classes.get(i).map_or_else(|| i.to_string(), |s| short(s))).collect();
    // Cells shrink as classes grow, but counts are only printed where they fit.
    let cell = (560 / k as i32).clamp(6, 72);
    let label_font = (cell as f64 * 0.4).clamp(10.0, 15.0);
    let count_font = (cell as f64 * 0.36).clamp(8.0, 16.0);
    let show_counts = cell >= 20;
    let char_w = label_font * 0.58; // rough sans-serif advance width
    let label_w = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64 * char_w;
    let rotate_cols = label_w > cell as f64 * 0.95;

    let grid = cell * k as i32;
    let left = 40 + label_w.ceil() as i32 + 10;
    let top = 56;
    let col_label_h = if rotate_cols { label_w.ceil() as i32 + 12 } else { 24 };
    let width = (left + grid + 30).max(360);
    let height = top + grid + col_label_h + 40;

    svg((width as u32, height as u32), |root| {
        fn text(s: &str, size: f64, pos: (i32, i32), anchor: Pos, color: &'static RGBColor) -> Text<'static, (i32, i32), String> {
            let style = TextStyle::from((FONT, size).into_font()).color(color).pos(anchor);
            Text::new(s.to_string(), pos, style)
        }
        let center = Pos::new(HPos::Center, VPos::Center);
        root.draw(&text(&spec.title, 20.0, (width / 2, 22), center, &BLACK))?;

        let max = ev.confusion.max_count().max(1) as f64;
        for (i, row) in ev.confusion.counts.iter().enumerate() {
            for (j, &c) in row.iter().enumerate() {
                let x0 = left + j as i32 * cell;
                let y0 = top + i as i32 * cell;
                let t = c as f64 / max;
                // White to deep blue; text flips to white on dark cells.
                let fill = RGBColor((247.0 - t * 239.0) as u8, (251.0 - t * 203.0) as u8, (255.0 - t * 148.0) as u8);
                root.draw(&Rectangle::new([(x0, y0), (x0 + cell, y0 + cell)], fill.filled()))?;
                // Grid lines would swamp tiny cells, so only larger cells get them.
                if cell >= 12 {
                    root.draw(&Rectangle::new([(x0, y0), (x0 + cell, y0 + cell)], RGBColor(210, 210, 210).stroke_width(1)))?;
                }
                if show_counts {
                    let ink: &'static RGBColor = if t > 0.55 { &WHITE } else { &BLACK };
                    let pos = (x0 + cell / 2, y0 + cell / 2);
                    root.draw(&text(&c.to_string(), count_font, pos, center, ink))?;
                }
            }
        }

        let right_mid = Pos::new(HPos::Right, VPos::Center);
        // With many classes the rows are thinner than the text: label every `step`-th.
        let step = ((label_font + 2.0) / cell as f64).ceil().max(1.0) as usize;
        for (i, l) in labels.iter().enumerate().step_by(step) {
            let y = top + i as i32 * cell + cell / 2;
            root.draw(&text(l, label_font, (left - 6, y), right_mid, &BLACK))?;
            let x = left + i as i32 * cell + cell / 2;
            if rotate_cols {
                // Rotated 270°: "right" anchoring makes the text hang below the grid.
                let style = TextStyle::from((FONT, label_font).into_font()).color(&BLACK).pos(right_mid).transform(FontTransform::Rotate270);
                root.draw(&Text::new(l.clone(), (x, top + grid + 6), style))?;
            } else {
                let top_mid = Pos::new(HPos::Center, VPos::Top);
                root.draw(&text(l, label_font, (x, top + grid + 6), top_mid, &BLACK))?;
            }
        }

        let axis = 16.0;
        let pred_y = top + grid + col_label_h + 14;
        root.draw(&text("predicted class", axis, (left + grid / 2, pred_y), center, &BLACK))?;
        let style = TextStyle::from((FONT, axis).into_font()).color(&BLACK).pos(center).transform(FontTransform::Rotate270);
        root.draw(&Text::new("true class", (16, top + grid / 2), style))?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_keep_both_ends() {
        assert_eq!(short("setosa"), "setosa");
        let s = short("very long class name number 11");
        assert_eq!(s.chars().count(), MAX_LABEL_CHARS);
        assert!(s.starts_with("very long") && s.ends_with("number 11"), "{s}");
    }

    #[test]
    fn axis_helpers_never_give_empty_ranges() {
        let (lo, hi) = padded(std::iter::empty(), None);
        assert!(lo < 0.0 && hi > 1.0);
        let (lo, hi) = padded([0.5, 0.5].into_iter(), Some((0.0, 1.0)));
        assert!(lo < 0.5 && hi > 0.5);
        assert!(decimals(0.05) >= 2 && decimals(f64::NAN) == 2);
    }
}
