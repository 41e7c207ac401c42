"""Solvers apply the inverse Hessian to a block of vectors.

They receive a Hessian system (a matrix, a factor, a Hessian-vector product)
and know nothing about estimators. :func:`make_solver` builds one by name.
"""

import functools
import inspect

from ._cg import ConjugateGradientSolver
from ._direct import DirectSolver, SingularHessianError
from ._lissa import LissaDivergenceError, LissaSolver

__all__ = [
    "ConjugateGradientSolver",
    "DirectSolver",
    "LissaDivergenceError",
    "LissaSolver",
    "SingularHessianError",
    "SOLVERS",
    "make_solver",
]

#: Solver classes by the name the explainer's ``solver`` parameter takes.
SOLVERS = {
    "direct": DirectSolver,
    "cg": ConjugateGradientSolver,
    "lissa": LissaSolver,
}


@functools.lru_cache(maxsize=None)
def _options(cls):
    """The constructor parameters of a solver class (read once)."""
    return list(inspect.signature(cls).parameters)


def make_solver(name, *, damping=0.0, pinv_rtol=None, tol=1e-8, max_iter=None,
                random_state=None, **solver_params):
    """Build an (unfitted) solver by name.

    Parameters
    ----------
    name : {"direct", "cg", "lissa"}
    damping : float, default=0.0
        Added to the Hessian's diagonal (all solvers).
    pinv_rtol : float or None, default=None
        Pseudo-inverse cut-off of the family ("direct" only; the iterative
        solvers handle a consistent singular system without it).
    tol : float, default=1e-8
        Relative residual of "cg". LiSSA keeps its own ``tol`` (pass it in
        ``solver_params``).
    max_iter : int or None, default=None
        Iterations of "cg", ``max_depth`` of "lissa" (None: their defaults).
    random_state : int, RandomState instance or None, default=None
        Seeds "lissa".
    **solver_params
        Further options of the solver class, for example ``scale``, ``depth``,
        ``repeats``, ``batch_size`` for "lissa" or ``preconditioner`` for "cg";
        they override the arguments above.

    Returns
    -------
    solver : DirectSolver, ConjugateGradientSolver or LissaSolver
    """
    if name not in SOLVERS:
        raise ValueError(
            f"Unknown solver {name!r}; choose one of {sorted(SOLVERS)}."
        )
    cls = SOLVERS[name]
    if name == "direct":
        params = {"damping": damping, "pinv_rtol": pinv_rtol}
    elif name == "cg":
        params = {"damping": damping, "tol": tol, "max_iter": max_iter}
    else:
        params = {"damping": damping, "random_state": random_state}
        if max_iter is not None:
            params["max_depth"] = max_iter
    valid = _options(cls)
    unknown = sorted(set(solver_params) - set(valid))
    if unknown:
        raise ValueError(
            f"solver_params {unknown} are not options of solver={name!r} "
            f"({cls.__name__}); its options are {valid}."
        )
    params.update(solver_params)
    return cls(**params)
