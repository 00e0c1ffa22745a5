"""A sweep's data plan stops on a class it cannot fold with a message naming that class."""
from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_class_folders

from core.data.splits import SplitError
from core.spec.sweep import SweepSpec
from core.training.plan import SweepData


def test_a_one_image_class_is_named(tmp_path: Path) -> None:
    root = write_class_folders(tmp_path / "colours", per_class=6)
    write_class_folders(root, per_class=1, classes={"lonely": (250, 250, 0)})
    spec = SweepSpec.from_dict({"name": "lonely", "folds": 2, "data": {"dataset": str(root), "test_fraction": 0.25},
                                "params": {"backbone": "mobilenetv2", "weights": "none", "image_size": 32}})
    with pytest.raises(SplitError, match="class 'lonely' has only 1 "):
        SweepData(spec)
