"""Label decisions: versions and undo, CSV in and out, applied by every later load, scan and sweep, never
touching the user's files; content groups kept on one side of every split; the relabel command."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from conftest import write_class_folders

from core.cli import main
from core.data.datasets import load_dataset
from core.data.decisions import (
    Action,
    ContentGroup,
    Decision,
    DecisionLog,
    DecisionsError,
    SimilarPair,
    relative_path,
    to_csv,
)
from core.data.scan import scan_dataset
from core.runs.store import RunStore
from core.spec.sweep import SweepSpec
from core.training.plan import SweepData


def folder_digest(root: Path) -> str:
    """Every file's relative path and bytes: equal before and after means nothing on disk changed."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def spec_for(dataset: Path, seed: int = 0, folds: int = 2) -> SweepSpec:
    return SweepSpec.from_dict({"name": "decided", "folds": folds,
                                "data": {"dataset": str(dataset), "test_fraction": 0.25, "seed": seed},
                                "params": {"backbone": "mobilenetv2", "weights": "none", "image_size": 32}})


@pytest.fixture
def colours(tmp_path: Path) -> Path:
    return write_class_folders(tmp_path / "colours", per_class=8)


def test_every_save_is_a_version_and_undo_walks_back(colours):
    raw = load_dataset(colours, decisions=False)
    log = DecisionLog(colours)
    assert log.latest().version == 0 and log.versions() == []
    first = log.record([Decision("red/red_000.jpg", Action.EXCLUDE)], raw, who="ann")
    second = log.record([Decision("red/red_001.jpg", Action.RELABEL, "blue"),
                         Decision("red/red_000.jpg", Action.FINE)], raw, who="bob")
    assert (first.version, second.version) == (1, 2) and second.parent == 1
    assert {d.path: d.action for d in second.decisions} == {"red/red_000.jpg": Action.FINE,
                                                            "red/red_001.jpg": Action.RELABEL}
    assert all(d.when for d in second.decisions) and second.by_path()["red/red_001.jpg"].who == "bob"
    undone = log.undo()
    assert undone.version == 3 and undone.decisions == first.decisions      # version 1's state, as version 3
    assert log.undo().decisions == () and log.versions() == [1, 2, 3, 4]   # every version kept
    with pytest.raises(DecisionsError, match="nothing to undo"):
        log.undo()
    assert log.at(2) == second                                             # old versions still readable
    assert not (colours / ".decisions").exists() and log.folder.parent.parent.name == "runs"


def test_csv_round_trip_and_bad_rows(colours):
    raw = load_dataset(colours, decisions=False)
    log = DecisionLog(colours)
    saved = log.record([Decision("green/green_002.jpg", Action.RELABEL, "red", who="ann"),
                        Decision("blue/blue_003.jpg", Action.EXCLUDE)], raw)
    text = to_csv(saved)
    assert text.splitlines()[0].startswith("path,action,label")
    other = DecisionLog(write_class_folders(colours.parent / "copy", per_class=8))
    imported = other.import_csv(text, load_dataset(colours.parent / "copy", decisions=False))
    assert imported.decisions == saved.decisions and imported.version == 1

    def refused(csv_text: str) -> str:
        with pytest.raises(DecisionsError) as error:
            log.import_csv(csv_text, raw, source="mine.csv")
        assert "\n" not in str(error.value)
        return str(error.value)

    assert refused("path,action,label\nred/red_000.jpg,exclude,\nred/nope.jpg,exclude,\n").startswith(
        "mine.csv:3: red/nope.jpg: not an image of")
    assert "mine.csv:2: red/red_000.jpg: class 'purple' is not a class" in refused(
        "path,action,label\nred/red_000.jpg,relabel,purple\n")
    assert "mine.csv:2: action 'delete'" in refused("path,action,label\nred/red_000.jpg,delete,\n")
    assert "listed again (first on row 2)" in refused("path,action,label\nred/red_000.jpg,fine,\n"
                                                      "red/red_000.jpg,exclude,\n")
    assert "columns path,action,label" in refused("file,label\nred/red_000.jpg,blue\n")
    assert log.latest() == saved                                             # nothing saved by a refusal


def test_decisions_change_the_next_sweep_and_scan_but_not_the_files(colours):
    before = folder_digest(colours)
    plain = SweepData(spec_for(colours))
    raw = load_dataset(colours, decisions=False)
    log = DecisionLog(colours)
    version = log.record([Decision("red/red_000.jpg", Action.EXCLUDE),
                          Decision("red/red_001.jpg", Action.RELABEL, "green"),
                          Decision("blue/blue_000.jpg", Action.FINE)], raw).version
    data = SweepData(spec_for(colours))
    paths = [relative_path(data.dataset, p) for p in data.dataset.paths]
    assert len(data.dataset) == len(plain.dataset) - 1 and "red/red_000.jpg" not in paths
    assert data.dataset.classes[data.dataset.labels[paths.index("red/red_001.jpg")]] == "green"
    assert data.dataset.class_counts() == {"blue": 8, "green": 9, "red": 6}
    assert data.dataset.decisions_version == version and data.dataset.decisions_applied == 2
    assert data.fingerprint != plain.fingerprint                           # the activation cache key moves
    assert len(data.train_rows) + len(data.test_rows) == len(data.dataset)

    report = scan_dataset(colours)
    assert report.counts == {"blue": 8, "green": 9, "red": 6}
    assert (report.decisions_version, report.decisions_applied) == (version, 2)
    assert f"label decisions version {version}: 2 applied" in report.format_text()

    pinned = SweepData(spec_for(colours), decisions_version=0)             # a sweep created before them
    assert pinned.fingerprint == plain.fingerprint
    assert folder_digest(colours) == before


def test_a_sweep_records_the_decisions_version_it_was_created_with(colours, tmp_path):
    from core.search.lifecycle import create
    from core.settings import load_settings
    store = RunStore(f"sqlite:///{tmp_path / 'runs.db'}", artifacts_dir=tmp_path / "artifacts")
    spec = spec_for(colours)
    raw = load_dataset(colours, decisions=False)
    DecisionLog(colours).record([Decision("red/red_000.jpg", Action.EXCLUDE)], raw)
    assert create(store, spec, load_settings(), confine=False)     # the CLI's: any folder of the user's
    DecisionLog(colours).undo()
    assert store.sweep("decided").decisions_version == 1 and DecisionLog(colours).latest().version == 2
    resumed = SweepData.of_sweep(store, "decided")           # what executors, workers and the refit load
    assert "red_000.jpg" not in {Path(p).name for p in resumed.dataset.paths}   # version 1, not the undo
    assert len(resumed.dataset.paths) == len(raw.paths) - 1


def test_content_groups_stay_on_one_side_of_split_and_folds(tmp_path):
    root = write_class_folders(tmp_path / "many", per_class=20)
    raw = load_dataset(root, decisions=False)
    rel = [relative_path(raw, p) for p in raw.paths]
    # pairs across classes and within them: without the groups, some pair straddles some split
    pairs = [(rel[i], rel[(i * 7 + 3) % len(rel)]) for i in range(0, len(rel), 4)]
    DecisionLog(root).save_groups([ContentGroup((a, b), (SimilarPair(a, b, 0.99),)) for a, b in pairs])
    for seed in range(3):
        data = SweepData(spec_for(root, seed=seed, folds=3))
        row = {relative_path(data.dataset, p): i for i, p in enumerate(data.dataset.paths)}
        test = set(data.test_rows.tolist())
        for a, b in pairs:
            assert (row[a] in test) == (row[b] in test), f"seed {seed}: {a} and {b} split apart"
            for _, val in data.folds:
                assert (row[a] in val) == (row[b] in val), f"seed {seed}: {a} and {b} in different folds"


def test_relabel_command_imports_shows_and_undoes(colours, tmp_path, capsys):
    before = folder_digest(colours)
    good = tmp_path / "decisions.csv"
    good.write_text("path,action,label\nred/red_003.jpg,relabel,blue\ngreen/green_001.jpg,exclude,\n")
    assert main(["relabel", str(colours), "--from", str(good)]) == 0
    assert "saved decisions version 1: 1 relabel, 1 exclude, 0 fine" in capsys.readouterr().out
    assert load_dataset(colours).class_counts() == {"blue": 9, "green": 7, "red": 7}
    assert main(["relabel", str(colours), "--show"]) == 0
    shown = capsys.readouterr().out
    assert "decisions version 1" in shown and "red/red_003.jpg,relabel,blue" in shown
    bad = tmp_path / "bad.csv"
    bad.write_text("path,action,label\nred/red_004.jpg,relabel,mauve\n")
    assert main(["relabel", str(colours), "--from", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {bad}:2: red/red_004.jpg: class 'mauve' is not a "
                                              f"class of {colours} (classes: blue, green, red)")
    assert main(["relabel", str(colours), "--undo"]) == 0
    assert "saved decisions version 2: 0 relabel, 0 exclude, 0 fine" in capsys.readouterr().out
    assert load_dataset(colours).class_counts() == {"blue": 8, "green": 8, "red": 8}
    assert folder_digest(colours) == before


def test_cleaning_keeps_the_test_split_so_sweeps_before_and_after_compare(colours):
    def sides(data: SweepData) -> tuple[set[str], set[str]]:
        return tuple({relative_path(data.dataset, data.dataset.paths[r]) for r in rows}
                     for rows in (data.train_rows, data.test_rows))
    train, test = sides(SweepData(spec_for(colours)))
    excluded, relabelled = sorted(test)[0], sorted(train)[0]
    DecisionLog(colours).record([Decision(excluded, Action.EXCLUDE),
                                 Decision(relabelled, Action.RELABEL, "blue" if "blue" not in relabelled else "red")],
                                load_dataset(colours, decisions=False))
    cleaned = SweepData(spec_for(colours))
    assert sides(cleaned) == (train, test - {excluded})      # no image changed sides; the excluded one is gone


def test_the_dataset_pages_split_preview_is_the_sweeps_split_under_decisions(colours):
    from core.data.findings import split_table
    raw = load_dataset(colours, decisions=False)
    test_side = sorted(relative_path(raw, raw.paths[r]) for r in SweepData(spec_for(colours)).test_rows)
    DecisionLog(colours).record([Decision(test_side[0], Action.EXCLUDE),
                                 Decision("red/red_001.jpg", Action.RELABEL, "green")], raw)
    dataset = load_dataset(colours)
    table = split_table(dataset, scan_dataset(dataset), "stratified", test_fraction=0.25, seed=0)
    data = SweepData(spec_for(colours))
    for side, rows in (("train", data.train_rows), ("test", data.test_rows)):
        counts = np.bincount(data.dataset.labels[rows], minlength=len(data.dataset.classes))
        assert table[side].tolist() == counts.tolist(), side
