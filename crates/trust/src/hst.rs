//! Half-Space Trees (Tan, Ting and Liu, "Fast anomaly detection for streaming data", IJCAI 2011): a
//! multivariate streaming detector, one per device class, for devices whose own baseline is still warming up
//! and for combinations of features that are each unremarkable alone.
//!
//! Written here because no maintained Rust crate provides it; the algorithm is small. Each tree splits a
//! randomly perturbed copy of the (log-scaled) feature space in half, depth after depth, on random features.
//! Windows are counted in the nodes they pass through; after every `window` windows the latest counts become
//! the reference. A window that lands where the reference mass is small, high in the tree, is anomalous.
//! Deterministic: trees come from a seeded generator.

use serde::{Deserialize, Serialize};

use crate::features::{Features, N};

/// Shape and memory of the forest.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct HstConfig {
    /// Trees in the forest.
    pub trees: usize,
    /// Depth of each tree.
    pub depth: u32,
    /// Windows per reference period.
    pub window: u32,
    /// Seed of the tree generator.
    pub seed: u64,
}

impl Default for HstConfig {
    fn default() -> Self {
        // river's defaults (10 trees of height 8): the forest stays in L2 cache, and the judgement of a
        // window costs well under a microsecond.
        HstConfig {
            trees: 10,
            depth: 8,
            window: 250,
            seed: 0x005e_ed0f_7e55,
        }
    }
}

/// The log-scale each feature is squashed with into [0, 1]: values up to about this are spread out.
const SCALE: [f64; N] = [1e4, 1e8, 1e8, 1e4, 1e4, 1e4, 1e3, 1e3, 1e2];

fn squash(x: &Features) -> [f64; N] {
    let mut out = [0.0; N];
    for i in 0..N {
        out[i] = (x.0[i].max(0.0).ln_1p() / SCALE[i].ln_1p()).min(1.0);
    }
    out
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Node {
    dim: u8,
    split: f64,
    reference: u32,
    latest: u32,
}

/// One tree, stored as a complete binary tree in an array (children of `i` at `2i+1`, `2i+2`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
}

/// A small xorshift generator: deterministic trees without a dependency.
struct Gen(u64);

impl Gen {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A Half-Space Trees forest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HalfSpaceTrees {
    cfg: HstConfig,
    trees: Vec<Tree>,
    seen: u32,
    ready: bool,
}

impl HalfSpaceTrees {
    /// A new forest; it scores once one reference period has been learned.
    pub fn new(cfg: HstConfig) -> Self {
        let mut g = Gen(cfg.seed | 1);
        let depth = cfg.depth.clamp(1, 20);
        let size = (1usize << (depth + 1)) - 1;
        let trees = (0..cfg.trees.max(1))
            .map(|_| {
                // A random work range per feature that covers [0, 1] with room on each side.
                let mut lo = [0.0; N];
                let mut hi = [0.0; N];
                for q in 0..N {
                    let s = g.unit();
                    let r = 2.0 * s.max(1.0 - s);
                    lo[q] = s - r;
                    hi[q] = s + r;
                }
                let mut nodes = vec![Node::default(); size];
                build(&mut nodes, 0, &mut lo, &mut hi, &mut g);
                Tree { nodes }
            })
            .collect();
        HalfSpaceTrees {
            cfg: HstConfig { depth, ..cfg },
            trees,
            seen: 0,
            ready: false,
        }
    }

    /// Whether one reference period has been learned.
    pub fn ready(&self) -> bool {
        self.ready
    }

    /// Anomaly of `x`, 0 (dense, normal) to 1 (where nothing was seen); 0 until ready.
    pub fn anomaly(&self, x: &Features) -> f64 {
        self.anomaly_of(&squash(x))
    }

    /// Scores `x`, then learns it (the order a live stream needs), scaling it once and walking each tree
    /// once: the score reads the reference counts on the way down while the latest counts are incremented.
    pub fn observe(&mut self, x: &Features) -> f64 {
        let v = squash(x);
        let depth_max = self.cfg.depth;
        let mut mass = 0.0;
        for t in &mut self.trees {
            let mut i = 0;
            let mut depth = 0;
            let mut scored = false;
            let len = t.nodes.len();
            while i < len {
                let n = &mut t.nodes[i];
                n.latest += 1;
                let child = 2 * i
                    + if v[usize::from(n.dim)] < n.split {
                        1
                    } else {
                        2
                    };
                if !scored && (depth == depth_max || child >= len || n.reference < 2) {
                    mass += f64::from(n.reference) * f64::from(1u32 << depth);
                    scored = true;
                }
                i = child;
                depth += 1;
            }
        }
        let a = if self.ready { self.score(mass) } else { 0.0 };
        self.end_of_window();
        a
    }

    /// The anomaly for a summed, depth-weighted reference mass.
    fn score(&self, mass: f64) -> f64 {
        // The most a window can score: the whole reference period at the deepest level, in every tree.
        let most = self.trees.len() as f64
            * f64::from(self.cfg.window)
            * f64::from(1u32 << self.cfg.depth);
        (1.0 - (mass / most).sqrt()).clamp(0.0, 1.0)
    }

    fn anomaly_of(&self, v: &[f64; N]) -> f64 {
        if !self.ready {
            return 0.0;
        }
        let mut mass = 0.0;
        for t in &self.trees {
            let mut i = 0;
            let mut depth = 0;
            // Descend while the region is well populated; a sparse region ends the walk early.
            loop {
                let n = &t.nodes[i];
                let child = 2 * i
                    + if v[usize::from(n.dim)] < n.split {
                        1
                    } else {
                        2
                    };
                if depth == self.cfg.depth || child >= t.nodes.len() || n.reference < 2 {
                    mass += f64::from(n.reference) * f64::from(1u32 << depth);
                    break;
                }
                i = child;
                depth += 1;
            }
        }
        self.score(mass)
    }

    /// Counts `x` in the latest period; every `window` windows the latest counts become the reference.
    pub fn learn(&mut self, x: &Features) {
        self.learn_of(&squash(x));
    }

    fn learn_of(&mut self, v: &[f64; N]) {
        for t in &mut self.trees {
            let mut i = 0;
            while i < t.nodes.len() {
                t.nodes[i].latest += 1;
                let n = t.nodes[i];
                i = 2 * i
                    + if v[usize::from(n.dim)] < n.split {
                        1
                    } else {
                        2
                    };
            }
        }
        self.end_of_window();
    }

    /// Every `window` windows the latest counts become the reference.
    fn end_of_window(&mut self) {
        self.seen += 1;
        if self.seen >= self.cfg.window {
            for t in &mut self.trees {
                for n in &mut t.nodes {
                    n.reference = n.latest;
                    n.latest = 0;
                }
            }
            self.seen = 0;
            self.ready = true;
        }
    }
}

fn build(nodes: &mut [Node], i: usize, lo: &mut [f64; N], hi: &mut [f64; N], g: &mut Gen) {
    if i >= nodes.len() {
        return;
    }
    let q = ((g.unit() * N as f64) as usize).min(N - 1);
    let split = (lo[q] + hi[q]) / 2.0;
    nodes[i] = Node {
        dim: q as u8,
        split,
        reference: 0,
        latest: 0,
    };
    let saved = hi[q];
    hi[q] = split;
    build(nodes, 2 * i + 1, lo, hi, g);
    hi[q] = saved;
    let saved = lo[q];
    lo[q] = split;
    build(nodes, 2 * i + 2, lo, hi, g);
    lo[q] = saved;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn normal(i: u32) -> Features {
        let j = f64::from((i * 7919) % 17) / 17.0;
        Features([
            2.0 + j,
            120.0 + 60.0 * j,
            64.0,
            3.0,
            0.0,
            0.0,
            0.0,
            0.0,
            0.0,
        ])
    }

    #[test]
    fn normal_windows_score_low_and_attacks_high() {
        let mut f = HalfSpaceTrees::new(HstConfig::default());
        assert_eq!(
            f.anomaly(&normal(0)),
            0.0,
            "silent until a reference period is learned"
        );
        for i in 0..500 {
            f.learn(&normal(i));
        }
        assert!(f.ready());
        let usual: f64 = (1000..1100).map(|i| f.anomaly(&normal(i))).sum::<f64>() / 100.0;
        // Topic enumeration and a connection storm: each feature leaves the populated region.
        let mut scan = normal(3);
        scan.0[4] = 200.0;
        scan.0[6] = 50.0;
        let mut exfil = normal(5);
        exfil.0[1] = 5e6;
        for (what, x) in [("scan", scan), ("exfiltration", exfil)] {
            let a = f.anomaly(&x);
            assert!(a > usual + 0.2, "{what}: {a} vs usual {usual}");
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_forest() {
        let (mut a, mut b) = (
            HalfSpaceTrees::new(HstConfig::default()),
            HalfSpaceTrees::new(HstConfig::default()),
        );
        for i in 0..300 {
            a.learn(&normal(i));
            b.learn(&normal(i));
        }
        let mut x = normal(9);
        x.0[5] = 30.0;
        assert_eq!(a.anomaly(&x), b.anomaly(&x));
    }
}
