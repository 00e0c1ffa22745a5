"""Suspect labels from a real tiny sweep's out-of-fold scores: planted wrong labels rank first, an odd
image is the outlier, and `python -m core suspects` prints the ranking."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import COLOURS, make_image, write_class_folders
from PIL import Image

from core.cli import main
from core.quality.suspects import SuspectsError, rank_suspects
from core.runs.store import RunStore
from core.search.worker import run_worker
from core.settings import load_settings
from core.spec.sweep import SweepSpec
from core.training.activations import ActivationCache
from core.training.plan import SweepData

NAME = "suspects-colours"
FLIPS = 6


def checkerboard(seed: int, size: tuple[int, int] = (40, 32)) -> Image.Image:
    """Black-and-white squares: no colour class at all."""
    cell = 4 + seed
    y, x = np.mgrid[:size[1], :size[0]]
    return Image.fromarray(((((x // cell) + (y // cell)) % 2) * 255).astype(np.uint8)).convert("RGB")


def plant(root: Path) -> tuple[dict[str, str], set[str]]:
    """Colour classes with FLIPS images filed under the wrong colour (path -> true colour) and two
    checkerboards (paths)."""
    write_class_folders(root, per_class=16)
    names = list(COLOURS)
    flipped, odd = {}, set()
    for i in range(FLIPS):
        path = root / names[(i + 1) % 3] / f"flipped_{i}.jpg"       # a names[i % 3] image, filed elsewhere
        make_image(COLOURS[names[i % 3]], seed=9000 + i).save(path, quality=90)
        flipped[str(path)] = names[i % 3]
    for i, name in enumerate(names[:2]):
        path = root / name / f"odd_{i}.jpg"
        checkerboard(i).save(path, quality=90)
        odd.add(str(path))
    return flipped, odd


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real two-trial sweep (frozen ImageNet Lite0, shipped offline, 3 folds) on the planted colours."""
    root = tmp_path_factory.mktemp("planted") / "colours"
    flipped, odd = plant(root)
    spec = SweepSpec.from_dict({
        "name": NAME, "folds": 3, "data": {"dataset": str(root), "test_fraction": 0.05},
        "params": {"image_size": 32, "epochs": 15, "batch_size": 16, "early_stopping": 0, "reduce_lr": 0},
        "search": {"method": "grid", "space": {"learning_rate": [0.01, 0.003]}}})
    url = f"sqlite:///{tmp_path_factory.mktemp('runs') / 'runs.db'}"
    store = RunStore(url)
    store.create_sweep(spec)
    assert run_worker(store, NAME) == 2
    data = SweepData(spec)
    train = {data.dataset.paths[r] for r in data.train_rows}
    flipped = {path: colour for path, colour in flipped.items() if path in train}
    assert len(flipped) >= 4 and odd & train, "the seeded split moved the planted images to test"
    return {"store": store, "url": url, "flipped": flipped, "odd": odd & train, "train": train}


def test_flipped_labels_rank_at_the_top(swept):
    ranked = rank_suspects(swept["store"], NAME)
    assert [s.rank for s in ranked] == list(range(1, len(swept["train"]) + 1))
    assert {s.path for s in ranked} == swept["train"]
    flags = [s.flagged for s in ranked]
    assert flags == sorted(flags, reverse=True)                      # cleanlab's issues first
    k = len(swept["flipped"])
    top = ranked[:k]
    precision = sum(s.path in swept["flipped"] for s in top) / k
    assert precision >= 0.6, ([(s.path, s.label_quality) for s in top], f"chance {k / len(ranked):.2f}")
    for s in top:
        if s.path in swept["flipped"]:                               # its colour, not its folder
            assert s.flagged and s.suggested == swept["flipped"][s.path] != s.given, s
    assert [s.path for s in rank_suspects(swept["store"], NAME, top=3)] == [s.path for s in ranked[:3]]


def oof_quality(store: RunStore, numbers: list[int]) -> dict[str, float]:
    """Path -> mean out-of-fold probability of the given label over the trials `numbers`."""
    per_trial = []
    for number in numbers:
        oof = store.oof(NAME, number)
        per_trial.append({p: oof.scores[i, oof.labels[i]] for i, p in enumerate(oof.paths)})
    return {p: float(np.mean([t[p] for t in per_trial])) for p in per_trial[0]}


def test_best_trial_alone_or_top_trials_averaged(swept):
    store = swept["store"]
    by_value = [t.number for t in sorted(store.trials(NAME), key=lambda t: t.value)]
    for count in (1, 2):
        expected = oof_quality(store, by_value[:count])
        got = {s.path: s.label_quality for s in rank_suspects(store, NAME, top_trials=count)}
        assert got == pytest.approx(expected)
    assert oof_quality(store, by_value[:1]) != pytest.approx(oof_quality(store, by_value[:2]))
    averaged = rank_suspects(store, NAME, top_trials=2)
    k = len(swept["flipped"])
    assert sum(s.path in swept["flipped"] for s in averaged[:k]) / k >= 0.6


def test_the_odd_image_is_the_outlier_from_the_cached_features(swept):
    cache = ActivationCache(load_settings().cache_dir)
    entries = cache.usage()["entries"]
    ranked = rank_suspects(swept["store"], NAME, with_outliers=True)
    assert cache.usage()["entries"] == entries                      # the sweep's activations, not a new pass
    by_outlier = sorted(ranked, key=lambda s: s.outlier_score)
    assert {s.path for s in by_outlier[:len(swept["odd"])]} == swept["odd"]
    assert all(0.0 <= s.outlier_score <= 1.0 for s in ranked)
    assert all(s.outlier_score is None for s in rank_suspects(swept["store"], NAME))


def test_a_sweep_without_scores_says_so(swept, tmp_path):
    store = swept["store"]
    spec = SweepSpec.from_dict({"name": "suspects-unrun", "data": {"dataset": str(tmp_path)}})
    store.create_sweep(spec)
    with pytest.raises(SuspectsError, match="'suspects-unrun' has no completed trial with out-of-fold scores"):
        rank_suspects(store, "suspects-unrun")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prints_table_json_and_csv(swept, capsys):
    url = swept["url"]
    code, out, _ = run_cli(capsys, "suspects", NAME, "--storage", url, "--top", "4")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["rank", "score", "issue", "given", "suggested", "path"]
    best = rank_suspects(swept["store"], NAME)
    assert [line.split()[0] for line in lines[1:5]] == ["1", "2", "3", "4"] and best[0].path in lines[1]
    flagged = sum(s.flagged for s in best)
    assert f"{flagged} of {len(best)} training images flagged" in lines[-1]

    code, out, _ = run_cli(capsys, "suspects", NAME, "--storage", url, "--json", "--trials", "2")
    rows = json.loads(out)
    assert code == 0 and len(rows) == len(swept["train"])
    assert [r["path"] for r in rows] == [s.path for s in rank_suspects(swept["store"], NAME, top_trials=2)]
    assert set(rows[0]) == {"path", "given", "suggested", "label_quality", "rank", "flagged", "outlier_score"}

    code, out, _ = run_cli(capsys, "suspects", NAME, "--storage", url, "--csv", "--top", "5", "--outliers")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and [int(r["rank"]) for r in rows] == [1, 2, 3, 4, 5]
    assert all(0 <= float(r["outlier_score"]) <= 1 for r in rows)


def test_cli_unknown_sweep_and_no_scores_exit_2(swept, capsys):
    code, out, err = run_cli(capsys, "suspects", "ghost", "--storage", swept["url"])
    assert code == 2 and out == "" and err.startswith("error: no sweep named 'ghost'")
    assert len(err.strip().splitlines()) == 1
    swept["store"].create_sweep(SweepSpec.from_dict({"name": "suspects-empty", "data": {"dataset": "x"}}))
    code, _, err = run_cli(capsys, "suspects", "suspects-empty", "--storage", swept["url"])
    assert code == 2 and err.startswith("error: sweep 'suspects-empty' has no completed trial")
    assert len(err.strip().splitlines()) == 1
