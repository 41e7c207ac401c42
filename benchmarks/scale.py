"""Scale: fit + explain against the BLAS floor, top-k memory as n grows.

``python benchmarks/scale.py floor``
    ``InfluenceExplainer.fit`` + ``explain`` for a logistic model at
    n = 50,000, d = 200, m = 1,000 test rows, against the products it cannot
    avoid, timed side by side in the same process: the weighted Gram matrix
    ``X^T D X`` (numpy ``X.T @ (X * d)``), the Cholesky factorisation, and the
    ``(m x d)(d x n)`` contraction (numpy ``A @ X.T``). Interleaved, best of
    5 each.

``python benchmarks/scale.py memory [--max-n N] [--n-test M]``
    Peak memory growth of ``InfluenceExplainer.fit`` + ``top_influencers(k=10)``
    as the training set grows, d = 50, each size in a fresh process: the peak
    resident set (VmHWM) is reset through ``/proc/self/clear_refs`` once the
    data and the fitted model exist, and read afterwards. The acceptance case is
    ``--max-n 1000000 --n-test 10000``.

Note ``OPENBLAS_CORETYPE`` (printed) when comparing runs.
"""

import argparse
import os
import subprocess
import sys
import time

import numpy as np
import scipy.linalg as la
from threadpoolctl import threadpool_info


def _environment():
    blas = [f"{i['internal_api']} {i.get('version')} {i.get('architecture')} "
            f"threads={i['num_threads']}" for i in threadpool_info()
            if i["user_api"] == "blas"]
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; "
          f"{os.cpu_count()} cores; BLAS: {'; '.join(blas)}")


def _best(function, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def floor(n=50_000, d=200, m=1_000, seed=0):
    from sklearn.linear_model import LogisticRegression

    from skinfluence import InfluenceExplainer

    _environment()
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) / np.sqrt(d) + rng.normal(size=n) > 0).astype(int)
    X_test, y_test = rng.normal(size=(m, d)), rng.integers(0, 2, size=m)
    model = LogisticRegression(solver="newton-cholesky", tol=1e-8).fit(X, y)

    def ours():
        explainer = InfluenceExplainer(model).fit(X, y)
        explainer.explain(X_test, y_test)

    weights = rng.uniform(0.05, 0.25, size=n)
    A = rng.normal(size=(m, d))
    out = np.empty((m, n))

    def blas_floor():
        G = X.T @ (X * weights[:, None])
        G[np.diag_indices_from(G)] += 1.0
        la.cho_factor(G)
        np.matmul(A, X.T, out=out)

    ours()  # warm-up
    # interleaved, best of 5 each: both sides see the same machine state
    t_ours = t_floor = np.inf
    for _ in range(5):
        t_floor = min(t_floor, _best(blas_floor, 1))
        t_ours = min(t_ours, _best(ours, 1))
    print(f"n={n}, d={d}, m={m}: fit + explain {t_ours:.3f} s, BLAS floor "
          f"{t_floor:.3f} s, ratio {t_ours / t_floor:.2f}")
    # the parts, for the record
    t_gram = _best(lambda: X.T @ (X * weights[:, None]))
    t_contract = _best(lambda: np.matmul(A, X.T, out=out))
    explainer = InfluenceExplainer(model).fit(X, y)
    t_fit = _best(lambda: InfluenceExplainer(model).fit(X, y))
    t_explain = _best(lambda: explainer.explain(X_test, y_test))
    print(f"  parts: fit {t_fit:.3f} s vs X^T D X {t_gram:.3f} s; explain "
          f"{t_explain:.3f} s vs (m x d)(d x n) {t_contract:.3f} s")


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak():
    """Reset the peak resident set to the current one; return it (KiB)."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _status_kib("VmRSS")


def _peak_kib():
    return _status_kib("VmHWM")


def _memory_child(n, n_test, d, k):
    from sklearn.linear_model import LogisticRegression

    from skinfluence import InfluenceExplainer

    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + rng.normal(size=n) > 0).astype(int)
    X_test = rng.normal(size=(n_test, d))
    y_test = rng.integers(0, 2, size=n_test)
    model = LogisticRegression(solver="newton-cholesky").fit(X, y)
    before = _reset_peak()
    start = time.perf_counter()
    explainer = InfluenceExplainer(model).fit(X, y)
    fitted = time.perf_counter()
    top = explainer.top_influencers(X_test, y_test, k=k)
    done = time.perf_counter()
    after = _peak_kib()
    assert top.helpful_indices.shape == (n_test, k)
    print(f"{n:>9d} {n_test:>7d} {X.nbytes / 2**20:9.0f} {(after - before) / 2**10:12.0f}"
          f" {fitted - start:8.2f} {done - fitted:8.2f}", flush=True)


def memory(max_n=1_000_000, n_test=10_000, d=50, k=10):
    _environment()
    print(f"top_influencers(k={k}), d={d}; memory in MiB (growth after the data "
          "and the model exist), times in s")
    print(f"{'n_train':>9s} {'n_test':>7s} {'X (MiB)':>9s} {'peak growth':>12s} "
          f"{'fit':>8s} {'top-k':>8s}", flush=True)
    sizes = [n for n in (10_000, 100_000, 300_000, 1_000_000) if n <= max_n]
    if max_n not in sizes:
        sizes.append(max_n)
    for n in sizes:
        subprocess.run([sys.executable, __file__, "_memory_child", str(n), str(n_test),
                        str(d), str(k)], check=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["floor", "memory", "_memory_child"])
    parser.add_argument("args", nargs="*", type=int)
    parser.add_argument("--max-n", type=int, default=1_000_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    options = parser.parse_args()
    if options.what == "floor":
        floor()
    elif options.what == "memory":
        memory(options.max_n, options.n_test)
    else:
        _memory_child(*options.args)
