//! Statistics over interleaved measurement blocks.
//!
//! A run alternates blocks without and with governor, starting and ending without it:
//! `off₀ on₀ off₁ on₁ … offₙ`. Each "with" block is compared with the mean of the two
//! "without" blocks that bracket it, so a slow drift of the machine's speed (other load on a
//! shared host) cancels out instead of showing up as overhead. The overhead reported is the
//! median over the "with" blocks, with its spread.

use std::fmt;

/// Median of `xs` (the mean of the two middle values for an even count); `None` if empty
/// or if any value is NaN.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() || xs.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// Smallest value; `None` if empty.
pub fn min(xs: &[f64]) -> Option<f64> {
    xs.iter().copied().reduce(f64::min)
}

/// Why [`bracketed_overheads`] cannot compare the blocks it was given.
#[derive(Debug, PartialEq)]
pub enum StatsError {
    /// There must be exactly one more "without" block than "with" blocks.
    Shape { without: usize, with: usize },
    /// A block's cost is not a positive number.
    NotPositive { index: usize, value: f64 },
}

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatsError::Shape { without, with } => write!(
                f,
                "{without} blocks without governor and {with} with it: expected one more \
                 without than with (off on off … off)"
            ),
            StatsError::NotPositive { index, value } => {
                write!(
                    f,
                    "block {index} measured {value} ns/op, not a positive cost"
                )
            }
        }
    }
}

impl std::error::Error for StatsError {}

/// The relative overhead (0.01 = 1%) of each "with" block `on[i]` over the mean of the
/// "without" blocks bracketing it, `off[i]` and `off[i + 1]`.
pub fn bracketed_overheads(off: &[f64], on: &[f64]) -> Result<Vec<f64>, StatsError> {
    if on.is_empty() || off.len() != on.len() + 1 {
        return Err(StatsError::Shape {
            without: off.len(),
            with: on.len(),
        });
    }
    let bad = off
        .iter()
        .chain(on)
        .enumerate()
        .find(|(_, x)| !(x.is_finite() && **x > 0.0));
    if let Some((index, value)) = bad {
        return Err(StatsError::NotPositive {
            index,
            value: *value,
        });
    }
    Ok(on
        .iter()
        .enumerate()
        .map(|(i, w)| w / ((off[i] + off[i + 1]) / 2.0) - 1.0)
        .collect())
}

/// A median and the range around it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of `xs`; `None` if empty or NaN.
    pub fn of(xs: &[f64]) -> Option<Spread> {
        Some(Spread {
            median: median(xs)?,
            min: min(xs)?,
            max: xs.iter().copied().reduce(f64::max)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty_nan() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[7.0]), Some(7.0));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn bracketing_cancels_linear_drift() {
        // The machine slows down by 10 ns per block; governor adds nothing.
        let off = [100.0, 120.0, 140.0];
        let on = [110.0, 130.0];
        let o = bracketed_overheads(&off, &on).unwrap();
        assert!(o.iter().all(|x| x.abs() < 1e-12), "{o:?}");
    }

    #[test]
    fn bracketing_measures_overhead() {
        let off = [100.0, 100.0, 200.0];
        let on = [105.0, 153.0];
        let o = bracketed_overheads(&off, &on).unwrap();
        assert!((o[0] - 0.05).abs() < 1e-12);
        assert!((o[1] - 0.02).abs() < 1e-12);
        let s = Spread::of(&o).unwrap();
        assert!((s.median - 0.035).abs() < 1e-12);
        assert_eq!((s.min, s.max), (o[1], o[0]));
    }

    #[test]
    fn bracketing_rejects_bad_input() {
        assert_eq!(
            bracketed_overheads(&[1.0, 1.0], &[1.0, 1.0]),
            Err(StatsError::Shape {
                without: 2,
                with: 2
            })
        );
        assert_eq!(
            bracketed_overheads(&[1.0], &[]),
            Err(StatsError::Shape {
                without: 1,
                with: 0
            })
        );
        assert_eq!(
            bracketed_overheads(&[1.0, 0.0], &[1.0]),
            Err(StatsError::NotPositive {
                index: 1,
                value: 0.0
            })
        );
        assert!(bracketed_overheads(&[1.0, 1.0], &[f64::INFINITY]).is_err());
    }
}
