"""The `python -m core relabel` command's text: a dataset's label decisions shown, imported from a CSV
or undone (each a new version, `core.data.decisions`)."""
from __future__ import annotations

from pathlib import Path

from core.data.datasets import load_dataset
from core.data.decisions import DecisionLog, DecisionsError, describe, to_csv


def relabel_text(root: str | Path, *, csv_file: str | Path | None = None, undo: bool = False,
                 who: str = "") -> str:
    """The `python -m core relabel` command: import a CSV or undo (each a new version), else show them."""
    log = DecisionLog(root)
    if csv_file is not None:
        path = Path(csv_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise DecisionsError(f"{path}: cannot read it as UTF-8 text ({error})") from None
        raw = load_dataset(root, validate=False, decisions=False)
        current = log.import_csv(text, raw, who, source=str(path))
    elif undo:
        current = log.undo(who)
    else:
        return f"{root}: {describe(log.latest())}\n{to_csv(log.latest())}".rstrip("\n")
    return f"{root}: saved {describe(current)}"
