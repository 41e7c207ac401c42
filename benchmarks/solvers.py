"""Direct vs conjugate gradients vs LiSSA: time, accuracy and memory.

Part 1 (scaling): random sparse binary logistic problems with growing ``d``;
each solver explains the same 50 test rows; accuracy is the relative error and
the Pearson correlation of the influence matrix against ``solver="direct"``.
Each solver runs at its defaults (LiSSA with only ``random_state`` set).

Part 2 (acceptance): n = 4,000 training rows, d = 30,000 features, 0.3 %
non-zeros, 50 test rows, ``solver="cg"``. Each explainer runs in a fresh
process that loads the pickled data and fitted model, so that its peak
resident memory (``VmHWM``, reset after loading; ``ru_maxrss`` would include
the parent's memory at fork time) minus its resident memory before
``fit``/``explain`` is the memory the explainer added; a second fresh process
measures the Python-level peak with ``tracemalloc``. Correctness is checked
against an independent computation written from scratch in numpy: the
Hessian's bordered dual system (see :func:`independent_influence`), an
(n + 1) x (n + 1) dense solve, with the influence contracted by hand. (A
sparse LU of the augmented KKT system was tried first; SuperLU's fill-in made
it take minutes.)

Run: ``python benchmarks/solvers.py`` (``--quick`` skips d = 30,000 in part 1).
"""

import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings

import numpy as np
import scipy.sparse as sp
from scipy.special import expit
from sklearn.linear_model import LogisticRegression

from skinfluence import InfluenceExplainer

N_TEST = 50


def sparse_logistic(n, d, density, seed):
    """Random sparse rows with labels drawn from a sparse-ish true model."""
    rng = np.random.RandomState(seed)
    X = sp.random(n + N_TEST, d, density=density, format="csr", random_state=rng,
                  data_rvs=rng.standard_normal)
    w = rng.standard_normal(d) * 2.0 / np.sqrt(density * d)
    y = (rng.uniform(size=n + N_TEST) < expit(X @ w)).astype(int)
    return X[:n], y[:n], X[n:], y[n:]


def fit_model(X, y):
    return LogisticRegression(C=1.0, tol=1e-8, max_iter=5000).fit(X, y)


def run_solver(model, X, y, X_test, y_test, solver, **kwargs):
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explainer = InfluenceExplainer(model, solver=solver, **kwargs).fit(X, y)
        influence = explainer.explain(X_test, y_test)
    elapsed = time.perf_counter() - start
    notes = sorted({type(w.message).__name__ for w in caught})
    return influence, elapsed, explainer.solver_.diagnostics_, notes


def compare(a, ref):
    rel = np.linalg.norm(a - ref) / np.linalg.norm(ref)
    r = np.corrcoef(a.ravel(), ref.ravel())[0, 1]
    return rel, r


def scaling(dims):
    print("Part 1: sparse logistic, n = 1,000, 30 non-zeros per row on average, "
          f"{N_TEST} test rows")
    header = (f"{'d':>7} {'solver':>7} {'time s':>8} {'rel. error':>11} "
              f"{'Pearson':>9}  details")
    print(header)
    print("-" * len(header))
    n = 1000
    for d in dims:
        X, y, X_test, y_test = sparse_logistic(n, d, 30.0 / d, seed=d)
        model = fit_model(X, y)
        ref, t_ref, info, _ = run_solver(model, X, y, X_test, y_test, "direct")
        print(f"{d:>7} {'direct':>7} {t_ref:>8.2f} {'(ref)':>11} {'(ref)':>9}  "
              f"form={info['form']} size={info['size']}")
        for solver, kwargs in (("cg", {}), ("lissa", {"random_state": 0})):
            got, t, info, notes = run_solver(model, X, y, X_test, y_test, solver,
                                             **kwargs)
            rel, r = compare(got, ref)
            if solver == "cg":
                detail = f"iters={info['n_iter']} residual={info['residual']:.1e}"
            else:
                detail = (f"depth={info['depth']} scale={info['scale']:.3g} "
                          f"converged={bool(info['converged'].all())}")
            if notes:
                detail += " warned: " + ",".join(notes)
            print(f"{d:>7} {solver:>7} {t:>8.2f} {rel:>11.2e} {r:>9.6f}  {detail}")
    print()


# ------------------------------------------------------------ acceptance case
def _status_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak():
    """Reset the kernel's peak-RSS mark (Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def child(path, solver, mode):
    """Fresh process: load data and model, explain, report time and memory."""
    with open(path, "rb") as fh:
        X, y, X_test, y_test, model = pickle.load(fh)
    warnings.simplefilter("ignore")
    # ru_maxrss would include the parent's RSS at fork time (Linux keeps it
    # across exec), so use this process's own peak, VmHWM, reset after loading
    reset = _reset_peak()
    before = _status_kib("VmRSS")
    if mode == "tracemalloc":
        tracemalloc.start()
    start = time.perf_counter()
    explainer = InfluenceExplainer(model, solver=solver).fit(X, y)
    influence = explainer.explain(X_test, y_test)
    elapsed = time.perf_counter() - start
    out = {"time": elapsed}
    if mode == "tracemalloc":
        out["tracemalloc_peak_mib"] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    else:
        peak = _status_kib("VmHWM") if reset else resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        out["rss_before_mib"] = before / 1024
        out["peak_growth_mib"] = (peak - before) / 1024
        info = explainer.solver_.diagnostics_
        out["diagnostics"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                              for k, v in info.items()
                              if k not in ("residuals", "converged")}
        out["converged"] = bool(np.all(info.get("converged", True)))
        np.save(path + f".{solver}.npy", influence)
    print(json.dumps(out))


def spawn(path, solver, mode):
    result = subprocess.run(
        [sys.executable, __file__, "--child", path, solver, mode],
        check=True, capture_output=True, text=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def independent_influence(model, X, y, X_test, y_test):
    """Influence from scratch: the bordered dual system, dense ``np.linalg.solve``.

    With ``A = sqrt(D) X`` (n x d, sparse), ``c = sqrt(D) 1`` and the Hessian
    ``[[I + A^T A, A^T c], [c^T A, c^T c]]`` (lbfgs: the intercept is not
    penalised), ``H [u_w; u_b] = [b_w; b_b]`` is solved through
    ``z = A u_w + c u_b``:

        [[I + A A^T, -c], [c^T, 0]] [z; u_b] = [A b_w; b_b],   u_w = b_w - A^T z,

        an (n + 1) x (n + 1) dense system.
    """
    C = model.C
    n, d = X.shape
    w, b = model.coef_.ravel(), model.intercept_[0]
    p = expit(X @ w + b)
    sqrt_d = np.sqrt(C * p * (1 - p))
    A = sp.diags(sqrt_d) @ X
    start = time.perf_counter()
    q = expit(X_test @ w + b) - y_test  # test-loss derivative
    B_w = (X_test.multiply(q[:, None])).T.toarray()  # (d, m)
    B_b = q[None, :]
    K = np.zeros((n + 1, n + 1))
    K[:n, :n] = (A @ A.T).toarray()
    K[np.arange(n), np.arange(n)] += 1.0
    K[:n, n] = -sqrt_d
    K[n, :n] = sqrt_d
    sol = np.linalg.solve(K, np.vstack([np.asarray(A @ B_w), B_b]))
    z, u_b = sol[:n], sol[n:]
    u_w = B_w - np.asarray(A.T @ z)
    elapsed = time.perf_counter() - start
    removal = C * (p - y)  # gradient of row i's term is removal_i * [x_i, 1]
    return (removal[:, None] * (np.asarray(X @ u_w) + u_b)).T, elapsed


def acceptance():
    n, d, density = 4000, 30_000, 0.003
    print(f"Part 2 (acceptance): sparse logistic n = {n:,}, d = {d:,}, "
          f"{density:.1%} non-zeros, {N_TEST} test rows")
    X, y, X_test, y_test = sparse_logistic(n, d, density, seed=0)
    model = fit_model(X, y)
    print(f"  X: {X.nnz:,} stored values ({X.data.nbytes / 2**20:.1f} MiB of data); "
          f"model fitted by lbfgs in {model.n_iter_[0]} iterations")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "problem.pkl")
        with open(path, "wb") as fh:
            pickle.dump((X, y, X_test, y_test, model), fh)
        results = {}
        for solver in ("cg", "direct"):
            results[solver] = spawn(path, solver, "rss")
            results[solver]["tracemalloc_peak_mib"] = spawn(
                path, solver, "tracemalloc")["tracemalloc_peak_mib"]
            results[solver]["influence"] = np.load(path + f".{solver}.npy")
    truth, t_truth = independent_influence(model, X, y, X_test, y_test)
    header = (f"  {'method':<34} {'time s':>7} {'rel. err vs ref':>15} "
              f"{'peak RSS growth':>16} {'tracemalloc peak':>17}")
    print(header)
    print("  " + "-" * (len(header) - 2))
    for solver, res in results.items():
        rel, r = compare(res["influence"], truth)
        info = res["diagnostics"]
        label = (f"explain(solver='cg'), {info['n_iter']} iters" if solver == "cg"
                 else f"explain(solver='direct'), {info['form']} {info['size']}")
        print(f"  {label:<34} {res['time']:>7.2f} {rel:>15.2e} "
              f"{res['peak_growth_mib']:>12.0f} MiB {res['tracemalloc_peak_mib']:>13.0f} MiB")
    print(f"  {'independent bordered dual solve':<34} {t_truth:>7.2f} {'(truth)':>15}")
    cg = results["cg"]
    rel, r = compare(cg["influence"], truth)
    ok = rel < 1e-5 and cg["peak_growth_mib"] < 1024 and cg["converged"]
    print(f"  cg: Pearson vs truth {r:.10f}, converged={cg['converged']}, "
          f"residual={cg['diagnostics']['residual']:.1e}; acceptance "
          f"(rel. error < 1e-5, peak growth < 1 GiB): {'PASS' if ok else 'FAIL'}")


def main():
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs, OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '(not set)')}")
    print()
    quick = "--quick" in sys.argv
    scaling([1000, 10_000] if quick else [1000, 10_000, 30_000])
    acceptance()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        main()
