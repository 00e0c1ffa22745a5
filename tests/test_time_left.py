"""Time-left estimates against synthetic histories, and the bound on a long step's store writes."""
from __future__ import annotations

import time

import optuna
from conftest import write_class_folders

from core.data.datasets import load_dataset
from core.data.image_cache import decoded_images
from core.runs.records import FoldResult, LiveProgress, StepProgress, TrialRecord, TrialResult, TrialState
from core.runs.store import RunStore
from core.search.time_left import (
    Countdown,
    TimeLeft,
    describe_seconds,
    describe_time_left,
    time_left,
    trial_cost,
    trial_seconds_left,
)
from core.search.worker import LiveWriter, sweep_step
from core.spec.sweep import SweepSpec


def finished(number: int, seconds: float, cache: str) -> TrialRecord:
    fold = FoldResult(fold=0, val_error=0.1, best_epoch=0, curves={}, summary={})
    return TrialRecord(sweep="s", number=number, state=TrialState.COMPLETE, value=0.1, params={},
                       result=TrialResult(folds=[fold], cache=cache, cut="", duration_s=seconds),
                       duration_s=seconds, started=1000.0 + number)


def running(number: int, started: float, live: LiveProgress | None = None) -> TrialRecord:
    return TrialRecord(sweep="s", number=number, state=TrialState.RUNNING, value=None, params={},
                       live=live, started=started)


def test_a_trial_left_is_its_pace_times_the_epochs_left_in_its_folds():
    # 3 folds x 10 epochs, 12 done, 2 s apart from the first to the twelfth: 2 s/epoch, 18 left
    live = LiveProgress(fold=1, epoch=1, folds=3, epochs=10, epochs_done=12, first_epoch_at=100.0,
                        last_epoch_at=122.0)
    assert trial_seconds_left(live) == 36.0
    assert trial_seconds_left(LiveProgress(fold=0, epoch=0, folds=3, epochs=10, epochs_done=1,
                                           first_epoch_at=5.0, last_epoch_at=5.0)) is None


def test_the_one_off_backbone_pass_is_left_out_of_a_trials_cost():
    trials = [finished(0, 300.0, "miss"), finished(1, 20.0, "hit"), finished(2, 40.0, "hit")]
    assert trial_cost(trials) == 30.0
    assert trial_cost(trials[:1]) == 300.0       # nothing better known yet


def test_the_sweep_left_is_the_running_trials_plus_the_queued_ones_shared_by_the_workers():
    now = 10_000.0
    live = LiveProgress(fold=0, epoch=4, folds=2, epochs=10, epochs_done=5, first_epoch_at=now - 8,
                        last_epoch_at=now)               # 2 s/epoch, 15 epochs left: 30 s
    trials = [finished(0, 300.0, "miss"), finished(1, 20.0, "hit"), finished(2, 40.0, "hit"),
              running(3, now - 10, live), running(4, now - 25)]   # no pace yet: cost 30 - 25 s run
    left = time_left(trials, remaining=4, now=now)
    assert left.trials == {3: 30.0, 4: 5.0}
    assert left.sweep == (30.0 + 5.0 + 4 * 30.0) / 2
    assert time_left(trials[3:4], remaining=4, now=now).sweep is None   # no finished trial: unknown yet
    assert time_left(trials[:3], remaining=0, now=now).sweep == 0.0


def test_describe_seconds():
    assert [describe_seconds(s) for s in (None, 42, 600, 3900)] == ["–", "42 s", "10 min", "1 h 05 min"]


def test_a_long_step_writes_to_the_store_a_few_seconds_apart_not_per_image(tmp_path):
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    store.create_sweep(SweepSpec.from_dict({"name": "watched", "data": {"dataset": "x"}}))
    trial = store.study("watched").ask()
    writes: list[StepProgress] = []
    real_set_live = store.set_live

    class CountingStore:           # the real store, with its writes counted on the way through
        @staticmethod
        def set_live(t: optuna.Trial, live: LiveProgress) -> None:
            writes.append(live.step)
            real_set_live(t, live)

    dataset = load_dataset(write_class_folders(tmp_path / "many", per_class=100))
    calls: list[int] = []
    write = LiveWriter(CountingStore(), trial, LiveProgress(fold=0, epoch=0), every_s=0.5).step("decoding images")
    started = time.monotonic()
    decoded_images(dataset, 24, tmp_path / "cache", progress=lambda done, total: (calls.append(done),
                                                                                  write(done, total)))
    elapsed = time.monotonic() - started
    assert len(calls) >= 50                                   # the pass reports every few images ...
    assert 2 <= len(writes) <= 2 + elapsed / 0.5              # ... the store hears of it twice a second
    assert (writes[-1].done, writes[-1].total) == (300, 300) and writes[-1].rate > 0
    stored = store.trial("watched", trial.number).live.step
    assert stored == writes[-1]


def test_the_cli_countdown_names_running_trials_and_the_sweep_and_reads_the_store_rarely():
    reads = []

    def read() -> TimeLeft:
        reads.append(1)
        return TimeLeft({3: 125.0, 4: None}, 840.0)
    countdown = Countdown(read, every_s=60)
    assert countdown() == "trial 3: 2 min left · sweep: about 14 min left"
    assert countdown() == countdown() and len(reads) == 1        # within every_s: no new read
    assert describe_time_left(TimeLeft({}, None)) == ""


def test_a_driver_step_reaches_the_sweep_record_a_few_seconds_apart_and_is_cleared(tmp_path):
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    store.create_sweep(SweepSpec.from_dict({"name": "fetching", "data": {"dataset": "x"}}))
    seen: list[StepProgress | None] = []
    real_set_step = store.set_step

    def set_step(name: str, step: StepProgress | None) -> None:     # the real write, counted on the way
        seen.append(step)
        real_set_step(name, step)
    store.set_step = set_step
    with sweep_step(store, "fetching", "ImageNet weights (bytes)", every_s=60) as progress:
        for done in range(0, 1001, 10):
            progress(done, 1000)
            if done == 500:
                assert store.sweep("fetching").step.done == 0      # the first write only, so far
    assert [s.done for s in seen[:-1]] == [0, 1000] and seen[-1] is None   # first, last, then cleared
    assert store.sweep("fetching").step is None


def test_once_the_trials_are_over_the_sweep_line_names_the_drivers_step_not_zero_seconds(tmp_path):
    from core.runs.records import SweepStatus
    from core.search.lifecycle import view
    from ui.sweep_live import _timing
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    store.create_sweep(SweepSpec.from_dict({"name": "refitting", "data": {"dataset": "x"}}))
    store.set_status("refitting", SweepStatus.RUNNING)
    assert "refitting" not in _timing(view(store, "refitting"))
    store.set_step("refitting", StepProgress("refitting the best configuration (epochs)", 2, 4, 2.0))
    assert _timing(view(store, "refitting")) == "refitting the best configuration (epochs)"
