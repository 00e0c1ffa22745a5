"""The dtype policy chosen for a hardware description, as the table in issue 22 says, and the activation
cache keyed on the precision its tensors were computed in."""
from __future__ import annotations

import dataclasses

import pytest

from core.models.accelerator import Hardware, auto_precision, batch_sizes, chosen_precision, cpu_flags
from core.training.activations import CacheKey

BF16_CPU = frozenset({"avx512f", "avx512_bf16"})


@pytest.mark.parametrize("hardware, policy", [
    (Hardware((9, 0)), "mixed_bfloat16"),                       # Hopper
    (Hardware((8, 0), BF16_CPU), "mixed_bfloat16"),             # Ampere: the GPU decides, not the CPU
    (Hardware((7, 5)), "mixed_float16"),                        # Turing
    (Hardware((0, 0)), "mixed_float16"),                        # a GPU that reports no capability
    (Hardware(None, frozenset({"avx2", "fma"})), "float32"),    # a CPU without bf16
    (Hardware(None, BF16_CPU), "float32"),                      # bf16 CPU: float32 until bench/quality.py says
    (Hardware(None, frozenset({"amx_bf16"})), "float32"),
])
def test_auto_precision_follows_the_table(hardware, policy):
    assert auto_precision(hardware) == policy


def test_a_bf16_cpu_gets_bf16_once_measured():
    assert auto_precision(Hardware(None, BF16_CPU), cpu_bf16_measured=True) == "mixed_bfloat16"
    assert auto_precision(Hardware(None, frozenset({"amx_bf16"})), cpu_bf16_measured=True) == "mixed_bfloat16"
    assert auto_precision(Hardware(None, frozenset({"avx512f"})), cpu_bf16_measured=True) == "float32"


def test_declared_precision_beats_auto_and_the_old_switch_still_works():
    gpu = Hardware((9, 0))
    assert chosen_precision(gpu, {}) == "mixed_bfloat16"
    assert chosen_precision(gpu, {"TRANSFERLAB_PRECISION": "float32"}) == "float32"
    assert chosen_precision(Hardware(None), {"TRANSFERLAB_PRECISION": "mixed_bfloat16"}) == "mixed_bfloat16"
    assert chosen_precision(gpu, {"TRANSFERLAB_MIXED_PRECISION": "0"}) == "float32"
    assert chosen_precision(Hardware(None), {"TRANSFERLAB_MIXED_PRECISION": "1"}) == "mixed_float16"
    assert chosen_precision(gpu, {"TRANSFERLAB_PRECISION": "float32", "TRANSFERLAB_MIXED_PRECISION": "1"}) == "float32"
    with pytest.raises(ValueError, match="TRANSFERLAB_PRECISION"):
        chosen_precision(gpu, {"TRANSFERLAB_PRECISION": "float8"})


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx512f", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "absent") == frozenset()


def test_the_activation_cache_keys_on_precision():
    key = CacheKey(dataset="d", backbone="b", weights="w", image_size=32, cut="c", augmentation="none",
                   views=0, seed=0)
    assert key.precision == "float32"
    assert key.digest() == "cc6cf868bb58dc4c0205ad00181e759e"     # float32 entries cached before stay valid
    assert len({dataclasses.replace(key, precision=p).digest()
                for p in ("float32", "mixed_float16", "mixed_bfloat16")}) == 3


def test_batches_are_sized_to_the_device():
    assert batch_sizes(0) == (32, 64)                   # a CPU: as before
    assert min(batch_sizes(1)) >= 256                   # a GPU idles at 32
