"""Out of core: fit + top_influencers on training rows that live on disk.

``python benchmarks/scale_out.py [--rows 10000000] [--features 100]
[--test-rows 1000] [--chunk-rows 125000] [--workers 2] [--memory-limit 2GiB]
[--directory DIR] [--check]``

1. Writes ``rows x features`` float64 training rows (``--rows 10000000
   --features 100``: 8 GB) and their labels as ``.npy`` files, chunk by chunk
   (zarr is not installed here; a ``.npy`` file read by offset is the same
   access pattern), after checking the free disk space with ``df``: a disk
   without 1.25x the data size free scales ``--rows`` down and says so. The
   labels follow a logistic model, ``P(y = 1) = sigmoid(x . w / sqrt(d))``.
2. Starts a ``dask.distributed.LocalCluster`` of ``--workers`` processes,
   one thread each, with a memory limit per worker well below the data size;
   the dask array's chunks are read by the workers from the file
   (``np.fromfile`` at the chunk's offset: nothing is memory-mapped).
3. Times one streaming pass over the data (``X.sum(axis=0)``), the
   reference for every ratio.
4. Fits ``LogisticRegression(C=1)`` by the documented route for data that
   does not fit in memory: scikit-learn's ``newton-cholesky`` on a random
   200,000-row sample, then Newton's method on the full dask array
   (:func:`skinfluence.exact.newton_minimize`, every pass a dask reduction)
   to a relative gradient norm of 1e-10; the fitted coefficients are set on
   the estimator.
5. Times ``InfluenceExplainer(model).fit(X, y)`` and
   ``top_influencers(X_test, y_test, k=10)`` for ``--test-rows`` test rows,
   and reads each worker's peak resident memory (``VmHWM``, reset after
   start-up) and the client's.

``--check`` (small ``--rows`` only) also fits the in-memory explainer and
compares the top-k indices and values. Note ``OPENBLAS_CORETYPE`` (printed).
"""

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _status_kib(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    return _status_kib("VmRSS")


def _peak_mib():
    return _status_kib("VmHWM") / 1024


def _write(directory, n, d, chunk, seed=0):
    """Write X (n, d) and y (n,) as .npy, chunk by chunk; return the paths."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    X_path, y_path = directory / "X.npy", directory / "y.npy"
    X = np.lib.format.open_memmap(X_path, mode="w+", dtype=np.float64, shape=(n, d))
    y = np.lib.format.open_memmap(y_path, mode="w+", dtype=np.int64, shape=(n,))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        block = rng.normal(size=(stop - start, d))
        X[start:stop] = block
        p = 1.0 / (1.0 + np.exp(-(block @ w) / np.sqrt(d)))
        y[start:stop] = rng.random(stop - start) < p
    X.flush()
    y.flush()
    offset = X.offset
    del X, y
    return X_path, y_path, offset, w


def _read_rows(path, offset, d, start, stop):
    """Rows ``start:stop`` of the .npy file, read (not mapped) by a worker."""
    with open(path, "rb") as file:
        file.seek(offset + 8 * d * start)
        return np.fromfile(file, dtype=np.float64, count=(stop - start) * d).reshape(
            stop - start, d)


def _dask_rows(path, offset, n, d, chunk):
    import dask
    import dask.array as da

    blocks = [da.from_delayed(dask.delayed(_read_rows, pure=True)(
        str(path), offset, d, s, min(s + chunk, n)), shape=(min(s + chunk, n) - s, d),
        dtype=np.float64) for s in range(0, n, chunk)]
    return da.concatenate(blocks)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--test-rows", type=int, default=1000)
    parser.add_argument("--chunk-rows", type=int, default=125_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="2GiB")
    parser.add_argument("--directory", default=None)
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the data files")
    options = parser.parse_args()

    import dask
    import distributed
    from sklearn.linear_model import LogisticRegression

    from skinfluence import InfluenceExplainer
    from skinfluence.exact import newton_minimize
    from skinfluence.families import family_for

    n, d, chunk = options.rows, options.features, options.chunk_rows
    directory = Path(options.directory or tempfile.mkdtemp(prefix="scale_out_"))
    directory.mkdir(parents=True, exist_ok=True)
    need = 8 * n * d + 8 * n
    free = shutil.disk_usage(directory).free
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; "
          f"{os.cpu_count()} cores; load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}; dask "
          f"{dask.__version__}; free disk {free / 2**30:.1f} GiB", flush=True)
    if 1.25 * need > free:
        n_fit = int(free / 1.25 / (8 * d + 8))
        print(f"disk: {need / 2**30:.1f} GiB needed, {free / 2**30:.1f} GiB free: "
              f"scaling down from {n:,} to {n_fit:,} rows", flush=True)
        n = n_fit
    start = time.perf_counter()
    X_path, y_path, offset, _ = _write(directory, n, d, chunk)
    print(f"data: {n:,} x {d} float64 = {8 * n * d / 1e9:.2f} GB on disk, written in "
          f"{time.perf_counter() - start:.1f} s", flush=True)
    y = np.load(y_path)
    rng = np.random.default_rng(1)
    X_test = rng.normal(size=(options.test_rows, d))
    y_test = rng.integers(0, 2, size=options.test_rows)

    with distributed.LocalCluster(n_workers=options.workers, threads_per_worker=1,
                                  processes=True, memory_limit=options.memory_limit,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        limit = cluster.workers[next(iter(cluster.workers))].memory_manager.memory_limit \
            if hasattr(cluster.workers[next(iter(cluster.workers))], "memory_manager") \
            else None
        X = _dask_rows(X_path, offset, n, d, chunk)
        print(f"cluster: {options.workers} worker processes x 1 thread, memory limit "
              f"{options.memory_limit} each (data {8 * n * d / 2**30:.2f} GiB); "
              f"{len(X.chunks[0])} chunks of {chunk:,} rows", flush=True)

        start = time.perf_counter()
        X.sum(axis=0).compute()
        one_pass = time.perf_counter() - start
        print(f"one streaming pass (X.sum(axis=0)): {one_pass:.2f} s "
              f"({8 * n * d / one_pass / 1e9:.2f} GB/s)", flush=True)

        # the model: a sample fit, then Newton on all rows through dask
        start = time.perf_counter()
        sample = np.sort(rng.choice(n, size=min(n, 200_000), replace=False))
        X_sample = np.load(X_path, mmap_mode="r")[sample]
        model = LogisticRegression(solver="newton-cholesky", tol=1e-8).fit(
            X_sample, y[sample])
        theta, info = newton_minimize(family_for(model), X, y, tol=1e-10)
        model.coef_ = theta[:d].reshape(1, d).copy()
        model.intercept_ = theta[d:].copy()
        fit_model = time.perf_counter() - start
        print(f"model: sample fit + {info['n_iter']} Newton steps on all rows in "
              f"{fit_model:.1f} s ({fit_model / one_pass:.1f} passes); relative "
              f"gradient norm {info['relative_gradient_norm']:.1e}", flush=True)

        client.run(_reset_peak)
        client_before = _reset_peak()
        start = time.perf_counter()
        explainer = InfluenceExplainer(model).fit(X, y)
        fitted = time.perf_counter()
        top = explainer.top_influencers(X_test, y_test, k=10)
        done = time.perf_counter()
        peaks = client.run(_peak_mib)
        client_peak = _peak_mib()
        t_fit, t_top = fitted - start, done - fitted
        print(f"InfluenceExplainer.fit: {t_fit:.1f} s = {t_fit / one_pass:.1f} passes "
              f"(fit gap {explainer.fit_gap_:.1e}, "
              f"{explainer.solver_.diagnostics_['form']})",
              flush=True)
        print(f"top_influencers({options.test_rows} test rows, k=10): {t_top:.1f} s = "
              f"{t_top / one_pass:.1f} passes "
              f"({2 * n * options.test_rows * (d + 1) / t_top / 1e9:.0f} GFlop/s)",
              flush=True)
        print(f"fit + top-k: {t_fit + t_top:.1f} s = {(t_fit + t_top) / one_pass:.1f} "
              "passes", flush=True)
        print("peak resident memory per worker (MiB): "
              + ", ".join(f"{peak:.0f}" for peak in peaks.values())
              + f"; client {client_peak:.0f} "
              f"(grew {client_peak - client_before / 1024:.0f})"
              + (f"; limit {limit / 2**20:.0f}" if limit else ""), flush=True)
        if options.check:
            X_memory = np.load(X_path)
            local = InfluenceExplainer(model).fit(X_memory, y)
            expected = local.top_influencers(X_test, y_test, k=10)
            same = all(np.array_equal(top[key], expected[key]) for key in
                       ("helpful_indices", "harmful_indices"))
            gap = max(np.abs(top[key] - expected[key]).max() / np.abs(expected[key]).max()
                      for key in ("helpful_values", "harmful_values"))
            print(f"check against the in-memory explainer: indices "
                  f"{'identical' if same else 'DIFFER'}, values within {gap:.1e}",
                  flush=True)
    if not options.keep:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
