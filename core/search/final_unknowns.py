"""The end of a sweep gives its final model what it needs to know what it does not know: the open-set
detector and the temperature fitted on the final trial's out-of-fold scores, averaged with its ensemble
partners' when the final model is their fold ensemble (`core.quality.unknowns`), written into each of its
files (the card's `open_set` and `temperature`, the detector's arrays as one more zip entry). A detector
that cannot be fitted leaves its reason in the card instead; the final model stays."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from core.inference.model_card import recard
from core.quality.unknowns import OPEN_SET_ENTRY, CarriedDetector, arrays_bytes, sweep_detector, sweep_temperature
from core.runs.records import FinalModel
from core.runs.store import RunStore

if TYPE_CHECKING:
    from core.training.plan import SweepData

Fitted = TypeVar("Fitted")


def carry_unknowns(store: RunStore, sweep: str, record: FinalModel, data: SweepData | None = None,
                   say: Callable[[str], None] = lambda _: None) -> FinalModel:
    """Each file of the final model `record` again, its card carrying the temperature and the detector fitted
    on the trial's out-of-fold scores (or why there is none): kept as the sweep's final model, returned."""
    trials = record.oof_trials()
    fitted, reason = _attempt("open-set detector", lambda: sweep_detector(store, sweep, trials=trials, data=data),
                              say)
    temperature, _ = _attempt("temperature", lambda: sweep_temperature(store, sweep, trials), say)
    open_set, entries = {"reason": reason}, {}
    if fitted:
        detector, params = fitted
        say(f"open-set detector: {detector.method} (threshold {detector.threshold:.3f}, accepts "
            f"{detector.accept:.0%} of the out-of-fold images)")
        open_set, entries = CarriedDetector(detector, params).card(), {OPEN_SET_ENTRY: arrays_bytes(detector.arrays())}
    updates = {"open_set": open_set, **({"temperature": temperature} if temperature is not None else {})}
    kept: dict[str, str] = {}
    for ref in record.model_files():
        with store.artifacts.scratch() as folder:
            target = folder / Path(store.model_file(ref)).name
            recard(store.model_file(ref), target, updates, entries)
            kept[ref] = store.keep_final_file(sweep, target)
    carried_record = record.with_paths(lambda ref: Path(kept[ref]))
    store.set_final(sweep, carried_record)
    return carried_record


def _attempt(what: str, fit: Callable[[], Fitted], say: Callable[[str], None]) -> tuple[Fitted | None, str]:
    """`fit()`, or None and why not. Whatever fails here costs the model its detector or temperature, never
    the final model itself, so every error is reported, not raised."""
    try:
        return fit(), ""
    except Exception as error:  # noqa: BLE001 - the final model is written whatever goes wrong here
        reason = f"it could not be fitted ({type(error).__name__}: {str(error).strip()[:300]})"
        say(f"no {what}: {reason}")
        return None, reason
