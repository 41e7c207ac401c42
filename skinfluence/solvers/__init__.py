"""Solvers apply the inverse Hessian to a block of vectors.

They receive a Hessian system (a matrix, a factor, a Hessian-vector product)
and know nothing about estimators.
"""

from ._direct import DirectSolver, SingularHessianError

__all__ = ["DirectSolver", "SingularHessianError"]
