"""Reads the run store makes in one SQL query each on Optuna's own schema (its tables `studies`, `trials`,
`trial_values`, `trial_user_attributes`, `study_user_attributes`), where Optuna's API would read every trial
of a sweep, or of every sweep, with all their attributes: a page polls these on every run.

Only `core.runs.store` calls them; it alone knows what the attributes mean, and passes their keys.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy
from sqlalchemy.engine import Engine

FINISHED = ("COMPLETE", "PRUNED", "FAIL")         # Optuna's finished states, as its `trials.state` keeps them

_COUNTS = sqlalchemy.text("""
SELECT (SELECT COUNT(*) FROM studies WHERE study_id = :study),
       (SELECT COUNT(*) FROM trials WHERE study_id = :study),
       (SELECT COUNT(*) FROM trials WHERE study_id = :study AND state IN :finished),
       (SELECT value_json FROM study_user_attributes WHERE study_id = :study AND key = :key)
""").bindparams(sqlalchemy.bindparam("finished", expanding=True))

_BY_STATE = sqlalchemy.text("""
SELECT s.study_name, t.state, COUNT(t.trial_id), MIN(v.value)
FROM studies s JOIN trials t ON t.study_id = s.study_id
LEFT JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0
WHERE NOT EXISTS (SELECT 1 FROM trial_user_attributes a
                  WHERE a.trial_id = t.trial_id AND a.key = :left_out AND a.value_json = 'true')
GROUP BY s.study_name, t.state
""")


@dataclass(frozen=True)
class StudyCounts:
    """How many trials a sweep has (every one Optuna holds) and how many finished; one of its attributes."""

    trials: int
    finished: int
    attribute: Any                    # the attribute's JSON value, None when it is not set


def trial_counts(engine: Engine, study_id: int, key: str) -> StudyCounts:
    """Counts of a study's trials and its attribute `key`; KeyError when no such study is (any longer)."""
    with engine.connect() as connection:
        studies, trials, finished, attribute = connection.execute(
            _COUNTS, {"study": study_id, "finished": list(FINISHED), "key": key}).one()
    if not studies:
        raise KeyError(study_id)
    return StudyCounts(trials, finished, json.loads(attribute) if attribute is not None else None)


@dataclass
class StateCounts:
    """One sweep's trials by state (Optuna's state names) and the least value of its complete ones."""

    by_state: dict[str, int] = field(default_factory=dict)
    best: float | None = None


def counts_by_state(engine: Engine, left_out: str) -> dict[str, StateCounts]:
    """Every sweep's trials by state, leaving out those whose user attribute `left_out` is true."""
    found: dict[str, StateCounts] = {}
    with engine.connect() as connection:
        for name, state, count, least in connection.execute(_BY_STATE, {"left_out": left_out}):
            counts = found.setdefault(name, StateCounts())
            counts.by_state[state] = count
            if state == "COMPLETE":
                counts.best = least
    return found
