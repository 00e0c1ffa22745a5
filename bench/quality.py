"""Is the app's model better than ten lines of scikit-learn? Three runs on one split and seed.

1. probe: logistic regression (scikit-learn) on frozen, pooled EfficientNet-Lite0 features;
2. the app's plain default sweep (every SweepSpec default, only the dataset given);
3. a preset spec (default examples/recommended.yaml, when it exists) with its data.dataset filled in;
4. svm: the app's SVM trial kind on the same frozen Lite0 features, its search (`SVM_SPACE`: linear and RBF
   kernels, C from 0.001 to 10; K-fold CV picks one).

5. budget N (`--budgets 15 30`): the preset as the time-budget planner (`core.search.budget`) fits it to N
   minutes on this machine, from Lite0's images/s measured on the dataset first (the plan is printed), run with
   that time limit (`core.search.deadline`: where the budget cut it is printed; its minutes include the measuring).
   With `--clean`, each budget and preset run is followed by the tool's own label cleaning: every training
   image cleanlab flags in its suspect ranking (`core.quality.suspects`), or with `--clean-top N` the N ranked
   first of them, is relabelled as suggested (a label decisions version, as accepting them on the Dataset page
   makes), and the same run is made again on the cleaned labels ("budgetN+clean", "preset+clean"; the test
   part is not touched). A budget run replans from a new speed measurement, so its two plans may differ; the
   preset's are the same, so only the labels change.

Each starts from cold caches (its own cache folder) and a fresh run store; prints test accuracy,
macro F1 and wall time side by side.

    .venv/bin/python bench/quality.py ../shared/datasets/flowers5
    .venv/bin/python bench/quality.py DATASET --runs probe default svm --train-per-class 60
    .venv/bin/python bench/quality.py DATASET --runs budget --budgets 15 --train-per-class 60 --clean
    .venv/bin/python bench/quality.py DATASET --runs preset --clean --clean-top 30
    .venv/bin/python bench/quality.py DATASET --runs preset --precisions float32 mixed_bfloat16

With `--precisions float32 mixed_bfloat16` every run is made once per Keras dtype policy
(TRANSFERLAB_PRECISION, for the workers and this process alike), rows side by side: whether bf16 keeps the
accuracy float32 gets, and what it saves (issue 22).

`--train-per-class` is the small-data regime: the same split, its test part whole, N training images per
class; `--max-per-class` cuts the dataset before the split (the test part shrinks with it).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from core.models.accelerator import PRECISION_VARIABLE, PRECISIONS, configure_device  # noqa: E402
from core.runs.evaluation import Evaluation  # noqa: E402
from core.runs.records import TrialRecord  # noqa: E402
from core.spec.sweep import SweepSpec, load_yaml  # noqa: E402
from core.training.features_kinds import SVM_SPACE  # noqa: E402

RUNS = ("probe", "default", "preset", "svm", "budget")
SVM_SEARCH = {"method": "grid", "space": SVM_SPACE}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", type=Path)
    p.add_argument("--preset", type=Path, default=REPO / "examples" / "recommended.yaml")
    p.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    p.add_argument("--test-fraction", type=float, default=0.15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--budgets", type=float, nargs="+", default=[15.0, 30.0], help="minutes, for the budget run")
    p.add_argument("--max-per-class", type=int, default=0, help="images per class before the split (0 = all)")
    p.add_argument("--train-per-class", type=int, default=0,
                   help="training images per class after the split, the test part whole (0 = all)")
    p.add_argument("--clean", action="store_true",
                   help="after each budget and preset run, accept the suspects cleanlab flags, run it again")
    p.add_argument("--clean-top", type=int, default=0,
                   help="with --clean, accept only the first N flagged suspects of the ranking (0 = all)")
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=[],
                   help="run each once per dtype policy (default: the one TRANSFERLAB_PRECISION picks)")
    return p.parse_args()


def data_section(args: argparse.Namespace) -> dict:
    return {"dataset": str(args.dataset.resolve()), "test_fraction": args.test_fraction, "seed": args.seed,
            "max_per_class": args.max_per_class, "train_per_class": args.train_per_class}


def probe(args: argparse.Namespace) -> Evaluation:
    """The notebook baseline: frozen pooled Lite0 features -> standardised logistic regression."""
    from core.training.plan import SweepData
    spec = SweepSpec.from_dict({"name": "probe", "data": data_section(args)})
    data = SweepData(spec)
    features = data.runner(spec.params, cached=True).pooled_features(spec.params)
    y = data.dataset.labels
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(features[data.train_rows], y[data.train_rows])
    return Evaluation(data.dataset.classes, y[data.test_rows], model.predict_proba(features[data.test_rows]))


def sweep(spec: SweepSpec) -> Evaluation:
    """The spec run to its end as `python -m core sweep` runs it, in a store of its own: created as the CLI
    creates it, so it trains on the dataset's latest label decisions (the `--clean` run's relabelling)."""
    from core.runs.store import RunStore
    from core.search.executors import run_sweep
    from core.search.lifecycle import create
    from core.settings import load_settings
    store = RunStore(os.environ["TRANSFERLAB_STORAGE"])
    create(store, spec, load_settings(), confine=False)
    final = run_sweep(store, spec.name, say=lambda line: print(f"  {line}", file=sys.stderr))
    if final is None:
        raise SystemExit(f"{spec.name}: {store.sweep(spec.name).failure or 'no final model'}")
    for trial in store.trials(spec.name):
        print(f"  {spec.name} {trial_line(trial)}", file=sys.stderr)
    for variant in final.variants:
        print(f"  {spec.name} {variant.label}: test accuracy {variant.test_accuracy:.4f}", file=sys.stderr)
    if spec.search.time_limit_s:
        from core.search.time_left import budget_note
        note = budget_note(store.sweep(spec.name), store.trials(spec.name))
        print(f"  {spec.name} time budget: {note or 'not reached'}", file=sys.stderr)
    return Evaluation.from_json(final.test)


def trial_line(trial: TrialRecord) -> str:
    """A trial as the table under its sweep reads: what it tried, how it ended, its folds' best epochs."""
    line = f"trial {trial.number} {trial.params}: {trial.state.name.lower()}"
    if trial.result is not None:
        line += (f", CV error {trial.result.value:.4f} +- {trial.result.value_std:.4f}, best epochs "
                 f"{[f.best_epoch for f in trial.result.folds]}, {trial.result.duration_s / 60:.1f} min")
        line += f", {trial.result.stopped_early}" if trial.result.stopped_early else ""
    return line + (f", {trial.error}" if trial.error else "")


def run(name: str, args: argparse.Namespace) -> Evaluation:
    if name == "probe":
        return probe(args)
    if name == "default":
        return sweep(SweepSpec.from_dict({"name": "default", "data": data_section(args)}))
    if name == "svm":
        return sweep(SweepSpec.from_dict({"name": "svm", "data": data_section(args), "search": SVM_SEARCH,
                                          "params": {"kind": "svm"}}))
    return sweep(preset_spec(args, "preset"))


def preset_spec(args: argparse.Namespace, name: str) -> SweepSpec:
    preset = load_yaml(args.preset.read_text())
    preset["data"] = {**preset.get("data", {}), **data_section(args)}
    return SweepSpec.from_dict(preset | {"name": name})


def budgeted(args: argparse.Namespace, minutes: float, suffix: str = "") -> Evaluation:
    """The preset as the planner fits it to `minutes`, from the speed measured here, now (part of the time)."""
    from core.search.budget import plan_sweep
    base = preset_spec(args, f"budget{minutes:g}{suffix}")
    plan, speed = plan_sweep(base, minutes * 60)
    print(f"  {base.name}: Lite0 {speed:.1f} images/s; plan: {plan.describe()}", file=sys.stderr)
    return sweep(plan.spec(base))


def row(name: str, evaluation: Evaluation, seconds: float) -> tuple[str, float, float, float, int]:
    """One line of the table (name, test accuracy, macro F1, seconds, test images), also said as it ends."""
    accuracy, f1 = evaluation.accuracy(), evaluation.summary()["f1_macro"]
    print(f"{name}: test accuracy {accuracy:.4f}, macro F1 {f1:.4f}, {seconds / 60:.1f} min", file=sys.stderr)
    return name, accuracy, f1, seconds, len(evaluation.y_true)


def accept_suspects(args: argparse.Namespace, sweep_name: str) -> int:
    """Relabel the training images cleanlab flags in `sweep_name`'s suspect ranking (every one, or the first
    `--clean-top` of them) as their suggested class (a new decisions version of the dataset, in this run's
    home); returns how many."""
    from core.data.datasets import load_dataset
    from core.data.decisions import Action, Decision, DecisionLog, relative_path
    from core.quality.suspects import rank_suspects
    from core.runs.store import RunStore
    flagged = [s for s in rank_suspects(RunStore(os.environ["TRANSFERLAB_STORAGE"]), sweep_name) if s.flagged]
    flagged = flagged[: args.clean_top or None]
    found = load_dataset(args.dataset.resolve(), decisions=False)
    DecisionLog(args.dataset.resolve()).record(
        [Decision(relative_path(found, s.path), Action.RELABEL, label=s.suggested) for s in flagged], found,
        who="bench")
    return len(flagged)


def main() -> None:
    args = parse_args()
    if "preset" in args.runs and not args.preset.is_file():
        raise SystemExit(f"no preset at {args.preset}")
    rows = []
    names = [n for n in args.runs if n != "budget"] + [f"budget{m:g}" for m in args.budgets if "budget" in args.runs]
    precisions = args.precisions or [None]
    for name, precision in ((n, p) for n in names for p in precisions):
        if precision is not None:
            os.environ[PRECISION_VARIABLE] = precision      # the sweep's workers inherit it
            configure_device.cache_clear()                  # and this process sets it again
        label = name if len(precisions) == 1 else f"{name}@{precision}"
        with tempfile.TemporaryDirectory() as home:      # cold caches, fresh store
            os.environ.update({"TRANSFERLAB_CACHE": str(Path(home) / "cache"),
                               "TRANSFERLAB_STORAGE": f"sqlite:///{Path(home) / 'runs.db'}",
                               "TRANSFERLAB_HOME": home})
            started = time.perf_counter()
            evaluation = budgeted(args, float(name[6:])) if name.startswith("budget") else run(name, args)
            rows.append(row(label, evaluation, time.perf_counter() - started))
            if args.clean and name.startswith(("budget", "preset")):
                relabelled = accept_suspects(args, name)
                print(f"  {name}: accepted {relabelled} suspects cleanlab flags (relabelled as suggested)",
                      file=sys.stderr)
                started = time.perf_counter()
                evaluation = (budgeted(args, float(name[6:]), suffix="-clean") if name.startswith("budget")
                              else sweep(preset_spec(args, "preset-clean")))
                rows.append(row(f"{label}+clean", evaluation, time.perf_counter() - started))
    probe_accuracy = next((r[1] for r in rows if r[0].partition("@")[0] == "probe"), None)
    regime = f", {args.train_per_class} training images per class" if args.train_per_class else ""
    print(f"\n{args.dataset.name}: seed {args.seed}, test fraction {args.test_fraction}{regime}")
    print(f"{'run':<24}{'test acc':>10}{'macro F1':>10}{'minutes':>10}{'test n':>8}{'vs probe':>10}")
    for name, accuracy, f1, seconds, n in rows:
        gain = f"{(accuracy - probe_accuracy) * 100:+.1f} pt" if probe_accuracy is not None else "-"
        print(f"{name:<24}{accuracy:>10.4f}{f1:>10.4f}{seconds / 60:>10.1f}{n:>8}{gain:>10}")


if __name__ == "__main__":
    main()
