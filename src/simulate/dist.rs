//! Synthetic latency: a distribution turned into per-bucket probabilities of
//! the telemetry histogram, sampled per check as a multinomial (one binomial
//! draw per bucket, most likely bucket first, stopping once every request is
//! placed), so a check costs ~30 draws whatever the traffic.
use crate::config::parse_duration;
use crate::telemetry::histogram::{HistogramCounts, BOUNDS_NS, BUCKETS};
use rand::Rng;
use rand_distr::{Binomial, Distribution};

/// `lognormal:20ms:0.5` (median, sigma) or `const:20ms`.
#[derive(Debug, Clone, PartialEq)]
pub enum Latency {
    LogNormal { median_s: f64, sigma: f64 },
    Const { secs: f64 },
}

impl std::str::FromStr for Latency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let dur = |p: &str| {
            parse_duration(p)
                .map(|d| d.as_secs_f64())
                .map_err(|e| format!("latency {s:?}: {e}"))
        };
        match parts.as_slice() {
            ["const", d] => Ok(Latency::Const { secs: dur(d)? }),
            ["lognormal", m, sigma] => {
                let sigma: f64 = sigma
                    .parse()
                    .ok()
                    .filter(|x: &f64| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| format!("latency {s:?}: sigma must be a number >= 0"))?;
                let median_s = dur(m)?;
                if median_s <= 0.0 {
                    return Err(format!("latency {s:?}: median must be above 0"));
                }
                Ok(Latency::LogNormal { median_s, sigma })
            }
            _ => Err(format!(
                "latency {s:?}: expected lognormal:MEDIAN:SIGMA (e.g. lognormal:20ms:0.5) or const:DURATION"
            )),
        }
    }
}

impl Latency {
    /// P(latency ≤ x seconds).
    fn cdf(&self, x: f64) -> f64 {
        match *self {
            Latency::Const { secs } => f64::from(u8::from(x >= secs)),
            Latency::LogNormal { median_s, sigma } => {
                if x <= 0.0 {
                    0.0
                } else if sigma == 0.0 {
                    f64::from(u8::from(x >= median_s))
                } else {
                    normal_cdf((x / median_s).ln() / sigma)
                }
            }
        }
    }
}

/// Standard normal CDF via erfc (Numerical Recipes' Chebyshev fit, relative
/// error < 1.2e-7 everywhere, so the tails stay accurate).
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.26551223
            + t * (1.00002368
                + t * (0.37409196
                    + t * (0.09678418
                        + t * (-0.18628806
                            + t * (0.27886807
                                + t * (-1.13520398
                                    + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The histogram buckets a distribution reaches, most likely first, each with
/// its probability conditional on not being in an earlier one.
#[derive(Debug, Clone)]
pub struct BucketSampler {
    order: Vec<(usize, f64, u64)>,
}

impl BucketSampler {
    pub fn new(d: &Latency) -> Self {
        let bounds = &*BOUNDS_NS;
        let mut probs: Vec<(usize, f64, u64)> = Vec::new();
        let mut prev_cdf = 0.0;
        for i in 0..BUCKETS {
            let (lo, hi) = (
                if i == 0 { 0 } else { bounds[i - 1] },
                bounds.get(i).copied(),
            );
            let cdf = hi.map_or(1.0, |h| d.cdf(h as f64 / 1e9));
            let p = (cdf - prev_cdf).max(0.0);
            prev_cdf = cdf;
            if p > 1e-15 {
                let mid = hi.map_or(lo, |h| (lo + h) / 2);
                probs.push((i, p, mid));
            }
        }
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut rest: f64 = probs.iter().map(|p| p.1).sum();
        let mut order = Vec::with_capacity(probs.len());
        for (i, p, mid) in probs {
            let cond = if rest > 0.0 { (p / rest).min(1.0) } else { 1.0 };
            rest -= p;
            order.push((i, cond, mid));
        }
        if let Some(last) = order.last_mut() {
            last.1 = 1.0;
        }
        BucketSampler { order }
    }

    /// Adds `n` samples into `h`.
    pub fn sample<R: Rng>(&self, n: u64, rng: &mut R, h: &mut HistogramCounts) {
        let mut rest = n;
        for &(i, cond, mid) in &self.order {
            if rest == 0 {
                break;
            }
            let k = binomial(rest, cond, rng);
            h.buckets[i] += k;
            h.sum_ns += k * mid;
            rest -= k;
        }
    }
}

/// Binomial(n, p): direct Bernoulli trials for small n, rand_distr otherwise.
pub fn binomial<R: Rng>(n: u64, p: f64, rng: &mut R) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if n <= 12 {
        return (0..n).filter(|_| rng.random::<f64>() < p).count() as u64;
    }
    Binomial::new(n, p).map_or(0, |b| b.sample(rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(
            "const:20ms".parse::<Latency>(),
            Ok(Latency::Const { secs: 0.02 })
        );
        assert!(matches!(
            "lognormal:20ms:0.5".parse::<Latency>(),
            Ok(Latency::LogNormal { .. })
        ));
        assert!("lognormal:20ms".parse::<Latency>().is_err());
        assert!("normal:1s:1".parse::<Latency>().is_err());
        assert!("lognormal:20ms:-1".parse::<Latency>().is_err());
    }

    #[test]
    fn sampled_quantiles_match_the_distribution() {
        let s = BucketSampler::new(&"lognormal:20ms:0.5".parse().unwrap());
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut h = HistogramCounts::default();
        for _ in 0..1000 {
            s.sample(100, &mut rng, &mut h);
        }
        assert_eq!(h.count(), 100_000);
        let p50 = h.quantile(0.5).unwrap().as_secs_f64();
        let p99 = h.quantile(0.99).unwrap().as_secs_f64();
        // true p50 20ms, p99 20ms·e^(2.326·0.5) = 63.9ms; buckets are 9% wide
        assert!((p50 / 0.020 - 1.0).abs() < 0.1, "p50 {p50}");
        assert!((p99 / 0.0639 - 1.0).abs() < 0.1, "p99 {p99}");
        assert!((normal_cdf(2.326348) - 0.99).abs() < 1e-6);
    }
}
