//! A small seeded generator (SplitMix64) and a key mixer: every random choice of the simulator is a function
//! of the fleet's seed and of where it is made (device, window), so that any plan can be recomputed alone, in
//! any order, by the benchmark and by the live driver alike.

/// SplitMix64 (Steele, Lea and Flood): tiny, fast, and good enough for traffic shapes; no dependency.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

/// SplitMix64's output function: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// One 64-bit key from several parts (seed, purpose, device, window): each part is mixed in turn, so that
/// keys differing in any part are unrelated.
pub(crate) fn key(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(GOLDEN, |h, p| mix(h ^ mix(p.wrapping_add(GOLDEN))))
}

impl Rng {
    /// A generator for one key.
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix(self.0)
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in 0..n (0 when n is 0), without modulo bias worth speaking of (Lemire's multiply-shift).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        ((self.next_u64() >> 32).wrapping_mul(u64::from(n)) >> 32) as u32
    }

    /// Uniform in lo..=hi.
    pub(crate) fn range(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// True with probability p.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A standard normal deviate (Box–Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A Poisson count with mean `lambda`: exact (Knuth) for small means, the normal approximation above 30,
    /// where it is close and the exact method would loop for long.
    pub(crate) fn poisson(&mut self, lambda: f64) -> u32 {
        if lambda <= 0.0 || !lambda.is_finite() {
            return 0;
        }
        if lambda >= 30.0 {
            let x = (lambda + lambda.sqrt() * self.normal()).round();
            return x.clamp(0.0, f64::from(u32::MAX)) as u32;
        }
        let limit = (-lambda).exp();
        let mut p = 1.0;
        let mut k = 0u32;
        loop {
            p *= self.unit();
            if p <= limit || k >= 1_000 {
                return k;
            }
            k += 1;
        }
    }

    /// `base` scaled by a uniform factor in [1 − spread, 1 + spread], at least 1.
    pub(crate) fn jitter(&mut self, base: u32, spread: f64) -> u32 {
        let f = 1.0 + spread * (2.0 * self.unit() - 1.0);
        (f64::from(base) * f).round().max(1.0) as u32
    }

    /// The mean size of `n` messages whose sizes each vary by ±`spread` around `base`: the mean varies by
    /// ±spread/√n (the same standard deviation as the mean of n uniform draws), not by the full spread.
    pub(crate) fn mean_size(&mut self, base: u32, spread: f64, n: u32) -> u32 {
        self.jitter(base, spread / f64::from(n.max(1)).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_in_every_part_and_draws_stay_in_range() {
        assert_ne!(key(&[7, 1, 2]), key(&[7, 2, 1]));
        assert_ne!(key(&[7, 1]), key(&[8, 1]));
        assert_eq!(key(&[7, 1, 2]), key(&[7, 1, 2]));
        let mut r = Rng::new(key(&[1]));
        for _ in 0..10_000 {
            assert!(r.below(10) < 10);
            let x = r.range(3, 5);
            assert!((3..=5).contains(&x));
            let u = r.unit();
            assert!((0.0..1.0).contains(&u));
        }
        let mean = (0..20_000).map(|_| f64::from(r.poisson(4.0))).sum::<f64>() / 20_000.0;
        assert!((mean - 4.0).abs() < 0.1, "{mean}");
        let mean = (0..20_000)
            .map(|_| f64::from(r.poisson(300.0)))
            .sum::<f64>()
            / 20_000.0;
        assert!((mean - 300.0).abs() < 1.0, "{mean}");
    }
}
