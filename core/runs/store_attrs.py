"""How the run store keeps its records in Optuna's storage: the user attributes' names (of a sweep's study and
of its trials) and the typed records (`core.runs.records`) read back from them. Only `core.runs.store` uses
it: nothing else reads a record by key."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial

from core.runs import records
from core.spec.sweep import SweepSpec


# What reading a record other code (or an older version) wrote may raise: a bad name, spec, status or type
BAD_RECORD = (ValueError, KeyError, TypeError, AttributeError)


class Attr:
    """The user attributes' names: a trial's (the first four), the others its sweep's study's."""

    RESULT, LIVE, ERROR, SURPLUS = "result", "live", "error", "surplus"
    SPEC, STATUS, CREATED, STOP = "spec", "status", "created", "stop_requested"
    DRIVER, FINAL = "driver", "final"
    FAILURE, LAUNCHED_BY, STOPPED_BY, STEP = "failure", "launched_by", "stopped_by", "step"
    DECISIONS, CLOCK = "decisions_version", "budget_clock"


def trial_record(sweep: str, t: FrozenTrial, full: Callable[[Any], Any]) -> records.TrialRecord:
    """A trial's record from Optuna's trial; `full`: an attribute's whole record (`Artifacts.full`)."""
    attrs = t.user_attrs
    try:
        live = records.LiveProgress.from_json(full(attrs[Attr.LIVE])) if Attr.LIVE in attrs else None
    except ArtifactNotFound:        # replaced by the next epoch's as it was read
        live = None
    duration = (t.datetime_complete - t.datetime_start).total_seconds() \
        if t.datetime_complete and t.datetime_start else None
    result = records.TrialResult.from_json(full(attrs[Attr.RESULT])) if Attr.RESULT in attrs else None
    return records.TrialRecord(
        sweep=sweep, number=t.number, state=records.TrialState.of(t.state), value=t.value,
        params=dict(t.params), result=result, live=live, error=attrs.get(Attr.ERROR, ""), duration_s=duration,
        started=t.datetime_start.timestamp() if t.datetime_start else None,
        retry_of=t.system_attrs.get("failed_trial"), intermediate_values=dict(t.intermediate_values))


def sweep_record(name: str, attrs: dict[str, Any]) -> records.SweepRecord:
    """The sweep's record from its study's attributes (those an artifact stands for already read back)."""
    def typed(key: str, record: Any) -> Any:
        return record.from_json(attrs[key]) if attrs.get(key) else None

    status = records.SweepStatus(attrs.get(Attr.STATUS, "created"))
    return records.SweepRecord(
        name=name, spec=attrs.get(Attr.SPEC, {}), status=status,
        created=attrs.get(Attr.CREATED, ""), stop_requested=bool(attrs.get(Attr.STOP, False)),
        driver=typed(Attr.DRIVER, records.Driver), final=typed(Attr.FINAL, records.FinalModel),
        failure=attrs.get(Attr.FAILURE, ""), launched_by=attrs.get(Attr.LAUNCHED_BY, ""),
        stopped_by=attrs.get(Attr.STOPPED_BY, ""), decisions_version=int(attrs.get(Attr.DECISIONS, 0)),
        step=typed(Attr.STEP, records.StepProgress), clock=typed(Attr.CLOCK, records.BudgetClock))


def why_unreadable(name: str, attrs: dict[str, Any]) -> str | None:
    """Why sweep `name`'s record (its study's attributes, read back whole) cannot be shown, or None."""
    try:
        record = sweep_record(name, attrs)
        if not record.spec:
            return "no spec is stored with it"
        spec = SweepSpec.from_dict(record.spec)
    except BAD_RECORD as error:
        return str(error)
    return None if spec.name == name else f"its spec is named {spec.name!r}"


def spec_as_read_now(stored: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored spec as this version reads it (fields added since take their defaults), so a sweep recorded
    by an older version is still the same sweep; one this version refuses stays as stored."""
    try:
        return SweepSpec.from_dict(stored).to_dict() if stored else stored
    except ValueError:
        return stored
