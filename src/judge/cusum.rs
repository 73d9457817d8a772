//! A CUSUM of binomial log-likelihood ratios, one per alternative.
//!
//! Each check feeds `n` trials with `k` "bad events". Against a null rate `p0`
//! (half the limit) the statistic for alternative `p1` is
//! `S = max(0, S + k·ln(p1/p0) + (n−k)·ln((1−p1)/(1−p0)))`, floored at 0 only at
//! check boundaries. `S ≥ A` means: for some restart point (a past check), the
//! likelihood ratio of the evidence since then exceeds `e^A`. Under the null
//! each of those ratios is a non-negative supermartingale, so by Ville's
//! inequality it ever reaches `e^A` with probability at most `e^−A`; the guard
//! picks `A` so the union over restart points, alternatives and limits stays
//! below `1 − confidence` for an hour.

#[derive(Debug, Clone)]
pub(super) struct Cusum {
    /// Statistic per alternative.
    s: Vec<f64>,
    /// Trials and bad events since each statistic last stood at 0.
    run_n: Vec<u64>,
    run_k: Vec<u64>,
}

/// The strongest alternative's state when the statistic crossed the threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Crossing {
    pub n: u64,
    pub k: u64,
}

impl Cusum {
    pub(super) fn new(alternatives: usize) -> Self {
        Cusum {
            s: vec![0.0; alternatives],
            run_n: vec![0; alternatives],
            run_k: vec![0; alternatives],
        }
    }

    pub(super) fn reset(&mut self) {
        self.s.iter_mut().for_each(|s| *s = 0.0);
        self.run_n.iter_mut().for_each(|n| *n = 0);
        self.run_k.iter_mut().for_each(|k| *k = 0);
    }

    /// Feeds one check's `k` bad events out of `n` against null `p0` and the
    /// alternatives `p1s` (index-aligned with the constructor's count; extra
    /// statistics are left as they are). Rates must lie in (0, 1), `p1 > p0`.
    pub(super) fn update(&mut self, n: u64, k: u64, p0: f64, p1s: &[f64]) {
        if n == 0 {
            return;
        }
        let k = k.min(n);
        let (kf, rest) = (k as f64, (n - k) as f64);
        for (j, &p1) in p1s.iter().enumerate().take(self.s.len()) {
            if !(p0 > 0.0 && p1 > p0 && p1 < 1.0) {
                continue;
            }
            let llr = kf * (p1 / p0).ln() + rest * ((1.0 - p1) / (1.0 - p0)).ln();
            let s = self.s[j] + llr;
            if s > 0.0 {
                self.s[j] = s;
                self.run_n[j] += n;
                self.run_k[j] += k;
            } else {
                self.s[j] = 0.0;
                self.run_n[j] = 0;
                self.run_k[j] = 0;
            }
        }
    }

    /// The run behind the largest statistic at or above `threshold` whose run
    /// holds at least `min_n` trials.
    pub(super) fn crossing(&self, threshold: f64, min_n: u64) -> Option<Crossing> {
        let mut best: Option<(f64, Crossing)> = None;
        for j in 0..self.s.len() {
            if self.s[j] >= threshold && self.run_n[j] >= min_n {
                let c = Crossing {
                    n: self.run_n[j],
                    k: self.run_k[j],
                };
                if best.is_none_or(|(s, _)| self.s[j] > s) {
                    best = Some((self.s[j], c));
                }
            }
        }
        best.map(|(_, c)| c)
    }

    /// The largest statistic.
    #[cfg(test)]
    pub(crate) fn max_statistic(&self) -> f64 {
        self.s.iter().copied().fold(0.0, f64::max)
    }
}

/// Alternatives `base + step·2^j` for `j = 0, 1, …` while below 1, at most `max`.
pub(super) fn ladder(base: f64, step: f64, max: usize, out: &mut Vec<f64>) {
    out.clear();
    let mut m = 1.0;
    while out.len() < max {
        let p = base + step * m;
        if p.is_nan() || p >= 1.0 {
            break;
        }
        out.push(p);
        m *= 2.0;
    }
}

/// How many rungs `ladder(base, step, ..)` has when `base` is 0.
pub(super) fn ladder_len(step: f64) -> usize {
    let mut v = Vec::new();
    ladder(0.0, step, 64, &mut v);
    v.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_evidence_grows_good_evidence_floors() {
        let mut c = Cusum::new(2);
        c.update(100, 0, 0.01, &[0.02, 0.04]);
        assert_eq!(c.max_statistic(), 0.0);
        c.update(100, 30, 0.01, &[0.02, 0.04]);
        assert!(c.max_statistic() > 10.0);
        let x = c.crossing(10.0, 20).unwrap();
        assert_eq!((x.n, x.k), (100, 30));
        assert!(c.crossing(10.0, 101).is_none());
        c.reset();
        assert_eq!(c.max_statistic(), 0.0);
    }

    #[test]
    fn ladder_doubles_below_one() {
        let mut v = Vec::new();
        ladder(0.0, 0.2, 10, &mut v);
        assert_eq!(v, vec![0.2, 0.4, 0.8]);
        ladder(0.1, 0.2, 10, &mut v);
        assert_eq!(v.len(), 3);
        assert_eq!(ladder_len(0.01), 7);
    }
}
