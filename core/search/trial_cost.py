"""What a trial cost, kept with its result for the backbone comparison: the classifier's parameters
(all and trained), the images/s of its backbone pass and the worker's peak memory during it; and, with a
time budget, where the budget cut its training."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from core.progress import Progress
from core.runs.records import TrialResult
from core.spec.sweep import TrialParams

_PROC = Path("/proc/self")


def _reset_peak_memory() -> bool:
    """Start the process's peak-RSS count afresh (Linux), so a trial's peak is its own and not the
    worker's largest so far; False where that cannot be done (then no figure is recorded)."""
    try:
        (_PROC / "clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _peak_memory_mb() -> float:
    """The process's peak resident memory since the reset (VmHWM), in MiB."""
    for line in (_PROC / "status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PassRate:
    """Images/s of the first backbone pass a trial runs (the one to the sweep's lowest cut when its cache is
    cold), over its full-size batches after the first: the first traces the model, and a smaller last batch
    traces it again for its shape. Too few batches (a tiny dataset) leave it unmeasured (0)."""

    def __init__(self) -> None:
        self.batch = 0                              # images in a full batch: those of the first
        self.last: tuple[int, float] | None = None  # (done, when) at the previous report
        self.images, self.seconds = 0, 0.0
        self.over = False

    def __call__(self, done: int, total: int) -> None:
        """Called after the report has gone on (a store write is not the backbone's time)."""
        if self.over:
            return
        now = time.monotonic()
        if self.last is None:
            self.batch = done
        elif done <= self.last[0]:                  # counting starts again: a second pass began
            self.over = True
            return
        elif done - self.last[0] == self.batch:
            self.images += self.batch
            self.seconds += now - self.last[1]
        self.last = (done, now)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else 0.0


class TrialCost:
    """Made as a trial starts; `watch` the backbone pass's progress, then `recorded` the result."""

    def __init__(self) -> None:
        self.memory = _reset_peak_memory()
        self.rate = PassRate()

    def watch(self, progress: Progress) -> Progress:
        def both(done: int, total: int) -> None:
            progress(done, total)
            self.rate(done, total)
        return both

    def recorded(self, result: TrialResult, params: TrialParams, runner) -> TrialResult:
        """`result` with what the trial cost (parameters counted for trials that train a Keras network), and where
        the sweep's time budget cut its training (`runner.deadline`)."""
        total, trained = _parameters(params, runner) if params.trains_network else (0, 0)
        return dataclasses.replace(result, params_total=total, params_trained=trained,
                                   backbone_images_per_s=self.rate.images_per_s,
                                   peak_memory_mb=_peak_memory_mb() if self.memory else 0.0,
                                   stopped_early=runner.deadline.note() if runner.deadline else "")


def _parameters(params: TrialParams, runner) -> tuple[int, int]:
    """The trial's classifier's parameters, all and trainable: built again on the worker's cached backbone
    (`build_classifier` keeps it per process), so this costs a head, not a backbone."""
    import numpy as np

    from core.models.classifier import build_classifier
    model = build_classifier(params, len(runner.data.classes), seed=runner.seed).model
    return int(model.count_params()), int(sum(np.prod(w.shape) for w in model.trainable_weights))
