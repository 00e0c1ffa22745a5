"""What the user hands the CLI: argument types, the run store and folders they name, and which
errors are theirs (one line, exit 2) rather than bugs (which keep their traceback).

Nothing here imports TensorFlow, so `--help` and argument errors stay fast.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake the user can fix; printed as one line, exit code 2."""


def int_from(low: int, high: Callable[[], int] | None = None, why: str = "") -> Callable[[str], int]:
    """An argparse type: a whole number in low..high() (`why` says where the top comes from)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum {low}")
        if high is not None and value > high():
            raise argparse.ArgumentTypeError(f"{value} is above the maximum {high()} ({why})")
        return value
    return parse


def sweep_name(text: str) -> str:
    """An argparse type: the spec's one rule for sweep names."""
    from core.spec.sweep import SpecError, check_sweep_name
    try:
        return check_sweep_name(text)
    except SpecError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("name: ")) from None


WORKERS = int_from(1, lambda: os.cpu_count() or 1, "this machine's CPUs")


def add_executor_arguments(parser: argparse.ArgumentParser) -> None:
    """--workers, --executor and --ray-address: where a driver runs the sweep's workers."""
    parser.add_argument("--workers", type=int_from(1), default=1,
                        help="worker processes on this machine, or Ray tasks with --executor ray (default 1)")
    from core.search.placement import EXECUTORS
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="local: processes on this machine (default); ray: one Ray task per worker, "
                             "each with the spec's resources (needs requirements-ray.txt)")
    parser.add_argument("--ray-address", help="Ray cluster to join: auto, ray://HOST:10001 or HOST:6379 "
                        "(default: $RAY_ADDRESS, else a local Ray on this machine)")


def executor_of(parser: argparse.ArgumentParser, args: argparse.Namespace):
    """The `Executor` the options name; a usage error for more local workers than this machine has CPUs
    (a Ray cluster's size is the cluster's to judge)."""
    from core.search.placement import Executor
    if args.executor == "local":
        try:
            WORKERS(str(args.workers))
        except argparse.ArgumentTypeError as error:
            parser.error(f"argument --workers: {error}")
    elif args.ray_address is not None and not args.ray_address.strip():
        parser.error("argument --ray-address: empty")
    return Executor(args.executor, args.workers, args.ray_address)


def _storage_url(args: argparse.Namespace) -> str:
    from core.settings import load_settings
    return getattr(args, "storage", None) or load_settings().storage_url


def _store_named(args: argparse.Namespace) -> str:
    from core.runs.store_messages import url_for_humans
    return f"run store {url_for_humans(_storage_url(args))}"


def open_store(args: argparse.Namespace):
    """The run store `--storage` (or the settings) names."""
    from core.runs.store import RunStore
    try:
        return RunStore(args.storage)
    except (ImportError, OSError) as error:        # a database driver not installed, a folder not made
        raise UserError(f"{_store_named(args)}: {error}") from None


def _writable(folder: Path, what: str) -> None:
    """UserError naming `folder` unless a file can be written in it (made if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UserError(f"{what} folder {folder} is not writable ({error.strerror or error})") from None


def work_store(args: argparse.Namespace):
    """The store for a command that runs trials, once the folders they write to are known to be writable
    (else every trial would fail on them, one traceback each)."""
    from core.settings import load_settings
    store = open_store(args)
    _writable(load_settings().cache_dir, "cache")
    _writable(store.artifacts_dir, "artifacts")
    return store


def user_error_line(error: Exception, args: argparse.Namespace) -> str | None:
    """The one line to print for a mistake in what the user gave us (a store that cannot serve, a
    missing file, a bad spec), or None for a bug."""
    if "sqlalchemy" in sys.modules:             # else no store was ever opened: it cannot be the store
        from core.runs.store_messages import database_reason
        reason = database_reason(error)
        if reason:
            return f"{_store_named(args)}: {reason}"
    return str(error) if _is_user_error(error) else None


def _is_user_error(error: Exception) -> bool:
    from core.runs.store import StoreError
    from core.spec.sweep import SpecError
    kinds: list[type] = [UserError, SpecError, StoreError, FileNotFoundError]
    for module, name in (("core.data.datasets", "DatasetError"), ("core.inference.model_card", "ModelFileError"),
                         ("core.models.weights", "WeightsNotFoundError"), ("core.data.fetch", "FetchError"),
                         ("core.data.images", "BadImageError"), ("core.data.splits", "SplitError"),
                         ("core.search.ray_executor", "RayJoinError"),
                         ("core.settings", "SettingsError")):
        mod = sys.modules.get(module)
        if mod is not None and hasattr(mod, name):
            kinds.append(getattr(mod, name))
    return isinstance(error, tuple(kinds))


def budget_time(text: str) -> float:
    """An argparse type: a time budget (30m, 1h, 900s) in seconds."""
    from core.search.budget import parse_budget
    try:
        return parse_budget(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
