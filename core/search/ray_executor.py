"""A sweep's workers as Ray tasks (Ray Core, not Ray Tune): one task per worker slot, anywhere in a cluster.

Each task runs the ordinary worker loop, `python -m core worker`, in a fresh process (so TensorFlow gives
its memory back when it ends) against the sweep's store: Optuna's storage still hands out the trials, keeps
the heartbeats and the live records, so a Ray sweep is the same sweep as a local one. Ray places the tasks
on nodes with the CPUs and GPUs the spec's `resources` ask for, and retries a task lost with its node; the
trial that node held is failed and queued again by the heartbeat rule, as for any killed worker.

Every node needs this checkout at the same path with its virtual environment (the task imports this module
and runs `python -m core` there), and must reach the store, the datasets and the artifact store.
Ray is imported only here, and only when a sweep asks for it.
"""
from __future__ import annotations

import ctypes
import math
import os
import signal
import subprocess
from collections.abc import Callable
from functools import partial

from core.data.images import CPUS_VARIABLE
from core.runs.store import RunStore
from core.search.lifecycle import child_environment, python_command
from core.search.placement import Executor
from core.settings import REPO_ROOT
from core.spec.sweep import ResourcesSpec

POLL_S = 2.0
MAX_RETRIES = 3                  # a task whose node died runs again elsewhere, this many times
LOG_TAIL_LINES = 200             # of a task's worker output, brought back to the driver's log folder
FORWARDED_PREFIXES = ("TRANSFERLAB_", "AWS_")
MACHINE_LOCAL = {"TRANSFERLAB_HOME", "TRANSFERLAB_CACHE"}    # each node keeps its own


class RayJoinError(RuntimeError):
    """This process cannot join the Ray cluster (no token for it, nobody at the address): the user's to fix."""


def forwarded_environment(store: RunStore) -> dict[str, str]:
    """What the driver hands every task: the store (never on a command line), the artifact store, AWS
    credentials and the other Transfer Lab settings, but not the folders each machine keeps for itself."""
    return {k: v for k, v in child_environment(store).items()
            if k.startswith(FORWARDED_PREFIXES) and k not in MACHINE_LOCAL}


def task_options(resources: ResourcesSpec) -> dict:
    """A worker task's Ray options: the spec's CPUs and GPUs per trial; retried when its node dies, never
    for an error of its own (the worker's exit code says what happened)."""
    return {"num_cpus": resources.cpus_per_trial, "num_gpus": resources.gpus_per_trial,
            "max_retries": MAX_RETRIES, "retry_exceptions": False}


def task_environment(forwarded: dict[str, str]) -> dict[str, str]:
    """The worker process's environment inside a task: the node's own (with the CUDA_VISIBLE_DEVICES and
    OMP_NUM_THREADS Ray set for this task), the driver's settings, and TRANSFERLAB_CPUS: the CPUs Ray gave
    the task, which size the worker's decode pool and TensorFlow's threads (os.cpu_count() is the node's)."""
    import ray
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    return os.environ | forwarded | {CPUS_VARIABLE: str(max(1, math.floor(cpus)))}


def _dies_with_parent() -> Callable[[], None] | None:
    """For the worker process before it starts: killed when the task's process dies (Linux's
    PR_SET_PDEATHSIG), so a task lost with its process never leaves a worker holding a trial. The C
    function is looked up here, before the fork: nothing but the call runs in the child."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return partial(prctl, 1, int(signal.SIGKILL))


def worker_task(name: str, forwarded: dict[str, str]) -> tuple[int, str]:
    """The body of one Ray task: a `python -m core worker` process on this node until the sweep has
    nothing left for it (or Stop); returns its exit code and the tail of its output."""
    proc = subprocess.run(python_command("worker", "--sweep", name), cwd=REPO_ROOT, env=task_environment(forwarded),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          preexec_fn=_dies_with_parent())
    lines = proc.stdout.decode(errors="replace").splitlines()
    return proc.returncode, "\n".join(lines[-LOG_TAIL_LINES:])


def connect(address: str | None) -> None:
    """Join the Ray cluster at `address` ("auto", "ray://host:10001", "host:6379"; None: $RAY_ADDRESS, else
    a new local Ray on this machine), once per process: Ray shuts it down when the process exits."""
    import ray
    from ray.exceptions import AuthenticationError
    if ray.is_initialized():
        return
    local = address is None and not os.environ.get("RAY_ADDRESS")
    try:
        ray.init(address=address, log_to_driver=False, **({"include_dashboard": False} if local else {}))
    except AuthenticationError:
        raise RayJoinError(f"the Ray cluster at {address or os.environ.get('RAY_ADDRESS')} uses token "
                           "authentication and this machine has no token for it: set RAY_AUTH_TOKEN to the "
                           "head node's token (`ray get-auth-token` there)") from None
    except ConnectionError as error:
        raise RayJoinError(f"cannot join the Ray cluster at {address or os.environ.get('RAY_ADDRESS')}: "
                           f"{error}") from None


def run_ray_workers(store: RunStore, name: str, executor: Executor, resources: ResourcesSpec,
                    say: Callable[[str], None], tick: Callable[[], None]) -> None:
    """Run `executor.workers` worker tasks until they all end, calling `tick` every few seconds.

    Each task's output tail lands in the driver's `logs/ray-worker-N.log`; an exit is judged as a local
    worker's (`worker_exited`). A task that fails for good (its node died more than MAX_RETRIES times) is
    reported and the driver goes on: the heartbeat rule requeues its trial.
    """
    import ray
    from ray.exceptions import RayError

    from core.search.executors import worker_exited
    connect(executor.ray_address)
    task = ray.remote(worker_task).options(**task_options(resources))
    forwarded = forwarded_environment(store)
    refs = {task.remote(name, forwarded): i for i in range(executor.workers)}
    log_dir = store.local_folder(name) / "logs"
    log_dir.mkdir(exist_ok=True)
    pending = list(refs)
    while pending:
        done, pending = ray.wait(pending, timeout=POLL_S)
        tick()
        for ref in done:
            who, log_path = f"Ray worker {refs[ref]}", log_dir / f"ray-worker-{refs[ref]}.log"
            try:
                code, output = ray.get(ref)
            except RayError as error:       # lost with its node, MAX_RETRIES times
                say(f"{who} was lost ({type(error).__name__}); its trial will be retried")
                continue
            log_path.write_text(output + "\n")
            worker_exited(store, name, who, code, log_path, say)
