"""Progress of long work: one line on stderr now and then, when ``verbose``.

Every long loop of the package (refits, Newton leave-one-out, subset models,
Shapley permutations, chunks of explain and top-k) reports through
:class:`Progress`: what is done out of how much, the rate and the time left,
at most about once every ``interval`` seconds (and once at the end). The
convention is scikit-learn's ``verbose``: 0 is silent, 1 reports, and more
reports more often.
"""

import sys
import time
import warnings

__all__ = ["Progress", "run_tasks", "LONG_SECONDS"]

#: estimated seconds above which a silent run the user did not ask for row by
#: row says what it will cost (after its first finished piece)
LONG_SECONDS = 60.0


class Progress:
    """Report ``done / total`` with the rate and the time left.

    Parameters
    ----------
    total : int
        Units of work (rows, models, permutations, chunks).
    what : str
        What is done, e.g. ``"leave-one-out refits"``.
    verbose : int
        0: silent. 1: a first line after 2 s (with the time left), then about
        every 10 s. 2 or more: every second.
    unit : str, default="rows"
    notice : str or None, default=None
        When given and ``verbose`` is 0: after the first update, if the run
        looks like it will take more than ``LONG_SECONDS``, a ``UserWarning``
        with the estimate and this advice.
    """

    def __init__(self, total, what, verbose=0, unit="rows", notice=None):
        self.total, self.what, self.unit = int(total), what, unit
        self.notice = notice
        self.verbose = int(verbose or 0)
        self.interval = 10.0 if self.verbose == 1 else 1.0
        self.done = 0
        self.start = time.perf_counter()
        # the first report comes early, so a long run says what it will cost
        self.next = self.start + (2.0 if self.verbose == 1 else self.interval)

    def update(self, n=1):
        """Count ``n`` more units done; report if it is time."""
        self.done += int(n)
        if not self.verbose:
            if self.notice is not None and self.done:
                self._warn_if_long(time.perf_counter())
            return
        now = time.perf_counter()
        if now >= self.next or self.done >= self.total:
            self.next = now + self.interval
            self._report(now)

    def _warn_if_long(self, now):
        notice, self.notice = self.notice, None  # once
        estimate = (now - self.start) * self.total / self.done
        if estimate > LONG_SECONDS and self.done < self.total:
            warnings.warn(
                f"{self.what} over {self.total:,} {self.unit} will take about "
                f"{estimate:,.0f} s in all (from the first {self.done:,}). {notice}",
                UserWarning, stacklevel=2)

    def _report(self, now):
        elapsed = now - self.start
        rate = self.done / elapsed if elapsed > 0 else float("inf")
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        print(f"[skinfluence] {self.what}: {self.done}/{self.total} {self.unit}, "
              f"{rate:.3g} {self.unit}/s, {elapsed:.1f} s elapsed, "
              f"about {left:.1f} s left", file=sys.stderr, flush=True)


def run_tasks(tasks, sizes, *, n_jobs=None, progress=None):
    """Run joblib ``tasks`` (``delayed(f)(...)`` calls) and return their results
    in order, counting each finished task's ``size`` on ``progress``.

    Results come back in submission order whatever the backend, so the
    numbers do not depend on ``n_jobs``.
    """
    from sklearn.utils.parallel import Parallel

    results = []
    for result, size in zip(Parallel(n_jobs=n_jobs, return_as="generator")(tasks),
                            sizes):
        results.append(result)
        if progress is not None:
            progress.update(size)
    return results
