#!/usr/bin/env python3
"""The peers of `vouch bench detect`: the same device windows scored by scikit-learn's IsolationForest and
river's HalfSpaceTrees.

The bench runs this script itself (it is built into the binary) in a virtual environment it fills from PyPI;
to run it by hand: bench-detect-peers.py ROWS.csv SCORES.csv > summary.json

Input: the bench's rows, one per device window in window order (all devices of window 0, then window 1, ...):
window, device, class, label ("normal" or a scenario), the 9 behaviour features of vouch_trust::Features,
out_of_zone and firmware_bad (0/1: the facts the trust engine gets beside the traffic), and vouch's risk.

Both peers read log1p of the 9 features (rates are heavy-tailed; the trust crate's own forest squashes them the
same way) and the two context columns, and keep one model per device class, as the trust engine keeps one class
model per class:
- IsolationForest(n_estimators=100, random_state=42), fitted on all the windows of its class: unsupervised and
  with hindsight (it sees the whole day, attacks included, which are well under 1% of rows), the strongest way
  to run it here. Score: -score_samples (higher is more anomalous).
- river: MinMaxScaler | HalfSpaceTrees(seed=42), otherwise river's defaults (10 trees, height 8, window 250),
  streamed in window order: score_one, then learn_one, as a live detector must.

Output: SCORES.csv (columns iforest, hst; one line per input row, higher is more anomalous) and, on stdout, a
JSON summary: sklearn's roc_auc_score per scenario (that scenario's windows against all normal windows) and
overall, for both peers and for vouch's risk (to cross-check the bench's own rank-based AUC), with timings and
library versions.
"""

import csv
import json
import sys
import time
import warnings

import numpy as np
import river
import sklearn
from river import anomaly, preprocessing
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

FEATURES = 9
SEED = 42

# river's MinMaxScaler starts from min = +inf and max = -inf, so scoring a class's very first window (before
# anything was learned) divides inf by inf; that one window per class gets a meaningless score, nothing else.
warnings.filterwarnings("ignore", message="invalid value encountered", category=RuntimeWarning)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: bench-detect-peers.py ROWS.csv SCORES.csv")
    rows_path, scores_path = sys.argv[1], sys.argv[2]

    with open(rows_path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    col = {name: i for i, name in enumerate(header)}
    first = col["label"] + 1
    names = header[first : first + FEATURES + 2]
    classes = np.array([r[col["class"]] for r in rows])
    labels = np.array([r[col["label"]] for r in rows])
    raw = np.array([[float(v) for v in r[first : first + FEATURES + 2]] for r in rows])
    vouch = np.array([float(r[col["vouch_risk"]]) for r in rows])
    x = raw.copy()
    x[:, :FEATURES] = np.log1p(np.maximum(x[:, :FEATURES], 0.0))

    iforest = np.zeros(len(rows))
    started = time.perf_counter()
    for c in sorted(set(classes)):
        idx = np.flatnonzero(classes == c)
        model = IsolationForest(n_estimators=100, random_state=SEED)
        model.fit(x[idx])
        iforest[idx] = -model.score_samples(x[idx])
    iforest_secs = time.perf_counter() - started

    hst = np.zeros(len(rows))
    models = {}
    started = time.perf_counter()
    for i in range(len(rows)):
        c = classes[i]
        model = models.get(c)
        if model is None:
            model = models[c] = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=SEED)
        sample = dict(zip(names, x[i]))
        hst[i] = model.score_one(sample)
        model.learn_one(sample)
    hst_secs = time.perf_counter() - started

    with open(scores_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["iforest", "hst"])
        for a, b in zip(iforest, hst):
            w.writerow([repr(float(a)), repr(float(b))])

    normal = labels == "normal"
    scenarios = sorted(set(labels) - {"normal"})
    auc = {}
    for name, scores in (("vouch", vouch), ("iforest", iforest), ("hst", hst)):
        per = {}
        for s in scenarios + ["all"]:
            attack = ~normal if s == "all" else labels == s
            keep = attack | normal
            if attack.any() and normal.any():
                per[s] = float(roc_auc_score(attack[keep], scores[keep]))
        auc[name] = per

    json.dump(
        {
            "rows": len(rows),
            "auc": auc,
            "iforest": {"seconds": iforest_secs, "rows_per_second": len(rows) / max(iforest_secs, 1e-9)},
            "hst": {"seconds": hst_secs, "rows_per_second": len(rows) / max(hst_secs, 1e-9)},
            "versions": {
                "python": sys.version.split()[0],
                "numpy": np.__version__,
                "scikit-learn": sklearn.__version__,
                "river": river.__version__,
            },
        },
        sys.stdout,
    )
    print()


if __name__ == "__main__":
    main()
