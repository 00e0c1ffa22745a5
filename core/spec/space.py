"""The search space, typed: each swept parameter is a `Choice` of values or a numeric `Range`.

Each dimension knows its size (for grid accounting), how to ask Optuna for a value, how to print
itself for the form, and its YAML form (a list, or `{low, high, log}`), so nothing branches on
the shape of a dict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

RANGE_SEPARATOR = ".."


class Trial(Protocol):
    """What a dimension needs of an Optuna trial (kept structural: the spec never imports Optuna)."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any: ...
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...


def format_value(value: Any) -> str:
    """A value as the form shows and reads it: true / false, and a list as "512 128"."""
    if isinstance(value, tuple):
        return " ".join(map(format_value, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def to_data(value: Any) -> Any:
    """A value as YAML writes it (safe_dump writes no tuples)."""
    return list(value) if isinstance(value, tuple) else value


def to_optuna(value: Any) -> None | bool | int | float | str:
    """A value as an Optuna categorical choice, which must be None, bool, int, float or str (a tuple breaks
    the stored distributions' compatibility check): a one-element list its number (old sweeps' params
    and numeric chart axes stay numbers), a longer one its text form "512 128". The spec reads both back."""
    if not isinstance(value, tuple):
        return value
    return value[0] if len(value) == 1 else format_value(value)


@dataclass(frozen=True)
class Choice:
    """A list of values: every one of them in a grid, one of them per trial in a random / TPE search."""

    values: tuple[Any, ...]

    @property
    def size(self) -> int:
        return len(self.values)

    @property
    def highest(self) -> Any:
        return max(self.values)

    @property
    def optuna_values(self) -> list[Any]:
        """The choices as Optuna takes and stores them (`to_optuna`); `SweepSpec.trial_params` reads them."""
        return [to_optuna(v) for v in self.values]

    def suggest(self, trial: Trial, name: str) -> Any:
        return trial.suggest_categorical(name, self.optuna_values)

    def to_data(self) -> list[Any]:
        return [to_data(v) for v in self.values]

    def describe(self) -> str:
        return ", ".join(map(format_value, self.values))


@dataclass(frozen=True)
class Range:
    """A numeric interval for random / TPE search; `log` samples evenly in log space."""

    low: int | float
    high: int | float
    log: bool = False

    size = math.inf        # a range holds more values than any grid can try

    @property
    def highest(self) -> int | float:
        return self.high

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int) and isinstance(self.high, int)

    def suggest(self, trial: Trial, name: str) -> int | float:
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)

    def to_data(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "log": self.log}

    def describe(self) -> str:
        return f"{self.low} {RANGE_SEPARATOR} {self.high}" + (" log" if self.log else "")


Dimension = Choice | Range
