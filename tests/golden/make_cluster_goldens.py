#!/usr/bin/python3
"""NumPy float64 goldens of DeepCluster's per-epoch clustering -> cluster/.

BASELINES.md section 3, steps 3-5: sklearn's PCA(n_components, whiten=True)
then a row-wise L2 normalisation, sklearn's KMeans (greedy k-means++, Lloyd
with its stop rule and empty-cluster relocation, restarts kept by inertia),
and the normalised mutual information that reports how clusters relate to
classes. Written here in NumPy, in float64, from float32 inputs; the C side
is runtime/rt_cluster.c and tests/runtime/test_cluster.c reads these files
(tests/golden/README.md, section "cluster/", says what each holds).

    run with:  /usr/bin/python3 tests/golden/make_cluster_goldens.py
    needs:     numpy, and torch only for the safetensors writer of
               make_goldens.py (Debian's python3-torch, as `make goldens`).

The stored references never depend on scikit-learn. When it is importable
(Debian's python3-sklearn; not installed by the project), the script checks
the NumPy versions against it before writing and stops with an assertion if
they disagree: PCA whitening (up to a sign per component), Lloyd from the
same initial centres (same labels, centres, inertia, iterations), the whole
KMeans(n_init=5, random_state=0) run (the same RandomState draws, so the
same inertia) and normalized_mutual_info_score. Without it those checks are
skipped and said to be.

Deterministic: numpy.random.RandomState (whose streams NumPy keeps fixed
across versions) with a fixed seed per case. Re-running gives byte-identical
files (checked with Debian 12's NumPy 1.24.2 and OpenBLAS, with and without
scikit-learn); another BLAS may change the last bits of the float64 values,
far inside every tolerance, and the script re-checks its margins each run.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_goldens as mg  # noqa: E402  (the safetensors writer; main() runs only as a script)
import torch  # noqa: E402  (make_goldens imports it anyway; the writer takes tensors)

DIR = os.path.join(HERE, "cluster")
MAX_ITER = 30
TOL = 1e-4
N_INIT = 5
SEEDINGS = 400
# The C side computes assignments from float32 sgemm products: every case
# must keep, at every Lloyd iteration, the best and second-best centre of
# every row at least MARGIN apart in ||c||^2 - 2 x.c, relative to the mean
# squared norm of the centred rows (the float error of that expression is
# at most about d 2^-24 of the squared norms: 2e-6 at d = 32), and the stop
# rule away from its threshold, or a golden would test rounding rather than
# the algorithm.
MARGIN = 1e-4

try:
    import sklearn
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import normalized_mutual_info_score
    HAVE_SKLEARN = True
except ImportError:
    HAVE_SKLEARN = False


# ---------------------------------------------------------------- PCA ----

def n_components(F):
    """BASELINES.md 3.3: F if F < 512 else F/2."""
    return F if F < 512 else F // 2


def pca_whiten(x32, n):
    """sklearn PCA(n, whiten=True).fit_transform, by SVD of the centred data:
    the projection on the top-n right singular vectors divided by
    sqrt(lambda), lambda = s^2 / (N - 1). Returns (whitened, lambda, gap),
    gap the smallest relative gap between consecutive eigenvalues among
    the n + 1 largest (the components are well defined only with a gap)."""
    x = x32.astype(np.float64)
    N = x.shape[0]
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    lam = s * s / (N - 1)
    w = (xc @ vt[:n].T) / np.sqrt(lam[:n])
    top = lam[:min(n + 1, len(lam))]
    gap = np.min((top[:-1] - top[1:]) / top[:-1]) if len(top) > 1 else 1.0
    return w, lam[:n], gap


def l2_rows(w):
    return w / np.linalg.norm(w, axis=1)[:, None]


# ------------------------------------------------------------- k-means ----

def assign(xc, c):
    """Labels (first minimum of ||c||^2 - 2 x.c, as sklearn) and the smallest
    gap between a row's best and second-best value."""
    d = (c * c).sum(axis=1)[None, :] - 2.0 * (xc @ c.T)
    labels = np.argmin(d, axis=1)
    if c.shape[0] > 1:
        part = np.partition(d, 1, axis=1)
        gap = float(np.min(part[:, 1] - part[:, 0]))
    else:
        gap = np.inf
    return labels, gap


def lloyd(x32, init32, max_iter=MAX_ITER, tol=TOL):
    """sklearn's _kmeans_single_lloyd on float64 copies of float32 data:
    the data and the initial centres centred on the data's mean, at most
    max_iter iterations, each an assignment then new centres (the means;
    empty clusters first relocated to the farthest rows: the i-th empty
    cluster, in index order, takes the i-th row in order of distance to its
    own centre, largest first, ties by lower row index; that row's sum moves
    from its cluster to the empty one, its label stays); stop when the labels
    did not change (no further assignment) or when the sum of squared centre
    shifts is <= tol * mean per-feature variance (then one more assignment).
    Returns labels, centres, inertia, iterations, relocations, the smallest
    assignment gap seen (relative to the mean squared norm of the centred
    rows), the closest |shift / threshold - 1| and what stopped the run
    ("labels", "shift" or "max_iter")."""
    x = x32.astype(np.float64)
    N, d = x.shape
    mean = x.mean(axis=0)
    xc = x - mean
    c = init32.astype(np.float64) - mean
    k = c.shape[0]
    tol_abs = np.mean(np.var(x, axis=0)) * tol
    labels_old = np.full(N, -1)
    strict = False
    stop = "max_iter"
    relocations = 0
    min_gap = np.inf
    closest_stop = np.inf
    for it in range(max_iter):
        labels, gap = assign(xc, c)
        min_gap = min(min_gap, gap)
        sums = np.zeros((k, d))
        np.add.at(sums, labels, xc)
        counts = np.bincount(labels, minlength=k).astype(np.float64)
        empty = np.flatnonzero(counts == 0)
        if len(empty):
            dist = ((xc - c[labels]) ** 2).sum(axis=1)
            order = np.lexsort((np.arange(N), -dist))   # distance descending, then row
            for e, far in zip(empty, order[:len(empty)]):
                old = labels[far]
                sums[old] -= xc[far]
                sums[e] = xc[far]
                counts[e] = 1
                counts[old] -= 1
                relocations += 1
        new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], sums)
        shift = float(((new - c) ** 2).sum())
        c = new
        if np.array_equal(labels, labels_old):
            strict = True
            stop = "labels"
            break
        closest_stop = min(closest_stop, abs(shift / tol_abs - 1))
        if shift <= tol_abs:
            stop = "shift"
            break
        labels_old = labels
    if not strict:
        labels, gap = assign(xc, c)
        min_gap = min(min_gap, gap)
    inertia = float(((xc - c[labels]) ** 2).sum())
    scale = float((xc * xc).sum(axis=1).mean())
    return labels, c + mean, inertia, it + 1, relocations, min_gap / scale, closest_stop, stop


def kmeanspp(xc, k, rs):
    """sklearn's _kmeans_plusplus (greedy, 2 + floor(ln k) candidates), on
    centred float64 data; returns the chosen row indices."""
    N = xc.shape[0]
    trials = 2 + int(np.log(k))
    xsq = (xc * xc).sum(axis=1)
    first = rs.randint(N)
    ids = [first]
    closest = np.maximum(xsq[first] - 2.0 * (xc @ xc[first]) + xsq, 0.0)
    pot = closest.sum()
    for _ in range(1, k):
        r = rs.uniform(size=trials) * pot
        cand = np.searchsorted(np.cumsum(closest), r)
        np.clip(cand, None, N - 1, out=cand)
        dist = np.maximum(xsq[cand][:, None] - 2.0 * (xc[cand] @ xc.T) + xsq[None, :], 0.0)
        np.minimum(closest, dist, out=dist)
        pots = dist.sum(axis=1)
        b = int(np.argmin(pots))
        pot = pots[b]
        closest = dist[b]
        ids.append(int(cand[b]))
    return np.array(ids)


def potential(xc, ids):
    """The sum over rows of the squared distance to the nearest of rows ids."""
    d = ((xc[:, None, :] - xc[ids][None, :, :]) ** 2).sum(axis=2)
    return float(d.min(axis=1).sum())


def kmeans(x32, k, n_init, seed):
    """KMeans(k, init="k-means++", n_init, max_iter=30, tol=1e-4,
    random_state=seed): the restart with the lowest inertia (the first on a
    tie). Returns (labels, inertia, inertias of all restarts)."""
    x = x32.astype(np.float64)
    xc = x - x.mean(axis=0)
    rs = np.random.RandomState(seed)
    best = None
    inertias = []
    for _ in range(n_init):
        ids = kmeanspp(xc, k, rs)
        labels, _, inertia = lloyd(x32, x32[ids])[:3]
        inertias.append(inertia)
        if best is None or inertia < best[1]:
            best = (labels, inertia)
    return best[0], best[1], np.array(inertias)


# ----------------------------------------------------------------- NMI ----

def nmi(a, b):
    """normalized_mutual_info_score(a, b) (arithmetic mean of the two
    entropies): 1 when both labelings are constant, 0 when the mutual
    information is 0."""
    ua, ia = np.unique(a, return_inverse=True)
    ub, ib = np.unique(b, return_inverse=True)
    if len(ua) == len(ub) == 1:
        return 1.0
    if len(ua) == 1 or len(ub) == 1:
        return 0.0
    N = float(len(a))
    cont = np.zeros((len(ua), len(ub)))
    np.add.at(cont, (ia, ib), 1.0)
    pi, pj = cont.sum(axis=1), cont.sum(axis=0)
    nz = cont > 0
    nij = cont[nz]
    outer = np.outer(pi, pj)[nz]
    mi = max(float(np.sum(nij / N * (np.log(nij) + np.log(N) - np.log(outer)))), 0.0)
    if mi == 0:
        return 0.0
    ha = -np.sum(pi / N * np.log(pi / N))
    hb = -np.sum(pj / N * np.log(pj / N))
    return mi / ((ha + hb) / 2)


# ---------------------------------------------------------------- data ----

def mixture(rs, N, F, C, spread):
    """N float32 rows of F features from C Gaussian clusters (sizes as equal
    as possible, rows shuffled): cluster means ~ N(0, spread^2 I), each
    cluster's covariance A A^T with A = Q diag(s) (Q a random rotation, s
    log-uniform in [0.1, 1]: anisotropic), then every feature scaled by a
    log-uniform factor in [0.2, 5] so that whitening has work to do."""
    y = np.arange(N) % C
    rs.shuffle(y)
    means = rs.normal(0.0, spread, size=(C, F))
    x = np.empty((N, F))
    for c in range(C):
        q, _ = np.linalg.qr(rs.normal(size=(F, F)))
        s = np.exp(rs.uniform(np.log(0.1), 0.0, size=F))
        rows = np.flatnonzero(y == c)
        x[rows] = means[c] + rs.normal(size=(len(rows), F)) @ (q * s).T
    x *= np.exp(rs.uniform(np.log(0.2), np.log(5.0), size=F))
    return x.astype(np.float32), y


def t64(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def t32(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def ti64(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64))


# ------------------------------------------------------- sklearn checks ----

def sk_check_pca(x32, n, w):
    if not HAVE_SKLEARN:
        return
    ws = PCA(n_components=n, whiten=True, svd_solver="full").fit_transform(x32.astype(np.float64))
    sign = np.sign((ws * w).sum(axis=0))
    assert np.all(sign != 0)
    err = np.max(np.abs(ws * sign - w))
    assert err < 1e-9, ("sklearn PCA whitening differs", err)


def sk_check_lloyd(x32, init32, res):
    if not HAVE_SKLEARN:
        return
    labels, centres, inertia, iters = res[:4]
    km = KMeans(n_clusters=init32.shape[0], init=init32.astype(np.float64), n_init=1, max_iter=MAX_ITER, tol=TOL,
                algorithm="lloyd").fit(x32.astype(np.float64))
    assert np.array_equal(km.labels_, labels), "sklearn Lloyd labels differ"
    assert km.n_iter_ == iters, ("sklearn Lloyd iterations differ", km.n_iter_, iters)
    assert np.max(np.abs(km.cluster_centers_ - centres)) < 1e-12, "sklearn Lloyd centres differ"
    assert abs(km.inertia_ - inertia) <= 1e-10 * inertia, ("sklearn Lloyd inertia differs", km.inertia_, inertia)


def sk_check_kmeans(x32, k, inertia, labels):
    if not HAVE_SKLEARN:
        return
    km = KMeans(n_clusters=k, n_init=N_INIT, random_state=0, algorithm="lloyd").fit(x32.astype(np.float64))
    assert abs(km.inertia_ - inertia) <= 1e-10 * inertia, ("sklearn KMeans inertia differs", km.inertia_, inertia)
    assert nmi(km.labels_, labels) > 1 - 1e-12, "sklearn KMeans found another clustering"


def sk_check_nmi(a, b, v):
    if not HAVE_SKLEARN:
        return
    s = normalized_mutual_info_score(a, b)
    assert abs(s - v) <= 1e-12, ("sklearn NMI differs", s, v)


# --------------------------------------------------------------- cases ----

def mixture_case(name, seed, N, F, C, spread):
    """A Gaussian mixture: whitening, Lloyd from given centres (k = C rows
    of the whitened data drawn at random) and k-means++ with restarts."""
    rs = np.random.RandomState(seed)
    x, y = mixture(rs, N, F, C, spread)
    n = n_components(F)
    w, lam, gap = pca_whiten(x, n)
    assert gap > 1e-3, ("eigenvalues too close: components ill-defined", gap)
    sk_check_pca(x, n, w)
    feat = l2_rows(w).astype(np.float32)
    # the first draw of initial rows whose run keeps the margins (and is
    # not over at once)
    for draw in range(100):
        init = feat[rs.choice(N, C, replace=False)]
        res = lloyd(feat, init)
        labels, centres, inertia, iters, reloc, min_gap, closest_stop, stop = res
        if min_gap > MARGIN and closest_stop > 1e-6 and iters > 2:
            break
    else:
        raise AssertionError("no initial centres keep the margins")
    sk_check_lloyd(feat, init, res)
    pp_labels, pp_inertia, pp_all = kmeans(feat, C, N_INIT, 0)
    # how often one k-means++ run ends within 1% of that best (40 runs):
    # the odds that 5 restarts all miss it, for the README
    _, _, many = kmeans(feat, C, 40, 2)
    within = float(np.mean(many <= 1.01 * pp_inertia))
    # the distribution of the seeding alone: the potential (sum of squared
    # distances to the nearest seed) of SEEDINGS independent seedings
    xc = feat.astype(np.float64) - feat.astype(np.float64).mean(axis=0)
    srs = np.random.RandomState(1)
    pots = np.array([potential(xc, kmeanspp(xc, C, srs)) for _ in range(SEEDINGS)])
    sk_check_kmeans(feat, C, pp_inertia, pp_labels)
    v_lloyd, v_pp = nmi(y, labels), nmi(y, pp_labels)
    sk_check_nmi(y, labels, v_lloyd)
    sk_check_nmi(y, pp_labels, v_pp)
    tensors = [("x", t32(x)), ("y", ti64(y)), ("whitened", t64(w)), ("eigval", t64(lam)), ("feat", t32(feat)),
               ("init", t32(init)), ("lloyd_labels", ti64(labels)), ("lloyd_centres", t64(centres)),
               ("lloyd_inertia", t64([inertia])), ("lloyd_iter", ti64([iters])), ("lloyd_nmi", t64([v_lloyd])),
               ("pp_inertia", t64([pp_inertia])), ("pp_inertias", t64(pp_all)), ("pp_nmi", t64([v_pp])),
               ("seed_potentials", t64(pots))]
    meta = {"seed": seed, "N": N, "F": F, "n": n, "k": C, "max_iter": MAX_ITER, "tol": repr(TOL),
            "n_init": N_INIT, "eig_gap": "%.3g" % gap, "assign_margin": "%.3g" % min_gap,
            "relocations": reloc, "stop": stop, "init_draw": draw, "pp_single_within_1pct": "%.3f" % within,
            "numpy": np.__version__}
    size = mg.write_safetensors(os.path.join(DIR, name + ".safetensors"), tensors, meta)
    print("cluster/%-12s %7d bytes  eig gap %.3g  Lloyd %d it (%s), inertia %.6f, NMI %.4f, margin %.2g;"
          "  k-means++ best %.6f of %s, NMI %.4f, one run within 1%%: %.3f;  seeding potential %.3f +- %.3f" % (
              name, size, gap, iters, stop, inertia, v_lloyd, min_gap, pp_inertia, np.array2string(pp_all, precision=4),
              v_pp, within, pots.mean(), pots.std()))


def empty_case(name, seed):
    """Lloyd where two of the initial centres are far from every row: both
    clusters are empty after the first assignment and take the two rows
    farthest from their centres (the farthest to the lower index)."""
    rs = np.random.RandomState(seed)
    N, d, k = 200, 8, 6
    x, _ = mixture(rs, N, d, 4, 4.0)
    init = np.empty((k, d), dtype=np.float32)
    init[:4] = x[rs.choice(N, 4, replace=False)]
    init[4] = 60.0
    init[5] = -50.0
    res = lloyd(x, init)
    assert res[4] >= 2, "no relocation"
    write_lloyd(name, seed, x, init, res)


def write_lloyd(name, seed, x, init, res):
    labels, centres, inertia, iters, reloc, min_gap, closest_stop, stop = res
    assert min_gap > MARGIN and closest_stop > 1e-6, (min_gap, closest_stop)
    sk_check_lloyd(x, init, res)
    tensors = [("x", t32(x)), ("init", t32(init)), ("lloyd_labels", ti64(labels)), ("lloyd_centres", t64(centres)),
               ("lloyd_inertia", t64([inertia])), ("lloyd_iter", ti64([iters]))]
    meta = {"seed": seed, "N": x.shape[0], "d": x.shape[1], "k": init.shape[0], "max_iter": MAX_ITER,
            "tol": repr(TOL), "relocations": reloc, "stop": stop, "numpy": np.__version__}
    size = mg.write_safetensors(os.path.join(DIR, name + ".safetensors"), tensors, meta)
    print("cluster/%-12s %7d bytes  Lloyd %d it (%s), %d relocations, inertia %.6f, margin %.2g, stop %.3g from "
          "its threshold" % (name, size, iters, stop, reloc, inertia, min_gap, closest_stop))


def tol_case(name, seed):
    """Lloyd on 3,000 rows of 3 overlapping clusters (4-d): late iterations
    move a few rows each and the centres by little, so the run ends by the
    shift rule (tol times the mean feature variance, 3.4 here) while labels
    still change."""
    rs = np.random.RandomState(seed)
    N, d, k = 3000, 4, 3
    x, _ = mixture(rs, N, d, k, 1.5)
    for draw in range(100):
        init = x[rs.choice(N, k, replace=False)]
        res = lloyd(x, init)
        if res[7] == "shift" and res[5] > MARGIN and res[6] > 1e-3:
            break
    else:
        raise AssertionError("no run stops by the shift")
    write_lloyd(name, seed, x, init, res)


def nmi_case(name, seed):
    """Labelings with arbitrary int values (negative, gaps) and their NMI:
    a dependent pair, an independent pair, a labeling against all-singleton
    clusters."""
    rs = np.random.RandomState(seed)
    N = 500
    a = rs.randint(0, 7, size=N)
    b = np.where(rs.uniform(size=N) < 0.6, 3 * a - 3, rs.randint(-5, 40, size=N))
    c = rs.randint(-2, 3, size=N)
    d = np.arange(N)[::-1] * 2
    pairs = [("a", "b", a, b), ("a", "c", a, c), ("b", "d", b, d)]
    tensors = [("a", ti64(a)), ("b", ti64(b)), ("c", ti64(c)), ("d", ti64(d))]
    vals = []
    for p, q, u, v in pairs:
        s = nmi(u, v)
        sk_check_nmi(u, v, s)
        tensors.append(("nmi_" + p + q, t64([s])))
        vals.append("%s%s %.6f" % (p, q, s))
    size = mg.write_safetensors(os.path.join(DIR, name + ".safetensors"), tensors,
                                {"seed": seed, "N": N, "numpy": np.__version__})
    print("cluster/%-12s %7d bytes  NMI %s" % (name, size, ", ".join(vals)))


def main():
    os.makedirs(DIR, exist_ok=True)
    print("sklearn cross-checks: %s" % (("on (scikit-learn %s)" % sklearn.__version__) if HAVE_SKLEARN
                                        else "skipped (sklearn not importable)"))
    mixture_case("mix_F32_k10", 11, 600, 32, 10, 0.5)
    mixture_case("mix_F16_k5", 12, 400, 16, 5, 0.5)
    empty_case("lloyd_empty", 13)
    tol_case("lloyd_tol", 15)
    nmi_case("nmi", 14)


if __name__ == "__main__":
    main()
