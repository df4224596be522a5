//! The `--plot` SVG: submitted and included transactions per second (top; included both per
//! one-second bucket and per block, since blocks slower than a second make the buckets
//! alternate between zero and a multiple of the rate) and inclusion latency p50/p99 per second
//! (bottom), over the run.

use crate::{
    error::LoadgenError,
    tracker::{BlockRecord, SecondStats},
};
use plotters::prelude::*;
use std::path::Path;

/// Plot size in pixels.
const SIZE: (u32, u32) = (1000, 720);

/// Writes the plot of `per_second` and `blocks` to `path`; `title` heads it.
pub fn write_svg(
    path: &Path,
    title: &str,
    per_second: &[SecondStats],
    blocks: &[BlockRecord],
) -> Result<(), LoadgenError> {
    draw(path, title, per_second, blocks).map_err(|message| LoadgenError::Output {
        path: path.to_owned(),
        message,
    })
}

/// This run's transactions of each block divided by the time since the previous head, at the
/// block's arrival: the included rate without one-second bucketing.
pub fn per_block_rate(blocks: &[BlockRecord]) -> Vec<(f64, f64)> {
    blocks
        .windows(2)
        .filter(|pair| pair[1].observed_s > pair[0].observed_s)
        .map(|pair| {
            (
                pair[1].observed_s,
                pair[1].ours as f64 / (pair[1].observed_s - pair[0].observed_s),
            )
        })
        .collect()
}

fn draw(
    path: &Path,
    title: &str,
    per_second: &[SecondStats],
    blocks: &[BlockRecord],
) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let root = root
        .titled(title, ("sans-serif", 22))
        .map_err(|e| err(&e))?;
    let (top, bottom) = root.split_vertically(SIZE.1 / 2 - 20);

    // Each bucket [t, t+1) is drawn at its middle.
    let x_of = |s: &SecondStats| s.t as f64 + 0.5;
    let x_max = per_second.last().map_or(1.0, |s| s.t as f64 + 1.0);
    let block_rate = per_block_rate(blocks);
    let bucket_max = per_second
        .iter()
        .map(|s| s.submitted.max(s.included))
        .max()
        .unwrap_or(0) as f64;
    let tps_max = block_rate
        .iter()
        .map(|&(_, r)| r)
        .fold(bucket_max, f64::max)
        .max(1.0)
        * 1.1;

    let mut tps = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .caption("transactions per second", ("sans-serif", 16))
        .build_cartesian_2d(0f64..x_max, 0f64..tps_max)
        .map_err(|e| err(&e))?;
    tps.configure_mesh()
        .x_desc("seconds since start")
        .y_desc("tx/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    let submitted_color = RGBColor(120, 120, 120);
    tps.draw_series(LineSeries::new(
        per_second.iter().map(|s| (x_of(s), s.submitted as f64)),
        &submitted_color,
    ))
    .map_err(|e| err(&e))?
    .label("submitted")
    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], submitted_color));
    tps.draw_series(LineSeries::new(
        per_second.iter().map(|s| (x_of(s), s.included as f64)),
        BLUE.stroke_width(2),
    ))
    .map_err(|e| err(&e))?
    .label("included (1 s buckets)")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    let block_color = RGBColor(255, 140, 0);
    tps.draw_series(LineSeries::new(block_rate, block_color.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("included (per block / head interval)")
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], block_color.stroke_width(2))
        });
    tps.configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;

    let latency_max = per_second
        .iter()
        .filter_map(|s| s.p99_ms)
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.1;
    let mut latency = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .caption(
            "inclusion latency (submit to block head)",
            ("sans-serif", 16),
        )
        .build_cartesian_2d(0f64..x_max, 0f64..latency_max)
        .map_err(|e| err(&e))?;
    latency
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("ms")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(|e| err(&e))?;
    let series = |pick: fn(&SecondStats) -> Option<f64>| {
        per_second
            .iter()
            .filter_map(move |s| pick(s).map(|ms| (x_of(s), ms)))
            .collect::<Vec<_>>()
    };
    latency
        .draw_series(LineSeries::new(series(|s| s.p50_ms), GREEN.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("p50")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN.stroke_width(2)));
    latency
        .draw_series(LineSeries::new(series(|s| s.p99_ms), RED.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label("p99")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    latency
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_svg_with_both_panels() {
        let seconds: Vec<SecondStats> = (0..5)
            .map(|t| SecondStats {
                t,
                submitted: 100,
                included: if t == 0 { 0 } else { 100 },
                p50_ms: (t > 0).then_some(500.0),
                p99_ms: (t > 0).then_some(900.0),
                ..SecondStats::default()
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.svg");
        let blocks: Vec<BlockRecord> = (1..5)
            .map(|n| BlockRecord {
                number: n,
                observed_s: n as f64,
                timestamp: n,
                txs: 100,
                ours: 100,
                gas_used: 2_100_000,
                gas_limit: 30_000_000,
                fill: 0.07,
                base_fee_gwei: None,
            })
            .collect();
        write_svg(&path, "test run", &seconds, &blocks).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"));
        for text in [
            "test run",
            "included",
            "submitted",
            "p99",
            "inclusion latency",
        ] {
            assert!(svg.contains(text), "missing {text}");
        }
        assert!(svg.matches("<polyline").count() >= 5, "five line series");
        assert!(svg.contains("per block"));
    }

    #[test]
    fn per_block_rate_divides_by_the_head_interval() {
        let block = |observed_s: f64, ours: usize| BlockRecord {
            number: 0,
            observed_s,
            timestamp: 0,
            txs: ours,
            ours,
            gas_used: 0,
            gas_limit: 1,
            fill: 0.0,
            base_fee_gwei: None,
        };
        let rate = per_block_rate(&[
            block(1.0, 0),
            block(2.5, 300),
            block(2.5, 10),
            block(3.0, 100),
        ]);
        // The pair with equal arrival times is skipped rather than divided by zero.
        assert_eq!(rate, vec![(2.5, 200.0), (3.0, 200.0)]);
    }

    #[test]
    fn plots_an_empty_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.svg");
        write_svg(&path, "empty", &[], &[]).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("<svg"));
    }
}
