"""Specs built to exhaust the machine: a grid too big to hold in memory, a YAML alias bomb. Each is refused
with one line naming what is wrong, before anything is built; the checks run where a regression would
otherwise eat the memory or a core (a subprocess with an address-space limit, a bounded wait)."""
from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from cli_runs import REPO

from core.spec.sweep import SpecError, SweepSpec
from core.spec.sweep import MAX_GRID

HUGE_SPACE = {"trainable_layers": list(range(1000)), "batch_size": list(range(1, 1001)),
              "learning_rate": [round(0.001 * (i + 1), 6) for i in range(1000)]}
MEMORY_CAP = 3 * 1024 ** 3       # TensorFlow's import fits; 10^9 grid points never do


def huge_grid(dataset: str) -> dict:
    return {"name": "huge", "data": {"dataset": dataset}, "folds": 2,
            "search": {"method": "grid", "space": HUGE_SPACE, "budget": 2}}


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def test_a_grid_past_the_limit_is_refused_with_its_sizes_before_anything_is_built():
    with pytest.raises(SpecError) as refused:
        SweepSpec.from_dict(huge_grid("colours"))
    line = str(refused.value)
    assert line.startswith("search.space:") and "\n" not in line, line
    assert "1000 x 1000 x 1000" in line and "1,000,000,000" in line and f"{MAX_GRID:,}" in line, line


def test_a_grid_at_the_limit_is_accepted():
    side = round(MAX_GRID ** 0.5)
    space = {"trainable_layers": list(range(side)), "batch_size": list(range(1, MAX_GRID // side + 1))}
    spec = SweepSpec.from_dict({"name": "big", "data": {"dataset": "colours"},
                                "search": {"method": "grid", "space": space}})
    assert spec.planned_trials() == side * (MAX_GRID // side) <= MAX_GRID


def test_the_cli_refuses_a_huge_grid_in_one_line(tiny_dataset: Path, tmp_path: Path):
    """Under a memory cap, so that code building the grid fails here rather than eating the machine."""
    spec = tmp_path / "huge.yaml"
    spec.write_text(yaml.safe_dump(huge_grid(str(tiny_dataset))))
    run = subprocess.run([sys.executable, "-m", "core", "sweep", str(spec), "--storage",
                          f"sqlite:///{tmp_path / 'runs.db'}"], cwd=REPO, capture_output=True, text=True,
                         timeout=300, preexec_fn=_capped)
    assert run.returncode == 2, run.stderr[-3000:]
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "1000 x 1000 x 1000" in lines[0] and "limit" in lines[0], lines


def alias_bomb(levels: int = 9, fan_out: int = 10) -> str:
    """The billion laughs: each level a list of `fan_out` aliases of the level below (a few hundred bytes)."""
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * fan_out)}]")
    spec = f"name: bomb\ndata: {{dataset: x}}\nsearch: {{space: {{batch_size: *a{levels}}}}}\n"
    return "\n".join(lines) + "\n" + spec


LOAD = "import sys; from core.spec.sweep import SweepSpec; SweepSpec.from_yaml(sys.stdin.read())"


def test_a_yaml_alias_bomb_is_refused_at_once():
    """The load runs in a subprocess under a memory cap and a bounded wait: a reader that expands the
    aliases is stopped there (and fails the test) instead of pinning a core."""
    bomb = alias_bomb()
    assert len(bomb) < 600
    try:
        run = subprocess.run([sys.executable, "-c", LOAD], input=bomb, cwd=REPO, capture_output=True,
                             text=True, timeout=60, preexec_fn=_capped)
    except subprocess.TimeoutExpired:
        pytest.fail("the alias bomb was still being read after 60 s")
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert "SpecError" in last and "alias" in last and "line 2" in last, run.stderr[-2000:]


def test_aliases_are_refused_anywhere_in_a_spec():
    text = "name: a\ndata: &d {dataset: colours}\nparams: {}\nsearch: {space: {batch_size: [8, 16]}}\nx: *d\n"
    with pytest.raises(SpecError, match=r"spec: line 5.*alias"):
        SweepSpec.from_yaml(text)
    merged = "base: &b {epochs: 2}\nparams:\n  <<: *b\n"
    with pytest.raises(SpecError, match="alias"):
        SweepSpec.from_yaml(merged)


def test_the_sweep_page_refuses_a_huge_grid_upload_in_one_line(data_root: Path):
    from apptest import page
    at = page("views/2_Sweep.py")
    text = yaml.safe_dump(huge_grid(str(data_root / "colours")))
    at.file_uploader(key="spec_upload").upload("huge.yaml", text.encode(), "application/x-yaml").run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [e.value.replace("\\", "") for e in at.error]          # unescaped Markdown
    assert any("huge.yaml: search.space: a grid of 1000 x 1000 x 1000" in e for e in errors), errors
    assert at.text_input(key="spec.name").value != "huge"             # nothing of the refused file was loaded


def test_a_stored_sweep_with_a_huge_grid_fails_with_the_reason_instead_of_being_relaunched(tiny_dataset: Path,
                                                                                          tmp_path: Path):
    """A sweep recorded before the limit (its spec written as an older version wrote it), resumed by a
    server start: its driver marks it FAILED with the one line, under the memory cap."""
    import optuna

    from core.runs.records import SweepStatus
    from core.runs.store import RunStore
    from core.search import lifecycle
    storage = f"sqlite:///{tmp_path / 'runs.db'}"
    store = RunStore(storage)
    small = huge_grid(str(tiny_dataset)) | {"search": {"method": "grid", "space": {"batch_size": [8, 16]}}}
    store.create_sweep(SweepSpec.from_dict(small))
    old = SweepSpec.from_dict(small).to_dict()
    old["search"]["space"] = HUGE_SPACE
    optuna.load_study(study_name="huge", storage=store.storage).set_user_attr("spec", old)
    store.set_status("huge", SweepStatus.RUNNING)
    run = subprocess.run([sys.executable, "-m", "core", "resume", "huge", "--storage", storage], cwd=REPO,
                         capture_output=True, text=True, timeout=300, preexec_fn=_capped)
    sweep = store.sweep("huge")
    assert sweep.status == SweepStatus.FAILED, (sweep, run.stderr[-3000:])
    assert "1000 x 1000 x 1000" in sweep.failure, sweep.failure
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-3000:]
    assert lifecycle.resume_unfinished(store) == []
