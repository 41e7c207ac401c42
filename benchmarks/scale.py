"""Scale: fit + explain and top-k against the BLAS floor, top-k memory as n grows.

``python benchmarks/scale.py fit [--quick]``
    ``InfluenceExplainer.fit`` + ``explain`` (``m`` = 200 test rows) for
    LogisticRegression and Ridge over n in {1e3, 1e4, 1e5, 1e6} and d in
    {10, 100, 1000} (cells with n * d > 1e8 are skipped: the data alone would
    be 8 GB), against the BLAS floor timed in the same process, interleaved
    with it: the weighted Gram matrix ``X^T D X`` (the fastest of numpy's
    GEMM ``X.T @ (X * w)``, numpy's ``S.T @ S`` (a syrk) and scipy's blocked
    ``dsyrk``), its Cholesky factorisation (scipy) and the ``(m x d)(d x n)``
    contraction (numpy ``A @ X.T``), each part at one BLAS thread and at the
    default count, the faster kept. Medians of repeats; every timed call
    follows an untimed call of the same function (see ``_time``). Target: ratio <= 1.2
    where n * d >= 1e6, and under 2 ms of overhead (fit + explain - floor)
    below.

``python benchmarks/scale.py topk [--quick]``
    ``top_influencers(k=10)`` of a logistic model at (n, d, m) = (200k, 50,
    5k) and (1M, 50, 10k), float64 and float32, against the same blocked
    product alone (``A @ G_b^T`` over the same 2048-row blocks of removal
    gradients, precomputed; one caller with the default BLAS threads and two
    Python threads with one BLAS thread each, the faster kept), interleaved,
    medians. Also: the selection with the bound disabled (every tile
    computed), the share of the product the bound lets it compute, the
    sort-based selection of explain blocks for reference, and a check that
    the indices equal those of ``argsort(explain)``. Target: ratio <= 1.5.

``python benchmarks/scale.py memory [--max-n N] [--n-test M]``
    Peak memory growth of ``InfluenceExplainer.fit`` + ``top_influencers(k=10)``
    as the training set grows, d = 50, each size in a fresh process: the peak
    resident set (VmHWM) is reset through ``/proc/self/clear_refs`` once the
    data and the fitted model exist, and read afterwards. The acceptance case is
    ``--max-n 1000000 --n-test 10000``.

``OPENBLAS_CORETYPE`` and the BLAS libraries numpy and scipy bundle are printed
first: numpy's matmul runs on numpy's OpenBLAS, ``scipy.linalg`` (Cholesky,
``dsyrk``, triangular solves) on scipy's.
"""

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import scipy.linalg as la
from scipy.linalg import blas
from threadpoolctl import ThreadpoolController, threadpool_info, threadpool_limits


def _environment():
    blas_libs = [f"{i['prefix']} {i.get('version')} {i.get('architecture')} "
                 f"threads={i['num_threads']}" for i in threadpool_info()
                 if i["user_api"] == "blas"]
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; "
          f"{os.cpu_count()} cores; load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}; BLAS: "
          f"{'; '.join(blas_libs)}", flush=True)


def _time(function, warm=False):
    """Seconds of one call; with ``warm``, of a second call right after an
    untimed first one.

    A multi-threaded call into one of the two bundled OpenBLAS libraries
    leaves its threads spinning for up to about 0.1 s, and a call into the
    other one started meanwhile ran up to 2.3x slower (a scipy dsyrk of
    1,000 x 1,000 after a numpy product: 31 ms, alone 14 ms): interleaved
    without the untimed call, each measurement would carry the cost of the
    one before it (a pause instead leaves the caches and the cores cold).
    """
    if warm:
        function()
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def _interleaved(functions, repeat, budget=None):
    """Median time of each function, run round-robin ``repeat`` times (fewer
    when one round takes over ``budget`` seconds, at least 3)."""
    times = {name: [] for name in functions}
    for round_ in range(repeat):
        start = time.perf_counter()
        for name, function in functions.items():
            times[name].append(_time(function))
        if budget and round_ >= 2 and (time.perf_counter() - start) * (round_ + 1) > budget:
            break
    return {name: float(np.median(values)) for name, values in times.items()}


# ------------------------------------------------------------------ fit grid
def _gram_variants(X, w):
    def gemm():
        return X.T @ (X * w[:, None])

    def numpy_syrk():
        S = X * np.sqrt(w)[:, None]
        return S.T @ S

    def scipy_syrk():
        n, p = X.shape
        G = np.zeros((p, p), order="F")
        step = max(256, 2**22 // (8 * p))
        for start in range(0, n, step):
            S = X[start : start + step] * np.sqrt(w[start : start + step])[:, None]
            G = blas.dsyrk(1.0, S.T, beta=1.0, c=G, trans=0, lower=0, overwrite_c=1)
        return G

    return {"numpy gemm": gemm, "numpy syrk": numpy_syrk, "scipy dsyrk": scipy_syrk}


def _fit_cell(kind, n, d, m, seed=0, rounds=15, budget=60.0, threads=None):
    from sklearn.linear_model import LogisticRegression, Ridge

    from skinfluence import InfluenceExplainer

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    signal = X @ rng.normal(size=d) / np.sqrt(d)
    X_test = rng.normal(size=(m, d))
    if kind == "logistic":
        y = (signal + rng.normal(size=n) > 0).astype(int)
        y_test = rng.integers(0, 2, size=m)
        model = LogisticRegression(solver="newton-cholesky", tol=1e-8,
                                   max_iter=200).fit(X, y)
    else:
        y = signal + rng.normal(size=n)
        y_test = rng.normal(size=m)
        model = Ridge(alpha=1.0).fit(X, y)

    def ours():
        InfluenceExplainer(model).fit(X, y).explain(X_test, y_test)

    weights = rng.uniform(0.05, 0.25, size=n)
    A = rng.normal(size=(m, d))
    G = X.T @ (X * weights[:, None])
    G[np.diag_indices_from(G)] += 1.0
    grams = _gram_variants(X, weights)
    parts = {"gram": grams,
             "cholesky": {"scipy": lambda: la.cho_factor(G, lower=True,
                                                         check_finite=False)},
             # the result is a new array, as explain's is
             "contraction": {"numpy": lambda: A @ X.T}}
    ours()  # warm-up (page faults, caches)
    form = InfluenceExplainer(model).fit(X, y).solver_.diagnostics_["form"]
    thread_counts = (None,) if threads == 1 else (1, 2)
    samples = {"ours": []}
    start = time.perf_counter()
    for round_ in range(rounds):
        samples["ours"].append(_time(ours, warm=True))
        for part, variants in parts.items():
            for name, function in variants.items():
                for count in thread_counts:
                    samples.setdefault((part, name, count), []).append(
                        _time(partial(_limited, function, count), warm=True))
        if round_ >= 2 and time.perf_counter() - start > budget:
            break
    # each part: the variant (and thread count) with the lowest median; the
    # floor of a round is the sum of those variants' times in that round
    medians = {key: float(np.median(values)) for key, values in samples.items()}
    chosen = [min((key for key in samples if key[0] == part), key=medians.get)
              for part in parts]
    floors = np.sum([samples[key] for key in chosen], axis=0)
    ratios = np.asarray(samples["ours"]) / floors
    return (medians["ours"], float(np.median(floors)), float(np.median(ratios)),
            medians, chosen, len(ratios), form)


_CONTROLLER = None


def _limited(function, threads):
    global _CONTROLLER
    if threads is None:  # under the caller's limit already
        return function()
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    with _CONTROLLER.limit(limits=threads, user_api="blas"):
        return function()


def fit_grid(quick=False, m=200, threads=None):
    _environment()
    print(f"fit + explain ({m} test rows) against Gram + Cholesky + contraction; "
          f"BLAS threads: {threads or 'default'}; times in ms (medians); ratio = "
          "median over rounds of ours / floor of the same round", flush=True)
    print(f"{'model':>8s} {'n':>8s} {'d':>5s} {'ours':>9s} {'floor':>9s} {'ratio':>6s} "
          f"{'over':>8s} {'target':>7s} {'rounds':>6s} {'form':>7s}  floor: Gram "
          "(numpy gemm / numpy syrk / scipy dsyrk, ms) and the variants kept",
          flush=True)
    sizes = [(n, d) for n in (1_000, 10_000, 100_000, 1_000_000)
             for d in (10, 100, 1000) if n * d <= 10**8]
    if quick:
        sizes = [(n, d) for n, d in sizes if n * d <= 10**7]
    for kind in ("logistic", "ridge"):
        for n, d in sizes:
            with threadpool_limits(threads) if threads else _nothing():
                ours, floor, ratio, medians, chosen, rounds, form = _fit_cell(
                    kind, n, d, m, threads=threads)
            large = n * d >= 10**6
            ok = ratio <= 1.2 if large else ours - floor < 2e-3
            gram = " / ".join(
                f"{min(v for k, v in medians.items() if k[:2] == ('gram', name)) * 1e3:.2f}"
                for name in ("numpy gemm", "numpy syrk", "scipy dsyrk"))
            kept = ", ".join(f"{name} x{count or 1}" for _, name, count in chosen)
            print(f"{kind:>8s} {n:>8d} {d:>5d} {ours * 1e3:9.2f} {floor * 1e3:9.2f} "
                  f"{ratio:6.2f} {(ours - floor) * 1e3:8.2f} {'ok' if ok else 'MISS':>7s} "
                  f"{rounds:6d} {form:>7s}  {gram}; {kept}", flush=True)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


# --------------------------------------------------------------------- top-k
def _topk_case(n, d, m, k=10, seed=0, repeat=5, reference=True):
    from sklearn.linear_model import LogisticRegression

    from skinfluence import InfluenceExplainer
    from skinfluence._influence import (influence_directions, removal_gradients,
                                        stream_top_k)

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X @ rng.normal(size=d) / np.sqrt(d) + rng.normal(size=n) > 0).astype(int)
    X_test, y_test = rng.normal(size=(m, d)), rng.integers(0, 2, size=m)
    model = LogisticRegression(solver="newton-cholesky", tol=1e-8).fit(X, y)
    explainer = InfluenceExplainer(model).fit(X, y)
    fitted = explainer.influence_
    family, R = fitted.family, fitted.removal_residuals
    Y, Z = fitted.test_targets(X_test, y_test)
    Q = fitted.test_gradient(Y, Z)
    U = fitted.solver.solve(fitted.problem.row_gradients(X_test, Q))
    print(f"n={n}, d={d}, m={m}, k={k}: product {2 * n * m * (d + 1) / 1e9:.0f} GFlop",
          flush=True)
    for dtype in (np.float64, np.float32):
        A = influence_directions(U, None, dtype)
        G = removal_gradients(family, X, R, None, dtype)
        step = 2048
        blocks = [slice(s, min(s + step, n)) for s in range(0, n, step)]
        buffers = [np.empty((m, step), dtype) for _ in range(2)]

        def product_one_caller():
            for b in blocks:
                np.matmul(A, G[b].T, out=buffers[0][:, : b.stop - b.start])

        def product_two_threads():
            def work(t):
                for b in blocks[t::2]:
                    np.matmul(A, G[b].T, out=buffers[t][:, : b.stop - b.start])
            with threadpool_limits(1), ThreadPoolExecutor(2) as pool:
                list(pool.map(work, range(2)))

        no_skip = []

        def ours_no_skip():
            no_skip.append(stream_top_k(family, A, X, R, None, k, skip=False))

        skipped = []

        def ours_skip():
            skipped.append(stream_top_k(family, A, X, R, None, k))

        functions = {
            "product, one caller": product_one_caller,
            "product, two threads": product_two_threads,
            "top_influencers": lambda: explainer.top_influencers(X_test, y_test, k=k,
                                                                 dtype=dtype),
            "  same, no bound": ours_no_skip,
        }
        def by_sorting():
            out = {f"{side}_{what}": np.empty((m, k), np.intp if what == "indices"
                                             else dtype)
                   for side in ("helpful", "harmful") for what in ("indices", "values")}
            fitted._top_by_sorting(X_test, fitted.test_gradient(Y, Z), k, None,
                                   np.dtype(dtype), out)
        times = _interleaved(functions, repeat, budget=600)
        if reference:  # slow: once, after the interleaved rounds
            times["sort explain blocks"] = _time(by_sorting)
        ours_skip()
        floor = min(times["product, one caller"], times["product, two threads"])
        print(f"  {np.dtype(dtype).name}: floor {floor:.3f} s (one caller "
              f"{times['product, one caller']:.3f}, two threads "
              f"{times['product, two threads']:.3f})", flush=True)
        for name in ("top_influencers", "  same, no bound", "sort explain blocks"):
            if name in times:
                print(f"    {name:<22s} {times[name]:8.3f} s  ratio "
                      f"{times[name] / floor:5.2f}", flush=True)
        print(f"    bound: {skipped[-1].computed / (n * m):.1%} of the product computed"
              " (the rest skipped)", flush=True)
        # exactness: indices equal argsort of explain on the first test rows
        check = slice(0, min(m, 200))
        influence = explainer.explain(X_test[check], y_test[check], dtype=dtype)
        top = explainer.top_influencers(X_test[check], y_test[check], k=k, dtype=dtype)
        helpful = np.argsort(-influence, axis=1, kind="stable")[:, :k]
        harmful = np.argsort(influence, axis=1, kind="stable")[:, :k]
        same = (np.array_equal(top.helpful_indices, helpful)
                and np.array_equal(top.harmful_indices, harmful))
        values = np.concatenate([np.take_along_axis(influence, helpful, 1),
                                 np.take_along_axis(influence, harmful, 1)])
        mine = np.concatenate([top.helpful_values, top.harmful_values])
        gap = np.abs(mine - values).max() / np.abs(values).max()
        print(f"    {check.stop} test rows vs argsort(explain): indices "
              f"{'identical' if same else 'DIFFER'}, values within {gap:.1e} "
              "of the largest", flush=True)


def topk(quick=False):
    _environment()
    sizes = [(200_000, 50, 5_000), (1_000_000, 50, 10_000)]
    if quick:
        sizes = [(50_000, 50, 1_000)]
    for n, d, m in sizes:
        _topk_case(n, d, m, repeat=5 if n <= 200_000 else 3,
                   reference=n <= 200_000)


# -------------------------------------------------------------------- memory
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
    parser.add_argument("what", choices=["fit", "topk", "memory", "_memory_child"])
    parser.add_argument("args", nargs="*", type=int)
    parser.add_argument("--max-n", type=int, default=1_000_000)
    parser.add_argument("--n-test", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true",
                        help="small sizes only (a smoke run)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS threads for both sides (default: the library's)")
    options = parser.parse_args()
    if options.what == "fit":
        fit_grid(options.quick, threads=options.threads)
    elif options.what == "topk":
        topk(options.quick)
    elif options.what == "memory":
        memory(options.max_n, options.n_test)
    else:
        _memory_child(*options.args)
