"""The sweep spec: typed dataclasses whose fields carry type, range, default and help.

One schema feeds validation, YAML round trips, the CLI and the Sweep page's form, so no
field is written twice (Ludwig's schema in spirit). Errors name the field at fault.
"""
from __future__ import annotations

import dataclasses
import itertools
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, get_type_hints

import yaml

from core.spec.space import Choice, Range, to_data
from core.spec.values import SpecError, check_value, coerce, element_kind, load_yaml

BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "efficientnetb0",
             "mobilenetv2", "resnet101", "resnet50", "resnet50v2", "vgg16")
"""The names in `core.models.backbones`' registry, default first (the spec knows no Keras; a test
keeps the two equal)."""
HEADS = ("linear", "dense_dropout", "dense_bn_l2")
LR_SCHEDULES = ("constant", "step", "exponential", "cosine")
OPTIMIZERS = ("sgd", "rmsprop", "adam", "nadam", "adadelta")
AUGMENTATIONS = ("none", "flip", "standard", "full")
SPLITS = ("stratified", "ordered")
TRIAL_KINDS = ("network", "svm", "logreg")
SVM_KERNELS = ("linear", "rbf", "poly")
SEARCH_METHODS = ("grid", "random", "tpe")
SWEEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
MAX_GRID = 10_000
"""At most this many combinations in a grid search: Optuna's GridSampler holds every one in memory, whatever
the budget (a grid of 1000 x 1000 x 1000 took 5 GB before it failed)."""


def check_sweep_name(name: str) -> str:
    """The one rule for sweep names, wherever a name comes from (spec, CLI, page): it is a study name,
    a folder name and part of a URL."""
    if not SWEEP_NAME.fullmatch(name or ""):
        raise SpecError(f"name: {name!r} is not a valid sweep name (letters, digits, '-', '_', '.', "
                        "starting with a letter or digit; at most 100 characters)")
    return name


def spec_field(default: Any, help: str, *, choices: tuple | None = None, low: float | None = None,
               high: float | None = None, sweepable: bool = False) -> Any:
    """A dataclass field with the metadata the validator, the CLI and the form read."""
    meta = {"help": help, "choices": choices, "low": low, "high": high, "sweepable": sweepable}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrialParams:
    """Everything one trial needs to build and train a model; any field can be swept."""

    backbone: str = spec_field(BACKBONES[0], "pretrained CNN the features come from", choices=BACKBONES,
                               sweepable=True)
    weights: str = spec_field("imagenet", "'imagenet' (resolved offline) or 'none' (random init)",
                              choices=("imagenet", "none"))
    image_size: int = spec_field(224, "side of the square input in pixels", low=32, high=600, sweepable=True)
    trainable_layers: int = spec_field(0, "how many of the backbone's last layers train (0 = frozen)",
                                       low=0, high=1000, sweepable=True)
    head: str = spec_field("linear", "classification head on the pooled features", choices=HEADS,
                           sweepable=True)
    dense_units: tuple[int, ...] = spec_field((512,), "dense head: one width per hidden layer (Dense + ReLU "
                                              "+ Dropout each), e.g. [512, 128]", low=8, high=4096,
                                              sweepable=True)
    dropout: tuple[float, ...] = spec_field((0.2,), "dense head: one dropout rate for every layer, or one "
                                            "per layer", low=0.0, high=0.9, sweepable=True)
    l2: float = spec_field(1e-4, "L2 weight penalty in the dense+BN head", low=0.0, high=1.0, sweepable=True)
    optimizer: str = spec_field("adam", "optimizer", choices=OPTIMIZERS, sweepable=True)
    learning_rate: float = spec_field(1e-3, "initial learning rate", low=1e-6, high=10.0, sweepable=True)
    lr_schedule: str = spec_field("constant", "learning rate over the epochs: constant; step (x0.1 after each "
                                  "third); exponential (to x0.01 at the end); cosine (to 0). A schedule "
                                  "replaces reduce_lr", choices=LR_SCHEDULES, sweepable=True)
    warmup_epochs: int = spec_field(0, "epochs of linear warm-up to the learning rate, before the schedule",
                                    low=0, high=50, sweepable=True)
    momentum: float = spec_field(0.9, "momentum (SGD and RMSprop)", low=0.0, high=0.999, sweepable=True)
    batch_size: int = spec_field(32, "images per training step", low=1, high=1024, sweepable=True)
    epochs: int = spec_field(10, "maximum training epochs per fold", low=1, high=500, sweepable=True)
    augmentation: str = spec_field("none", "random flips / rotation, shifts, zoom / shear on training images",
                                   choices=AUGMENTATIONS, sweepable=True)
    augment_views: int = spec_field(2, "augmented copies per training image kept in the activation cache",
                                    low=1, high=20)
    early_stopping: int = spec_field(3, "stop after this many epochs without validation gain (0 = off)",
                                     low=0, high=100)
    reduce_lr: int = spec_field(2, "halve the learning rate after this many flat epochs (0 = off)",
                                low=0, high=100)
    restore_best: bool = spec_field(True, "each fold keeps its epoch of lowest validation loss; off: its "
                                    "last epoch, where a schedule ends decayed (and the CV error picks no "
                                    "epoch on the images it scores)")
    # Staged fine-tuning (core/training/stages.py) and SGD momentum decay.
    stage1_epochs: int = spec_field(0, "staged fine-tuning: epochs training the head alone on the frozen "
                                    "backbone (at learning_rate, constant, no early stopping) before the top "
                                    "trainable_layers unfreeze for `epochs` more (0 = one stage)",
                                    low=0, high=500, sweepable=True)
    stage2_lr_factor: float = spec_field(0.1, "staged fine-tuning: stage 2 trains at learning_rate x this "
                                         "(its schedule, warm-up, early stopping as a one-stage trial's)",
                                         low=1e-4, high=1.0, sweepable=True)
    momentum_decay: float = spec_field(0.0, "SGD only: momentum falls linearly from `momentum` at the first "
                                       "epoch to momentum x (1 - this) at the last, over both stages (0 = "
                                       "constant; swept with other optimizers, it leaves them alone)",
                                       low=0.0, high=1.0, sweepable=True)
    # Trial kinds on the frozen backbone's pooled features (scikit-learn, no Keras training).
    kind: str = spec_field("network", "network: train a Keras head (and backbone layers); svm / logreg: "
                           "scikit-learn on the frozen backbone's standardised pooled features",
                           choices=TRIAL_KINDS, sweepable=True)
    svm_kernel: str = spec_field("linear", "kind svm only: the SVM's kernel", choices=SVM_KERNELS, sweepable=True)
    svm_c: float = spec_field(1e-3, "kind svm only: the SVM's penalty C (a linear kernel on standardised CNN "
                              "features wants ~1e-3, rbf ~1-10)", low=1e-6, high=1e6, sweepable=True)
    svm_gamma: float = spec_field(0.0, "kind svm only: rbf / poly kernel width gamma (0 = 'scale': "
                                  "1 / (features x their variance))", low=0.0, high=1e3, sweepable=True)
    svm_degree: int = spec_field(3, "kind svm only: degree of the poly kernel", low=1, high=6, sweepable=True)
    logreg_c: float = spec_field(1.0, "inverse L2 strength C of the logistic regression: kind logreg's, and the "
                                 "convex fit a frozen linear head starts from", low=1e-6, high=1e6, sweepable=True)
    features_from: str = spec_field("backbone", "kinds svm / logreg: backbone = the frozen backbone's pooled "
                                    "features; network = first train the network these params describe (head, "
                                    "trainable layers, epochs, ...) on each fold, then fit on its penultimate "
                                    "layer's output (ignored by kind network)",
                                    choices=("backbone", "network"), sweepable=True)

    @property
    def trains_network(self) -> bool:
        """A network trains in this trial: kind network, or svm / logreg on a network's features."""
        return self.kind == "network" or self.features_from == "network"

    def __post_init__(self) -> None:
        """List fields given any accepted form (256, [512, 128], "512 128") hold tuples, also when a
        TrialParams is built directly or by `dataclasses.replace`."""
        hints = get_type_hints(TrialParams)
        for f in fields(self):
            if element_kind(hints[f.name]) is not None:
                setattr(self, f.name, coerce(getattr(self, f.name), hints[f.name], f.name))


@dataclass
class DataSpec:
    """Which images, and how they split into train (for K-fold CV) and test."""

    dataset: str = spec_field("", "dataset folder (or CSV of path,label), absolute or under a data root")
    split: str = spec_field("stratified", "'stratified' (seeded) or 'ordered' (first N train, next M test)",
                            choices=SPLITS)
    test_fraction: float = spec_field(0.15, "share of images held out for the final test (stratified)",
                                      low=0.05, high=0.5)
    train_count: int = spec_field(0, "ordered split: the first N images train and validate", low=0)
    test_count: int = spec_field(0, "ordered split: the next M images test", low=0)
    max_per_class: int = spec_field(0, "use at most this many images per class (0 = all), before the split",
                                    low=0)
    train_per_class: int = spec_field(0, "after the split, train on at most this many images per class (0 = "
                                      "all); the test part stays whole: a small-data regime on the full test",
                                      low=0)
    seed: int = spec_field(0, "seed of the split, the folds and the weight init", low=0)


@dataclass
class SearchSpec:
    """What to vary: value lists (grid or choices) or ranges {low, high, log} (random / TPE)."""

    method: str = spec_field("grid", f"grid: every combination (at most {MAX_GRID:,}); random / tpe: sample "
                             "`budget` trials",
                             choices=SEARCH_METHODS)
    space: dict = spec_field({}, "parameter -> list of values, or {low, high, log} for random / tpe "
                              "(held as `space.Choice` / `space.Range` once validated)")
    budget: int = spec_field(0, "maximum trials (0 = the whole grid; required for random / tpe)", low=0)
    pruning: bool = spec_field(False, "stop hopeless trials early (successive halving on epoch errors)")
    time_limit_s: float = spec_field(0.0, "time budget in seconds, counted from the sweep's start (0 = none): no "
                                     "trial starts with less than half its estimated time left, a running one "
                                     "ends its current stage at an epoch boundary, and the best so far becomes "
                                     "the final model",
                                     low=0.0)
    plan: str = spec_field("", "what the time-budget planner chose for the machine it measured, and why (its "
                           "own words; for reading)")
    plan_s: float = spec_field(0.0, "the planner's estimate of the sweep's seconds on that machine (0 = no plan)",
                               low=0.0)


@dataclass
class ResourcesSpec:
    """What one trial asks a cluster engine for (Ray's task resources); local worker processes ignore it."""

    cpus_per_trial: float = spec_field(1.0, "CPUs each Ray worker task reserves (its decode pool and "
                                       "TensorFlow threads use this many)", low=0.5, high=1024.0)
    gpus_per_trial: float = spec_field(0.0, "GPUs each Ray worker task reserves (0 = none; Ray sets "
                                       "CUDA_VISIBLE_DEVICES)", low=0.0, high=64.0)


@dataclass
class SweepSpec:
    """A whole sweep: round-trips to YAML, so UI and CLI can re-run each other's sweeps."""

    name: str = spec_field("", "sweep name: letters, digits, '-', '_' and '.'")
    data: DataSpec = field(default_factory=DataSpec)
    params: TrialParams = field(default_factory=TrialParams)
    search: SearchSpec = field(default_factory=SearchSpec)
    folds: int = spec_field(3, "K of the K-fold cross-validation on the train part", low=2, high=20)
    use_cache: bool = spec_field(True, "train on cached backbone activations where the trial allows it")
    ensemble: bool = spec_field(False, "final model: network trials keep their K fold models (the best "
                                "trial's stay), and their average is tested with and without horizontal-flip "
                                "TTA as variants of the final model")
    refit: bool = spec_field(True, "final model: refit the best configuration on the whole train part (the "
                             "chosen variant). Off, with ensemble on: the best trial's fold ensemble is the "
                             "final model, and nothing trains after the sweep")
    resources: ResourcesSpec = field(default_factory=ResourcesSpec)
    storage: str = spec_field("", "run store URL (SQLAlchemy); empty = the project's default store")

    def validate(self) -> "SweepSpec":
        check_sweep_name(self.name)
        if not self.data.dataset:
            raise SpecError("data.dataset: no dataset given")
        _check_fields(self, "")
        if self.data.split == "ordered" and (self.data.train_count <= 0 or self.data.test_count <= 0):
            raise SpecError("data.train_count: an ordered split needs train_count and test_count > 0")
        _check_space(self.search)
        _check_momentum_decay(self)
        if not {"dense_units", "dropout"} & set(self.search.space):
            _check_layers(self.params)
        if not (self.refit or self.ensemble):
            raise SpecError("refit: without the refit the final model is the fold ensemble; turn ensemble on")
        return self

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["search"]["space"] = {name: dim.to_data() for name, dim in self.search.space.items()}
        data["params"] = {name: to_data(value) for name, value in data["params"].items()}
        return data

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict) -> "SweepSpec":
        return _from_dict(cls, data, "").validate()

    @classmethod
    def from_yaml(cls, text: str | bytes) -> "SweepSpec":
        """From YAML text, or a file's bytes (UTF-8)."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as error:
                raise SpecError(f"spec: not UTF-8 text (byte 0x{error.object[error.start]:02x} at position "
                                f"{error.start}); save the file as UTF-8") from None
        try:
            data = load_yaml(text)
        except yaml.YAMLError as error:
            raise SpecError(f"spec: not valid YAML ({error})") from None
        if not isinstance(data, dict):
            raise SpecError("spec: expected a mapping of fields at the top level")
        return cls.from_dict(data)

    def trial_params(self, values: dict[str, Any]) -> TrialParams:
        """The base params with one trial's sampled values applied (as Optuna stores them, or as the
        space holds them); a combination no trial can build (dropouts for other layers) is refused here."""
        hints = get_type_hints(TrialParams)
        params = dataclasses.replace(self.params, **{name: coerce(value, hints[name], f"params.{name}")
                                                     for name, value in values.items()})
        _check_fields(params, "params.")
        _check_layers(params)
        return params

    def planned_trials(self) -> int:
        """Trials the sweep will run: the grid's combinations (at most its budget, when set), or the budget of a
        random or TPE search."""
        if self.search.method == "grid":
            return int(min(math.prod(d.size for d in self.search.space.values()), self.search.budget or math.inf))
        return self.search.budget

    def grid(self) -> list[dict[str, Any]]:
        """Every combination of a grid search, in a stable order."""
        names = list(self.search.space)
        return [dict(zip(names, combo))
                for combo in itertools.product(*(d.values for d in self.search.space.values()))]

    def highest(self, name: str) -> Any:
        """The highest value any trial of the sweep can give a parameter."""
        dim = self.search.space.get(name)
        return getattr(self.params, name) if dim is None else dim.highest


def sweepable_fields() -> list[str]:
    return [f.name for f in fields(TrialParams) if f.metadata["sweepable"]]


def _from_dict(cls: type, data: dict, prefix: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = set(data) - set(known)
    if unknown:
        raise SpecError(f"{prefix}{sorted(unknown)[0]}: unknown field (known: {', '.join(known)})")
    values = {}
    for name, value in data.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            if not isinstance(value, dict):
                raise SpecError(f"{prefix}{name}: expected a mapping of fields")
            values[name] = _from_dict(kind, value, f"{prefix}{name}.")
        else:
            values[name] = coerce(value, kind, f"{prefix}{name}")
    return cls(**values)


def _check_layers(params: TrialParams) -> None:
    """The dense head takes one dropout rate for every layer, or one per layer."""
    layers, rates = len(params.dense_units), len(params.dropout)
    if rates not in (1, layers):
        raise SpecError(f"params.dropout: {rates} rates for {layers} layer{'s' * (layers != 1)} of "
                        "dense_units; give one rate for every layer, or one per layer")


def _check_fields(obj: Any, prefix: str) -> None:
    hints = get_type_hints(type(obj))
    for f in fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            _check_fields(value, f"{prefix}{f.name}.")
        else:
            check_value(f.metadata, hints[f.name], value, f"{prefix}{f.name}")


def _check_momentum_decay(spec: SweepSpec) -> None:
    """Momentum decay is SGD's: refused when every trial of the sweep uses another optimizer."""
    optimizer = spec.params.optimizer
    if optimizer == "sgd" or "optimizer" in spec.search.space or not spec.highest("momentum_decay"):
        return
    where = "search.space" if "momentum_decay" in spec.search.space else "params"
    raise SpecError(f"{where}.momentum_decay: momentum decay needs optimizer sgd, not {optimizer}")


def _check_space(search: SearchSpec) -> None:
    """Turn each swept parameter's YAML form (a list, or {low, high, log}) into a checked dimension."""
    by_name = {f.name: f for f in fields(TrialParams)}
    hints = get_type_hints(TrialParams)
    search.space = dict(search.space)      # a copy: the caller's dict keeps its YAML form
    for name, values in search.space.items():
        where = f"search.space.{name}"
        if name not in by_name or not by_name[name].metadata["sweepable"]:
            raise SpecError(f"{where}: not a parameter that can be swept (choose from "
                            f"{', '.join(sweepable_fields())})")
        meta, kind = by_name[name].metadata, hints[name]
        if isinstance(values, (Choice, Range)):
            values = values.to_data()
        if isinstance(values, list):
            if not values:
                raise SpecError(f"{where}: the list of values is empty")
            search.space[name] = Choice(tuple(check_value(meta, kind, v, f"{where}[{i}]")
                                              for i, v in enumerate(values)))
        elif isinstance(values, dict):
            if search.method == "grid":
                raise SpecError(f"{where}: a grid needs a list of values, not a range")
            if set(values) - {"low", "high", "log"} or not {"low", "high"} <= set(values):
                raise SpecError(f"{where}: a range is {{low, high, log}}")
            if element_kind(kind) is not None:
                raise SpecError(f"{where}: a list field takes a list of values (e.g. [[512, 128], 256]), "
                                "not a range")
            if kind not in (int, float):
                raise SpecError(f"{where}: only numeric parameters take a range")
            low = check_value(meta, kind, values["low"], f"{where}.low")
            high = check_value(meta, kind, values["high"], f"{where}.high")
            if low >= high:
                raise SpecError(f"{where}: low must be below high")
            search.space[name] = Range(low, high, coerce(values.get("log", False), bool, f"{where}.log"))
        else:
            raise SpecError(f"{where}: expected a list of values or a {{low, high}} range")
    if search.method != "grid" and search.budget <= 0:
        raise SpecError(f"search.budget: {search.method} search needs a budget (number of trials) > 0")
    if search.method == "grid":
        _check_grid_size(search.space)


def _check_grid_size(space: dict[str, Choice]) -> None:
    """Count a grid's combinations from its lists' lengths (never building them) and refuse past MAX_GRID."""
    sizes = [dim.size for dim in space.values()]
    total = math.prod(sizes)
    if total > MAX_GRID:
        raise SpecError(f"search.space: a grid of {' x '.join(map(str, sizes))} = {total:,} combinations "
                        f"is past the limit of {MAX_GRID:,} (the grid sampler holds every combination in "
                        "memory, whatever the budget); give fewer values, or use method random or tpe with a "
                        "budget")
