"""The best model a time budget allows: what the sweep trains, chosen from the data's size and this
machine's measured speed before it starts (issue 20; AutoGluon's `time_limit` and presets in spirit).

A pure function of the dataset's size and class count, the measured images/s of EfficientNet-Lite0's full
forward pass at 224 px (the backbone pass a sweep runs first measures it: `TrialResult.backbone_images_per_s`)
and the budget. It starts from the recommended preset (examples/recommended.yaml: staged fine-tuning, the
fold models kept as the final model against an SVM on the frozen features) and picks the epochs of each
stage, the cached augmentation views, whether 5 folds fit rather than 3, the backbone (Lite0/1/2), how many
top layers unfreeze, and whether more network configurations fit (other depths, whose fold models join
the final ensemble where their out-of-fold scores help: `core.search.ensemble_members`); fold ensemble and flip TTA come with any network plan.

The cost model counts Lite0-forward-equivalents of work: the cache pass runs the frozen part (below the cut)
over every image and view once; a training image costs three forward passes of the trained part (forward
and backward); validation and the ensemble's test predictions (with TTA: twice) cost forward passes.
Relative costs come from the backbones' multiply-adds (measured once from the Keras models: Lite0 0.384,
Lite1 0.599, Lite2 0.858 GMACs at their own sizes) and the share of them in the top layers. Calibrated on the
preset's measured flowers5 run (15.2 min on 2 cores); the plan keeps a margin (`MARGIN`) because the
estimate is rough. Lives in the search wing: it decides a whole sweep from its time, beside `time_left`
and `trial_cost`; the training wing knows one trial.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from core.search.ensemble_members import ENSEMBLE_TRIALS
from core.search.time_left import describe_seconds
from core.spec.sweep import SweepSpec

MARGIN = 0.75                # a plan's estimate uses at most this share of the budget (a 13-min estimate took 15.5 on 2 busy cores)
OVERHEAD_S = 45.0            # start-up, model builds, store writes, the SVM trial
TRAIN_COST = 3.0             # a training image: forward + backward of the trained part
DECODE_COST = 0.25           # decoding an image once, in Lite0 forward passes
TARGET_STEPS = 600           # optimizer steps a fine-tuning fold wants (flowers5's preset: 8 epochs of 77)
EPOCHS = (3, 25)             # the least and most stage-2 epochs a plan gives
ENOUGH_EPOCHS = 12           # stage-2 epochs past this many come after 5 folds and a bigger backbone
STAGE1_EPOCHS = 2
BATCH = 32
FEW_PER_CLASS = 150          # fewer training images per class than this: more augmented views
MORE_FOLDS = 5               # time left after Lite0 fits: this many folds (each model sees 80% of the train
                             # part, not 67%, and the final ensemble has 5 members), before a bigger backbone


@dataclass(frozen=True)
class Backbone:
    name: str
    image_size: int
    cost: float                                   # forward pass, in Lite0@224 forward passes
    depths: tuple[int, ...]                       # trainable-layer choices, shallow to deep (same blocks)
    top_share: tuple[float, ...]                  # share of the forward multiply-adds in those top layers


BACKBONES = (
    Backbone("efficientnet_lite0", 224, 1.0, (20, 40, 60), (0.161, 0.281, 0.452)),
    Backbone("efficientnet_lite1", 240, 1.56, (27, 53, 80), (0.180, 0.300, 0.479)),
    Backbone("efficientnet_lite2", 260, 2.23, (27, 53, 80), (0.182, 0.305, 0.491)),
)


@dataclass(frozen=True)
class Data:
    """What the planner needs to know of the sweep's data: its split's train and test images, its classes."""

    train: int
    test: int
    classes: int
    folds: int = 3

    @property
    def images(self) -> int:
        return self.train + self.test

    @property
    def fold_train(self) -> int:
        return self.train * (self.folds - 1) // self.folds


@dataclass(frozen=True)
class BudgetPlan:
    """What the sweep trains, and its estimated seconds on the machine it was planned for."""

    budget_s: float
    seconds: float
    backbone: str = "efficientnet_lite0"
    image_size: int = 224
    trainable_layers: int = 0                     # 0: no network fine-tunes, a frozen-features plan
    stage1_epochs: int = 0
    epochs: int = 0
    augment_views: int = 0
    more_layers: tuple[int, ...] = ()             # further network configurations' depths (ensemble candidates)
    folds: int = 3

    @property
    def fine_tunes(self) -> bool:
        return self.trainable_layers > 0

    def describe(self) -> str:
        """One line for a person, before launch."""
        minutes = f"about {describe_seconds(self.seconds)} of {describe_seconds(self.budget_s)}"
        if not self.fine_tunes:
            over = ("; even this takes longer than the budget (its one backbone pass over every image cannot be "
                    "cut short)" if self.seconds > self.budget_s else "")
            return (f"{minutes}: frozen {self.backbone} features, a linear head (its convex fit) against an "
                    f"SVM; too little time to fine-tune{over}")
        configurations = "another configuration" if len(self.more_layers) == 1 else "other configurations"
        second = (f", and {' and '.join(map(str, self.more_layers))} layers as {configurations} (in the ensemble "
                  "where they help)" if self.more_layers else "")
        return (f"{minutes}: {self.backbone} at {self.image_size} px, head {self.stage1_epochs} epochs then "
                f"the top {self.trainable_layers} layers {self.epochs} more{second}, {self.augment_views} "
                f"augmented views, {self.folds} folds whose models are the ensemble, with flip TTA, "
                "against an SVM")

    def spec(self, base: SweepSpec) -> SweepSpec:
        """`base` (the recommended preset with the user's data) with this plan's choices, its time limit (the
        budget, which the sweep keeps: `core.search.deadline`), and this plan's words and estimate."""
        params = {"backbone": self.backbone, "image_size": self.image_size}
        search = {"method": "grid", "budget": 0, "time_limit_s": self.budget_s, "plan": self.describe(),
                  "plan_s": round(self.seconds, 1)}
        if not self.fine_tunes:
            params |= {"trainable_layers": 0, "head": "linear", "stage1_epochs": 0, "augmentation": "none"}
            return _replaced(base, params, search | {"space": {"kind": ["network", "svm"]}}, ensemble=False,
                             refit=True, folds=self.folds)
        params |= {"trainable_layers": self.trainable_layers, "stage1_epochs": self.stage1_epochs,
                   "epochs": self.epochs, "augment_views": self.augment_views}
        space: dict = {"kind": ["network", "svm"]}
        if self.more_layers:
            space["trainable_layers"] = [self.trainable_layers, *self.more_layers]
        return _replaced(base, params, search | {"space": space}, ensemble=True, refit=False,
                         folds=self.folds)


def _replaced(base: SweepSpec, params: dict, search: dict, ensemble: bool, refit: bool,
              folds: int) -> SweepSpec:
    data = base.to_dict()
    data["params"] |= params
    data["search"] |= search
    return SweepSpec.from_dict(data | {"ensemble": ensemble, "refit": refit, "folds": folds})


def estimate_seconds(data: Data, images_per_s: float, backbone: Backbone, depth: int, epochs: int, views: int,
                     more_depths: tuple[int, ...] = ()) -> float:
    """Seconds of a fine-tuning plan (its network trials, the SVM and the ensemble's test) on this machine."""
    share = dict(zip(backbone.depths, backbone.top_share))
    passes = data.images * (1 + views)                     # every image and cached view, once
    work = data.images * DECODE_COST + passes * backbone.cost   # to the deepest cut, then on to the pooled one
    for layers in (depth, *more_depths):
        trained = share[layers] * backbone.cost
        validation = data.train - data.fold_train
        work += data.folds * epochs * (data.fold_train * TRAIN_COST + validation) * trained
    work += data.folds * 2 * data.test * backbone.cost          # the fold ensemble's test, with flip TTA
    return OVERHEAD_S + work / images_per_s


def frozen_seconds(data: Data, images_per_s: float) -> float:
    """Seconds of the frozen-features plan: one Lite0 pass, then convex fits and an SVM (seconds)."""
    return OVERHEAD_S + data.images * (1 + DECODE_COST) / images_per_s


def wanted_epochs(data: Data) -> int:
    """Stage-2 epochs for about `TARGET_STEPS` steps: a small dataset's epoch is short, so it gets more."""
    return min(max(round(TARGET_STEPS * BATCH / max(data.fold_train, 1)), EPOCHS[0] + 3), EPOCHS[1])


def plan_budget(data: Data, images_per_s: float, budget_s: float) -> BudgetPlan:
    """The plan that spends `budget_s` best: the preset at the epochs the data wants, cut down until it fits,
    else grown while it still fits: 5 folds, then a larger backbone, epochs past 12, deeper unfreezing, more
    configurations.

    5 folds come before a larger backbone. On all of flowers5 (2 cores, one split) no 30-minute plan beat the
    15-minute Lite0 one, whose runs scored 0.951 to 0.962: Lite2 with 3 folds scored 0.954 and 0.955, Lite0 with
    5 folds 0.955. Lite0 costs least for that, its estimate is the one calibrated, and each of 5 fold models
    sees 80% of the train part rather than 67%, which counts most where the data is small.

    5 folds and a bigger backbone are chosen at the epochs the data wants, at most `ENOUGH_EPOCHS`; the
    time left then buys the epochs past those (a small dataset wants up to 25). On flowers5 at 60 training
    images per class (seeds 0, 1, 2), Lite0 scored the same at 12 and 25 epochs (within 0.3 points), while
    Lite2's frozen features beat Lite0's by 1.7 to 2.2 points and Lite2 at 12 epochs stood 2.2 to 3.1 points
    over the probe (Lite0 at 25: 1.4 to 2.9)."""
    limit = budget_s * MARGIN
    views = 4 if data.fold_train / data.classes < FEW_PER_CLASS else 2

    def cost(b: Backbone, depth: int, epochs: int, more: tuple[int, ...] = (),
             folds: int = data.folds) -> float:
        return estimate_seconds(replace(data, folds=folds), images_per_s, b, depth, epochs, views, more)

    lite0 = BACKBONES[0]
    epochs, depth = wanted_epochs(data), lite0.depths[1]
    while cost(lite0, depth, epochs) > limit and epochs > EPOCHS[0]:
        epochs -= 1
    if cost(lite0, depth, epochs) > limit:
        depth = lite0.depths[0]
    if cost(lite0, depth, epochs) > limit:
        return BudgetPlan(budget_s, frozen_seconds(data, images_per_s), folds=data.folds)
    level = lite0.depths.index(depth)
    enough = min(epochs, ENOUGH_EPOCHS)
    folds = data.folds
    if folds < MORE_FOLDS and cost(lite0, depth, enough, folds=MORE_FOLDS) <= limit:
        folds = MORE_FOLDS
    backbone = lite0
    for bigger in BACKBONES[1:]:
        if cost(bigger, bigger.depths[level], enough, folds=folds) <= limit:
            backbone = bigger
    depth = backbone.depths[level]
    epochs = max(e for e in range(enough, epochs + 1) if cost(backbone, depth, e, folds=folds) <= limit)
    if level + 1 < len(backbone.depths) and cost(backbone, backbone.depths[level + 1], epochs,
                                                 folds=folds) <= limit:
        depth = backbone.depths[level + 1]
    neighbours = sorted((d for d in backbone.depths if d != depth), key=lambda d: (abs(d - depth), -d))
    more: tuple[int, ...] = ()
    for other in neighbours[:ENSEMBLE_TRIALS - 1]:
        if cost(backbone, depth, epochs, (*more, other), folds) <= limit:
            more = (*more, other)
    return BudgetPlan(budget_s, cost(backbone, depth, epochs, more, folds), backbone.name, backbone.image_size,
                      depth, STAGE1_EPOCHS, epochs, views, more, folds)


def parse_budget(text: str) -> float:
    """Seconds from "30m", "1h", "90s" or a number of minutes ("15")."""
    text = text.strip().lower()
    units = {"s": 1, "m": 60, "min": 60, "h": 3600}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            value, scale = text[: -len(unit)], units[unit]
            break
    else:
        value, scale = text, 60
    try:
        seconds = float(value) * scale
    except ValueError:
        raise ValueError(f"budget: {text!r} is not a time (e.g. 30m, 1h, 900s)") from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"budget: {text!r} must be a positive time")
    return seconds



def measure(spec: SweepSpec) -> tuple[Data, float]:
    """`spec`'s data (loaded, split, decoded at 224 px) and Lite0's images/s measured on it now."""
    from core.training.plan import SweepData
    data = SweepData(spec)
    speed = data.backbone_images_per_s()
    return Data(len(data.train_rows), len(data.test_rows), len(data.dataset.classes), spec.folds), speed


def plan_sweep(spec: SweepSpec, budget_s: float) -> tuple[BudgetPlan, float]:
    """`spec` planned for `budget_s` on its data and this machine's speed measured now (`measure`): the plan
    and the speed. Not pure: the CLI's and the quality benchmark's way in."""
    sizes, speed = measure(spec)
    return plan_budget(sizes, speed, budget_s), speed
