//! Summaries of repeated measurements.

use std::time::Duration;

/// Sorted samples in milliseconds.
pub struct Samples(Vec<f64>);

impl Samples {
    pub fn new(durations: impl IntoIterator<Item = Duration>) -> Self {
        Self::from_millis(durations.into_iter().map(|d| d.as_secs_f64() * 1000.0))
    }

    pub fn from_millis(values: impl IntoIterator<Item = f64>) -> Self {
        let mut values: Vec<f64> = values.into_iter().collect();
        values.sort_by(f64::total_cmp);
        Self(values)
    }

    /// The values, in milliseconds, sorted.
    pub fn values(&self) -> &[f64] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The nearest-rank percentile (`q` in 0..=1).
    pub fn percentile(&self, q: f64) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        let rank = (q * self.0.len() as f64).ceil().max(1.0) as usize;
        self.0[rank.min(self.0.len()) - 1]
    }

    pub fn median(&self) -> f64 {
        self.percentile(0.5)
    }

    pub fn mean(&self) -> f64 {
        if self.0.is_empty() {
            return f64::NAN;
        }
        self.0.iter().sum::<f64>() / self.0.len() as f64
    }

    pub fn min(&self) -> f64 {
        self.0.first().copied().unwrap_or(f64::NAN)
    }

    pub fn max(&self) -> f64 {
        self.0.last().copied().unwrap_or(f64::NAN)
    }

    /// `median (min–max)`.
    pub fn summary(&self) -> String {
        format!("{} ({}–{})", ms(self.median()), ms(self.min()), ms(self.max()))
    }
}

/// Milliseconds with a precision that suits their size.
pub fn ms(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}
