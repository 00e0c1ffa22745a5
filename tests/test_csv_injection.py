"""CSV files the app and the CLI hand out cannot carry spreadsheet formulas: a text cell starting with
= + - @ (or tab, carriage return) gets a leading ' (OWASP), numbers stay numbers, and the decisions CSV
reads back exactly what was written."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
from conftest import make_image

from core.data.datasets import load_dataset
from core.data.decisions import Action, Decision, DecisionLog, to_csv

FORMULAS = ['=HYPERLINK("http://127.0.0.1:9/x","click")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)",
            "\t=1+1", "\r=1+1"]


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def armed(cell: str) -> bool:
    """Whether a spreadsheet would read the cell as a formula (a number such as -0.5 is only a number)."""
    if cell[:1] in ("\t", "\r"):
        return True
    if cell[:1] not in ("=", "+", "-", "@"):
        return False
    try:
        float(cell)
    except ValueError:
        return True
    return False


def test_the_decisions_csv_defuses_formulas_and_reads_them_back(tmp_path: Path) -> None:
    root = tmp_path / "d"
    for name in ("=cats", "-dogs"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            make_image((200, 40, 40), seed=i).save(root / name / f"@{i}.jpg")
    raw = load_dataset(root, decisions=False)
    log = DecisionLog(root)
    saved = log.record([Decision("=cats/@0.jpg", Action.RELABEL, "-dogs", who=FORMULAS[0], when=FORMULAS[3]),
                        Decision("-dogs/@1.jpg", Action.EXCLUDE, who=FORMULAS[1], when=FORMULAS[2]),
                        Decision("-dogs/@2.jpg", Action.FINE, who="ann", when="2026-12-02")], raw)
    text = to_csv(saved)
    written = {row[0]: row[1:] for row in rows(text)[1:]}
    assert not [cell for row in written.items() for cell in (row[0], *row[1]) if armed(cell)], written
    assert written["'=cats/@0.jpg"] == ["relabel", "'-dogs", "'" + FORMULAS[0], "'" + FORMULAS[3]]
    assert written["'-dogs/@2.jpg"] == ["fine", "", "ann", "2026-12-02"]
    assert log.import_csv(text, raw).decisions == saved.decisions     # read back as written


def test_a_table_download_defuses_text_cells_and_keeps_numbers() -> None:
    from ui.widgets import csv_bytes
    frame = pd.DataFrame({"class": FORMULAS + ["rose", "'quoted"],
                          "probability": [-0.5, 0.25, -1e-9, 1, 0, 2, 3, 4],
                          "note": ["-0.5", "+1", "-3e-2", "x", "y", "z", "w", "v"]},
                         index=pd.Index(["=idx"] + [f"r{i}" for i in range(7)], name="@name"))
    written = rows(csv_bytes(frame, index=True).decode())
    assert not [cell for row in written for cell in row if armed(cell)], written
    assert written[0] == ["'@name", "class", "probability", "note"]
    assert [row[1] for row in written[1:]] == ["'" + f for f in FORMULAS] + ["rose", "''quoted"]
    assert [row[2] for row in written[1:3]] == ["-0.5", "0.25"] and float(written[3][2]) == -1e-9
    assert [row[3] for row in written[1:4]] == ["-0.5", "+1", "-3e-2"]   # text that is only a number
    assert written[1][0] == "'=idx"
