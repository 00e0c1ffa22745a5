"""`python -m core ...`: headless sweeps, workers, results, prediction and export.

`--help` and argument errors never import TensorFlow. User mistakes (a missing file, a bad
spec field, an unknown sweep) print one clear line on stderr and exit 2, no traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from core.cli_args import (
    EXIT_USER_ERROR,
    UserError,
    add_executor_arguments,
    budget_time,
    executor_of,
    int_from,
    open_store,
    sweep_name,
    user_error_line,
    work_store,
)
from core.inference.export_files import FORMATS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _bar(desc: str, unit: str, total: int | None = None, **options):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, **options)


def _follow(bar) -> Callable[[int, int], None]:
    """A (done, total) progress callback that moves `bar`."""
    def progress(done: int, total: int) -> None:
        bar.total = total or None
        bar.n = done
        bar.refresh()
    return progress


def cmd_scan(args: argparse.Namespace) -> int:
    from core.data.scan import scan_dataset
    with _bar("scanning", "img", disable=args.json) as bar:
        report = scan_dataset(args.dir, progress=_follow(bar))
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.format_text())
    return 0


def _run(store, name: str, executor) -> int:
    """Run the sweep to its end: 0 when it finished or stopped, 1 when it failed (the reason on stderr)."""
    from core.runs.records import SweepStatus
    from core.search.executors import run_sweep
    from core.search.lifecycle import view
    from core.search.time_left import Countdown
    bar = _bar(name, "trial")          # its total comes with the first progress: the driver reads the spec
    left = Countdown(lambda: view(store, name).left)
    try:
        record = run_sweep(store, name, executor, say=bar.write, progress=_follow(bar), download=_download_bar,
                           stage=lambda line: bar.set_postfix_str(" · ".join(filter(None, (line[-90:], left())))))
    finally:
        bar.close()
    sweep = store.sweep(name)
    if sweep.status == SweepStatus.FAILED:
        print(_failure_line(sweep), file=sys.stderr)
        return 1
    if record:
        print(f"best trial {record.trial}: CV error {record.cv_error:.4f}, "
              f"test accuracy {record.test_accuracy:.4f}; model {store.model_file(record.model_path)}")
    return 0


@contextmanager
def _download_bar(label: str) -> Iterator[Callable[[int, int], None]]:
    """A bytes bar for one weights download, gone when it ends."""
    with _bar(label, "B", unit_scale=True, leave=False) as bar:
        yield _follow(bar)


def _failure_line(sweep) -> str:
    return f"sweep {sweep.name} failed: {sweep.failure or 'no reason recorded'}"


def cmd_sweep(args: argparse.Namespace) -> int:
    from core.spec.sweep import SweepSpec
    path = Path(args.spec)
    if not path.is_file():
        raise UserError(f"spec file {path} does not exist")
    spec = SweepSpec.from_yaml(path.read_bytes())
    if args.name:
        spec.name = args.name
    args.storage = args.storage or spec.storage or None
    from core.search.lifecycle import create
    from core.settings import load_settings
    store = work_store(args)
    if args.budget:
        spec = _planned(store, spec, args.budget)
    created = create(store, spec, load_settings(), confine=False)     # your own machine: any folder of yours
    from core.search.sweep_plan import SweepPlan
    print(f"{'created' if created else 'resuming'} sweep {spec.name!r} in {store.url_for_humans}: "
          f"{SweepPlan.of(spec).describe()}", file=sys.stderr)
    return _run(store, spec.name, args.executor_choice)


def _planned(store, spec, budget_s: float):
    """The spec fitted to the time budget on this machine (its time limit, plan and estimate kept in it); a sweep
    the store holds already resumes with the plan it was created with (planning again would measure again)."""
    if spec.name in store.sweep_names():
        kept = store.spec(spec.name)
        print(f"sweep {spec.name!r} exists: it keeps the plan it was created with "
              f"({kept.search.plan or 'no time budget'})", file=sys.stderr)
        return kept
    from core.search.budget import plan_sweep
    plan, speed = plan_sweep(spec, budget_s)
    print(f"planned for this machine (Lite0: {speed:.0f} images/s): {plan.describe()}", file=sys.stderr)
    return plan.spec(spec)


def cmd_resume(args: argparse.Namespace) -> int:
    return _run(work_store(args), args.name, args.executor_choice)


def cmd_worker(args: argparse.Namespace) -> int:
    from core.search.worker import Watch, run_worker
    ran = run_worker(work_store(args), args.sweep, Watch(say=lambda m: print(m, file=sys.stderr)))
    print(f"worker finished: {ran} trial(s) run", file=sys.stderr)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    from core.search.lifecycle import stop
    stop(open_store(args), args.name)
    print(f"asked the workers of {args.name!r} to stop after their current epoch", file=sys.stderr)
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    from core.search.lifecycle import delete
    store = open_store(args)
    trials = len(store.trials(args.name))         # also: StoreError when there is no such sweep
    question = (f"delete sweep {args.name!r}: its {trials} trial(s) and its files in "
                f"{store.artifacts.location}? [y/N] ")
    if not (args.yes or _confirm(question)):
        print(f"kept sweep {args.name!r}", file=sys.stderr)
        return 1
    delete(store, args.name)
    print(f"deleted sweep {args.name!r}")
    return 0


def _confirm(question: str) -> bool:
    try:
        return input(question).strip().lower() in ("y", "yes")
    except EOFError:                              # no terminal, nobody to answer: no
        print()
        return False


def cmd_list(args: argparse.Namespace) -> int:
    import pandas as pd

    from core.runs.records import SweepStatus
    store = open_store(args)
    table = store.sweeps()
    with pd.option_context("display.width", 160, "display.max_columns", 30):
        print(table.to_string(index=False) if len(table) else "no sweeps yet")
    for name in table.loc[table["status"] == SweepStatus.FAILED.value, "sweep"]:
        print(_failure_line(store.sweep(name)))
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from core.search.time_left import budget_note
    store = open_store(args)
    frame = store.trials_frame(args.name)
    sweep = store.sweep(args.name)
    final = store.final(args.name, local=True)        # model paths: local files, for predict and export
    test = final.evaluation("test") if final else None
    if args.json:
        summary = {k: v for k, v in final.to_json().items() if k not in ("test", "train")} \
            | {"test_summary": test.summary() if test else {}} if final else {}
        print(json.dumps({"sweep": args.name, "status": sweep.status.value, "failure": sweep.failure,
                          "budget_note": budget_note(sweep, store.trials(args.name)),
                          "trials": json.loads(frame.to_json(orient="records")), "final": summary}, indent=2))
    elif args.csv:
        from core.text import csv_text
        print(csv_text(frame), end="")
    else:
        import pandas as pd
        with pd.option_context("display.width", 160, "display.max_columns", 30):
            print(frame.drop(columns=["fold_errors"], errors="ignore").to_string(index=False))
        if final and test:
            low, high = test.accuracy_interval()
            print(f"\nfinal model: trial {final.trial}, test accuracy {final.test_accuracy:.4f} (95% interval "
                  f"{low:.4f}-{high:.4f}, {len(test.y_true)} images), {final.model_path}")
            if final.why:
                print(f"why trial {final.trial}: {final.why}")
        if note := budget_note(sweep, store.trials(args.name)):
            print(f"\ntime budget: {note}")
        if sweep.failure:
            print(f"\n{_failure_line(sweep)}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from core.inference.imagenet import CLI_NAME, TOP_K, model_for
    from core.inference.predict import Prediction, predict_images
    loaded = model_for(args.model)
    top_k = args.top_k or (TOP_K if args.model == CLI_NAME else 3)
    files = [p for p in args.images if not Path(p).is_dir()]
    predicted: Iterator[Prediction] = iter(predict_images(loaded, [(p, p) for p in files], top_k=top_k))
    results = [Prediction(name=p, error="a folder, not an image file: name its images") if Path(p).is_dir()
               else next(predicted) for p in args.images]
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        for r in results:
            ranking = ", ".join(f"{c} {p:.3f}" for c, p in r.top)
            line = r.error and f"error: {r.error}" or r.refusal and f"{r.refusal}; ranking: {ranking}" or ranking
            print(f"{r.name}: {line}")
    if loaded.no_unknowns and args.model != CLI_NAME:
        print(f"note: no open-set detector, so no image is called none of the classes: {loaded.no_unknowns}",
              file=sys.stderr)
    if loaded.temperature is not None:
        print(f"note: probabilities calibrated by temperature scaling (T = {loaded.temperature:.3f})", file=sys.stderr)
    return 1 if any(r.error for r in results) else 0


def cmd_export(args: argparse.Namespace) -> int:
    from core.inference.exports import (
        ExportCheckError,
        ExportTargetError,
        destination,
        export,
        final_card,
        split_images,
    )
    store = open_store(args)
    final = store.final(args.name, local=True)
    if not final:
        raise UserError(f"sweep {args.name!r} has no final model yet: run or resume it until it finishes")
    folder, name = destination(args.out, args.format)
    try:
        result = export(final.model_path, args.format, folder, name=name, images=split_images(final),
                        card=final_card(final, store.spec(args.name)), force=args.force)
    except ExportTargetError as error:
        raise UserError(str(error)) from None
    except ExportCheckError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        raise UserError(f"cannot export to {args.out}: {error.strerror or error}"
                        f"{f' ({error.filename})' if error.filename else ''}") from None
    print(f"exported {args.name!r} best model to {result.path} (with {result.files[1].name})")
    print(result.summary())
    return 0


def cmd_fetch_example(args: argparse.Namespace) -> int:
    from core.data.fetch import fetch_example
    from core.settings import load_settings
    with _bar(f"downloading {args.name}", "B", unit_scale=True) as bar:
        folder = fetch_example(args.name, Path(args.into) if args.into else load_settings().upload_root,
                               progress=_follow(bar))
    print(f"example dataset {args.name!r} is in {folder}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from core.data.image_cache import cache_info, clear_cache
    from core.settings import load_settings
    from core.training.activations import ActivationCache
    root = load_settings().cache_dir
    activations = ActivationCache(root)
    if args.clear:
        freed = activations.clear() + clear_cache(root)
        print(f"cleared {freed / 1e6:.1f} MB from {root}")
    else:
        print(json.dumps({"activations": activations.usage(), "images": cache_info(root)}, indent=2))
    return 0


def cmd_suspects(args: argparse.Namespace) -> int:
    from core.quality.cli_suspects import print_suspects
    return print_suspects(open_store(args), args)


def cmd_relabel(args: argparse.Namespace) -> int:
    from core.data.cli_relabel import relabel_text
    from core.data.datasets import dataset_path_anywhere
    from core.settings import load_settings
    print(relabel_text(dataset_path_anywhere(args.dataset, load_settings().data_roots), csv_file=args.csv_file,
                       undo=args.undo, who=args.who))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Transfer Lab engine: datasets, "
                                     "K-fold sweeps of pretrained CNNs, results, prediction.")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, func, help: str, storage: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(func=func)
        if storage:
            p.add_argument("--storage", help="run store URL (SQLAlchemy; default: the project's SQLite file "
                                             "or $TRANSFERLAB_STORAGE)")
        return p

    p = add("scan", cmd_scan, "report on a dataset: counts, sizes, broken files, duplicates, label conflicts")
    p.add_argument("dir")
    p.add_argument("--json", action="store_true")
    p = add("sweep", cmd_sweep, "run (or resume) the sweep a YAML spec describes", storage=True)
    p.add_argument("spec")
    add_executor_arguments(p)
    p.add_argument("--name", type=sweep_name, help="override the spec's sweep name")
    p.add_argument("--budget", type=budget_time, help="fit the spec to a time budget (30m, 1h, 900s), from this "
                   "machine's measured speed: backbone, unfrozen layers, epochs, views (core/search/budget.py); "
                   "the sweep keeps it (core/search/deadline.py); an existing sweep resumes with its own plan")
    p = add("resume", cmd_resume, "resume a sweep already in the store", storage=True)
    p.add_argument("name")
    add_executor_arguments(p)
    p = add("worker", cmd_worker, "join a running sweep from any machine that reaches the store", storage=True)
    p.add_argument("--sweep", required=True)
    p = add("stop", cmd_stop, "ask a running sweep's workers to stop", storage=True)
    p.add_argument("name")
    p = add("delete", cmd_delete, "delete a sweep that is not running: its trials, record and artifacts",
            storage=True)
    p.add_argument("name")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    add("list", cmd_list, "every sweep in the store: status, trial counts, best error, why it failed",
        storage=True)
    p = add("results", cmd_results, "trials, values, parameters and test metrics of a sweep", storage=True)
    p.add_argument("name")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    p = add("predict", cmd_predict, "classify images with a trained model (.keras), or with the built-in "
            "ImageNet-1k EfficientNet-Lite0 (model: imagenet; offline)")
    p.add_argument("model", help="a .keras file, or imagenet for the built-in ImageNet-1k model")
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int_from(1), help="classes shown per image (default 3; 5 for imagenet)")
    p.add_argument("--json", action="store_true")
    p = add("export", cmd_export, "export a sweep's best model", storage=True)
    p.add_argument("name")
    p.add_argument("--format", choices=FORMATS, default="keras",
                   help="each export is reloaded in its own runtime and checked against the model")
    p.add_argument("out", help="folder to export into, or a file named like the format (x.keras, x.onnx, x.tflite)")
    p.add_argument("--force", action="store_true",
                   help="replace the model, model_card.json and README.md an earlier export left there")
    p = add("fetch-example", cmd_fetch_example, "download an example dataset (needs internet)")
    p.add_argument("name", choices=("flowers",))
    p.add_argument("--into", help="data folder (default: the first data root)")
    p = add("cache", cmd_cache, "size of the image and activation caches, or --clear them")
    p.add_argument("--clear", action="store_true")
    p = add("suspects", cmd_suspects, "training images whose label looks wrong, most suspect first, from the "
            "sweep's out-of-fold scores (cleanlab)", storage=True)
    p.add_argument("name")
    p.add_argument("--top", type=int_from(1), help="show only the first N (default: every training image)")
    p.add_argument("--trials", type=int_from(1), default=1, help="average the best K trials' scores (default 1)")
    p.add_argument("--outliers", action="store_true", help="add cleanlab's outlier score (near 0 = unlike the "
                   "rest) from the cached backbone features; runs the backbone if the cache is cold")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    p = add("relabel", cmd_relabel, "label decisions of a dataset (relabel, exclude, fine), kept as versions "
            "in the project, never by touching the images: import a CSV, undo the last save, or show them")
    p.add_argument("dataset")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--from", dest="csv_file", help="CSV with columns path,action,label (a new version)")
    what.add_argument("--undo", action="store_true", help="go back to the version before the last save")
    what.add_argument("--show", action="store_true", help="print the current decisions as CSV")
    p.add_argument("--who", default="", help="name recorded with the new version")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if hasattr(args, "executor"):
        args.executor_choice = executor_of(parser, args)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        line = user_error_line(error, args)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        return EXIT_USER_ERROR
