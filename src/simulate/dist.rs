//! Synthetic latency and counts: a distribution turned into the probability
//! of each bucket of the telemetry histogram, and fast binomial draws.
use crate::config::parse_duration;
use crate::telemetry::histogram::{HistogramCounts, BOUNDS_NS, BUCKETS};
use rand::Rng;
use rand_distr::Distribution;

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
pub(super) fn normal_cdf(z: f64) -> f64 {
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

/// The histogram buckets a distribution reaches, as a Walker/Vose alias
/// table: one sample is one random number, a table lookup and a compare, so
/// drawing every request of a check is cheaper than a multinomial's binomials.
#[derive(Debug, Clone)]
pub struct BucketSampler {
    /// Per slot: acceptance threshold (scaled to 2^32), own bucket, alias bucket.
    slots: Vec<(u64, u16, u16)>,
    /// Representative latency (ns) of each histogram bucket, for `sum_ns`.
    mid_ns: Vec<u64>,
}

impl BucketSampler {
    pub fn new(d: &Latency) -> Self {
        let bounds = &*BOUNDS_NS;
        let mut probs: Vec<(u16, f64)> = Vec::new();
        let mut mid_ns = Vec::with_capacity(BUCKETS);
        let mut prev_cdf = 0.0;
        for i in 0..BUCKETS {
            let lo = if i == 0 { 0 } else { bounds[i - 1] };
            let hi = bounds.get(i).copied();
            mid_ns.push(hi.map_or(lo, |h| (lo + h) / 2));
            let cdf = hi.map_or(1.0, |h| d.cdf(h as f64 / 1e9));
            let p = (cdf - prev_cdf).max(0.0);
            prev_cdf = cdf;
            if p > 1e-15 {
                probs.push((i as u16, p));
            }
        }
        let total: f64 = probs.iter().map(|p| p.1).sum();
        let m = probs.len().max(1);
        // Vose: scaled probabilities, split into small and large, pair them up
        let mut scaled: Vec<f64> = probs.iter().map(|p| p.1 / total * m as f64).collect();
        let mut slots: Vec<(u64, u16, u16)> = probs.iter().map(|p| (1 << 32, p.0, p.0)).collect();
        let (mut small, mut large): (Vec<usize>, Vec<usize>) =
            (0..probs.len()).partition(|&i| scaled[i] < 1.0);
        while let (Some(s), Some(&l)) = (small.pop(), large.last()) {
            slots[s] = ((scaled[s] * 4_294_967_296.0) as u64, probs[s].0, probs[l].0);
            scaled[l] -= 1.0 - scaled[s];
            if scaled[l] < 1.0 {
                large.pop();
                small.push(l);
            }
        }
        if slots.is_empty() {
            slots.push((1 << 32, BUCKETS as u16 - 1, BUCKETS as u16 - 1));
        }
        BucketSampler { slots, mid_ns }
    }

    /// Adds `n` samples into `h`.
    pub fn sample<R: Rng>(&self, n: u64, rng: &mut R, h: &mut HistogramCounts) {
        let m = self.slots.len() as u64;
        for _ in 0..n {
            let r: u64 = rng.random();
            let slot = &self.slots[(((r >> 32) * m) >> 32) as usize];
            let b = if (r & 0xFFFF_FFFF) < slot.0 {
                slot.1
            } else {
                slot.2
            } as usize;
            h.buckets[b] += 1;
            h.sum_ns += self.mid_ns[b];
        }
    }
}

/// Binomial(n, p), fast enough to draw ~70 per check: Bernoulli trials for
/// tiny n, inversion while the mean is small (the tails, where the latency
/// limits look, are drawn exactly), a normal approximation for large means
/// (bulk buckets, where only the total matters).
pub(super) fn binomial<R: Rng>(n: u64, p: f64, rng: &mut R) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if n <= 12 {
        return (0..n).filter(|_| rng.random::<f64>() < p).count() as u64;
    }
    let q = p.min(1.0 - p);
    let nf = n as f64;
    let k = if nf * q < 20.0 {
        // inversion: walk the pmf from 0
        let ratio = q / (1.0 - q);
        let mut pk = (nf * (-q).ln_1p()).exp();
        let mut u: f64 = rng.random();
        let mut k = 0u64;
        while u > pk && k < n {
            u -= pk;
            pk *= ratio * (n - k) as f64 / (k + 1) as f64;
            k += 1;
        }
        k
    } else {
        let z: f64 = rand_distr::StandardNormal.sample(rng);
        let sd = (nf * q * (1.0 - q)).sqrt();
        (nf * q + sd * z).round().clamp(0.0, nf) as u64
    };
    if q < p {
        n - k
    } else {
        k
    }
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

    #[test]
    fn binomial_has_the_right_mean_and_spread() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
        for (n, p) in [
            (5u64, 0.3),
            (200, 0.01),
            (200, 0.5),
            (1000, 0.97),
            (40, 0.2),
        ] {
            let draws: Vec<f64> = (0..20_000)
                .map(|_| binomial(n, p, &mut rng) as f64)
                .collect();
            let mean = draws.iter().sum::<f64>() / draws.len() as f64;
            let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / draws.len() as f64;
            let (m, v) = (n as f64 * p, n as f64 * p * (1.0 - p));
            assert!(
                (mean - m).abs() < 0.05 * m.max(1.0),
                "n {n} p {p}: mean {mean}"
            );
            assert!(
                (var / v - 1.0).abs() < 0.1,
                "n {n} p {p}: var {var} want {v}"
            );
            assert!(draws.iter().all(|&x| x <= n as f64));
        }
    }
}
