#!/usr/bin/env python3
"""Reference values for src/evaluate/stats.ts, from SciPy (Debian's python3-scipy 1.10.1).

Run once, from the repository root:  /usr/bin/python3 test/evaluate/stats-reference.py > test/evaluate/stats-reference.json
The Wilcoxon cases give `method` explicitly, as patch-atlas decides it (exact for n <= 50 without zeros or
ties, the normal approximation with the tie correction otherwise; zero_method 'wilcox', no continuity
correction), so the values do not depend on how a SciPy version's 'auto' decides.
"""
import json
import numpy as np
from scipy import stats

rng = np.random.default_rng(20261202)

def wil(name, d):
    d = np.asarray(d, dtype=float)
    nz = d[d != 0]
    ties = len(np.unique(np.abs(nz))) < len(nz)
    method = 'exact' if len(d) <= 50 and len(nz) == len(d) and not ties else 'approx'
    r = stats.wilcoxon(d, zero_method='wilcox', correction=False, alternative='two-sided', method=method)
    return {'name': name, 'd': d.tolist(), 'method': method, 'statistic': float(r.statistic), 'p': float(r.pvalue)}

cases = [
    wil('small, no ties', [0.31, -1.2, 2.5, 0.8, 1.9, -0.05, 3.3, 0.6]),
    wil('all positive', [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]),
    wil('near the centre', [1, -2, 3, -4, 5, -6, 7, 8, -9]),
    wil('at the centre', [1.5, 2.5, -3.5]),
    wil('ties', [1.0, 1.0, -1.0, 2.0, 2.0, 3.0, -0.5, 2.0, 4.0, 1.0]),
    wil('zeros', [0.0, 0.0, 1.2, -0.4, 2.2, 0.7, 3.1, -1.5, 0.0, 2.6, 1.1, 0.9]),
    wil('n = 40 normal', np.round(rng.normal(0.3, 1.0, 40), 6)),
    wil('n = 120 normal', np.round(rng.normal(0.1, 1.0, 120), 6)),
    wil('n = 80 with ties and zeros', np.round(rng.normal(0.2, 1.0, 80), 1)),
]

mcn = []
for b, c in [(0, 0), (3, 0), (0, 7), (5, 5), (12, 4), (1, 20), (40, 55), (0, 1)]:
    p = 1.0 if b + c == 0 else stats.binomtest(min(b, c), b + c, 0.5, alternative='two-sided').pvalue
    mcn.append({'b': b, 'c': c, 'p': float(p)})

def holm(p):
    p = np.asarray(p, dtype=float)
    order = np.argsort(p, kind='stable')
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adj[i] = running
    return adj.tolist()

holm_cases = []
for ps in [[0.01, 0.04, 0.03, 0.005], [0.2, 0.2, 0.001, 0.5, 0.04], [0.9]]:
    holm_cases.append({'p': ps, 'adjusted': holm(ps)})

norm = [{'z': z, 'sf': float(stats.norm.sf(z))} for z in [0.0, 0.5, 1.0, 1.96, 2.5, 3.7, 5.0, 8.3]]

print(json.dumps({'scipy': __import__('scipy').__version__, 'wilcoxon': cases, 'mcnemar': mcn, 'holm': holm_cases, 'normSf': norm}, indent=1))
