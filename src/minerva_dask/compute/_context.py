"""Where dask computes and with how many threads: ``compute_context`` (the threaded
scheduler, a running scheduler or a ``LocalCluster``), the cluster checks, and the threads
a network source wants (``compute_options``)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from ..errors import RemoteError, RequestError
from ..sources.base import capabilities

__all__ = [
    "check_cluster_options",
    "check_compute_options",
    "compute_context",
    "compute_options",
    "dask_may_be_configured",
    "uses_threaded_scheduler",
]


@contextlib.contextmanager
def compute_context(
    scheduler: Any = None,
    *,
    local_cluster: int | None = None,
    memory_limit: str | None = None,
    progress: bool = False,
) -> Iterator[Any]:
    """Where dask computes, yielding the ``distributed.Client`` or ``None``.

    ``scheduler``: ``None`` (the default ``distributed.Client`` if this process made one,
    see :func:`default_client`; else the threaded scheduler), a ``distributed.Client``, or the
    address of a running scheduler (``"tcp://host:8786"``). ``local_cluster=N`` starts a
    ``LocalCluster`` of N worker processes (``memory_limit`` each, e.g. ``"2GB"``) for the
    duration. ``progress`` shows dask's progress bar on stderr for single computations.
    """
    check_cluster_options(scheduler, local_cluster, memory_limit)
    with contextlib.ExitStack() as stack:
        client = None
        if isinstance(scheduler, str) or local_cluster:
            from .._optional import import_optional

            distributed = import_optional(
                "distributed", "distributed", "Computing on a dask cluster"
            )
            if local_cluster:
                cluster = stack.enter_context(
                    distributed.LocalCluster(
                        n_workers=local_cluster,
                        threads_per_worker=2,
                        processes=True,
                        memory_limit=memory_limit or "auto",
                        dashboard_address=":0",  # a free port: never "8787 is in use"
                        # the workers' own log lines (a failed task's traceback among them)
                        # stay quiet: the client reports the failure, once
                        silence_logs=logging.CRITICAL,
                    )
                )
                client = stack.enter_context(distributed.Client(cluster))
            else:
                client = stack.enter_context(_connect(distributed, scheduler))
                _check_cluster_imports(client, scheduler)
            _log.info("dask dashboard: %s", client.dashboard_link)
        elif scheduler is not None:
            client = scheduler
        else:
            client = default_client()
        if progress and client is None:
            from dask.diagnostics import ProgressBar

            stack.enter_context(ProgressBar(out=sys.stderr, dt=0.2))
        try:
            yield client
        except RuntimeError as exc:  # distributed's words for a worker without our code
            if client is not None and "deserializ" in str(exc):
                raise RemoteError(_UNPICKLABLE) from None
            raise


SCHEDULER_TIMEOUT_S = 10  # how long to try reaching a scheduler before saying it is not there


def check_cluster_options(scheduler: Any, local_cluster: Any, memory_limit: Any) -> None:
    """Refuse, in the user's terms, cluster options that could only hang or fail late."""
    if local_cluster is not None and (
        isinstance(local_cluster, bool) or not isinstance(local_cluster, int) or local_cluster < 1
    ):
        raise RequestError(
            f"local_cluster (CLI: --local-cluster) must be a number of worker processes >= 1, "
            f"got {local_cluster!r}"
        )
    most = max(8, 4 * (os.cpu_count() or 1))  # 4 a core: more only exhaust the machine
    if local_cluster is not None and local_cluster > most:
        raise RequestError(
            f"local_cluster (CLI: --local-cluster) {local_cluster} is more worker processes "
            f"than this machine can run (at most {most}, 4 per core); for more, start a "
            "cluster and pass scheduler= (CLI: --scheduler)"
        )
    if local_cluster is not None and scheduler is not None:
        raise RequestError(
            "local_cluster (CLI: --local-cluster) starts a cluster here and scheduler "
            "(CLI: --scheduler) names one elsewhere: give one of them"
        )
    if isinstance(memory_limit, str) and memory_limit.lower() != "auto":
        from dask.utils import parse_bytes

        try:
            parse_bytes(memory_limit)
        except (ValueError, TypeError):
            raise RequestError(
                f"memory_limit (CLI: --memory-limit) {memory_limit!r} is not a size such as 2GB, "
                "4GiB or 500MB, nor 'auto'"
            ) from None
    client_like = isinstance(scheduler, str) or hasattr(scheduler, "submit")
    if scheduler is not None and not client_like:
        raise RequestError(
            "scheduler (CLI: --scheduler) is an address such as tcp://10.0.0.5:8786 or a "
            f"distributed.Client, not a {type(scheduler).__name__}"
        )
    if isinstance(scheduler, str):
        scheme, sep, rest = scheduler.rpartition("://")
        host, colon, port = rest.rpartition(":")
        if not colon or not port.isdigit() or not host or (sep and not scheme):
            raise RequestError(
                f"scheduler (CLI: --scheduler) {scheduler!r} is not a dask scheduler address such "
                "as tcp://10.0.0.5:8786"
            )


def check_compute_options(client: Any, compute_kwargs: Any) -> None:
    """Refuse, in one line and before any work, an export's ``client`` that is not a
    running ``distributed.Client`` (an address, a closed client) and dask compute options
    that are not a mapping or ask for fewer than one worker or an unknown scheduler."""
    if client is not None:
        if isinstance(client, str):
            raise RequestError(
                f"client= takes a distributed.Client, not an address ({client!r}): connect "
                "with distributed.Client(address), or pass the address as scheduler= to "
                "md.crop (CLI: --scheduler)"
            )
        if not hasattr(client, "submit"):
            raise RequestError(f"client= takes a distributed.Client, not a {type(client).__name__}")
        status = str(getattr(client, "status", "running"))
        if status in ("closed", "closing", "failed") or getattr(client, "scheduler", 1) is None:
            raise RequestError(
                f"client= is a distributed.Client that is {status}: pass a running one "
                "(or none, to compute here)"
            )
    if compute_kwargs is None:
        return
    if not isinstance(compute_kwargs, Mapping) or not all(
        isinstance(key, str) for key in compute_kwargs
    ):
        raise RequestError(
            "compute_kwargs must be a mapping of dask compute options such as "
            f"{{'num_workers': 4}}, got {compute_kwargs!r:.80}"
        )
    workers = compute_kwargs.get("num_workers")
    if workers is not None and (
        isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
    ):
        raise RequestError(f"num_workers must be a number of threads >= 1, got {workers!r}")
    if "scheduler" in compute_kwargs:
        from dask.base import get_scheduler

        try:
            get_scheduler(scheduler=compute_kwargs["scheduler"])
        except (ValueError, TypeError) as exc:
            raise RequestError(f"scheduler: {str(exc).splitlines()[0]}") from None
    pool = compute_kwargs.get("pool")
    if pool is not None and not hasattr(pool, "submit"):
        raise RequestError(
            f"pool must be a concurrent.futures executor, got a {type(pool).__name__}"
        )


_log = logging.getLogger("minerva_dask.cluster")  # shown with -v (see _console)


def _check_cluster_imports(client: Any, address: str) -> None:
    """Refuse, in one line, a cluster whose scheduler or workers cannot import
    minerva_dask, or import another version (they unpickle its tasks): dask's own error
    says only that the task graph could not be deserialized."""

    def version() -> str | None:  # nested: pickled by value, runs without minerva_dask
        try:
            import minerva_dask
        except ImportError:
            return None
        return str(minerva_dask.__version__)

    try:
        found = {"the scheduler": client.run_on_scheduler(version), **client.run(version)}
    except Exception as exc:  # a cluster we cannot ask: the export reports what fails
        _log.debug("cannot ask the cluster for its minerva-dask: %s", exc)
        return
    from .. import __version__ as ours

    wrong = sorted(
        f"{name} has {value or 'none'}" for name, value in found.items() if value != ours
    )
    if wrong:
        raise RemoteError(
            f"the dask cluster at {address} needs minerva-dask {ours} (this machine's) on its "
            f"scheduler and every worker: {', '.join(wrong[:3])}"
            f"{' and others' if len(wrong) > 3 else ''}"
        )


_UNPICKLABLE = (
    "the dask cluster could not unpickle minerva-dask's tasks: its scheduler and workers "
    "need the same minerva-dask, dask and Python as this machine"
)


def _connect(distributed: Any, address: str) -> Any:
    """A client of the scheduler at ``address``, or an error within
    :data:`SCHEDULER_TIMEOUT_S` seconds naming it."""
    try:
        return distributed.Client(address, timeout=SCHEDULER_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise RemoteError(
            f"cannot reach the dask scheduler at {address} within {SCHEDULER_TIMEOUT_S} s "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "is it running, and is the address right?"
        ) from None


def dask_may_be_configured() -> bool:  # kept: 25-30% of a CLI overview crop (bench/RESULTS.md)
    """Whether dask may hold settings for this process: it is imported (code may have set
    a scheduler, callbacks or a client), a ``DASK_*`` environment variable is set, or a
    file lies where dask looks for its YAML configuration. When none holds, dask would
    run a compute on its defaults: the threaded scheduler, one thread per core."""
    if "dask" in sys.modules or any(name.startswith("DASK_") for name in os.environ):
        return True
    import site

    folders = [
        "/etc/dask",
        os.path.join(sys.prefix, "etc", "dask"),
        *(os.path.join(prefix, "etc", "dask") for prefix in site.PREFIXES),
        os.path.join(os.path.expanduser("~"), ".config", "dask"),
    ]
    return any(os.path.isdir(folder) and os.listdir(folder) for folder in folders)


def uses_threaded_scheduler(kwargs: dict[str, Any]) -> bool:
    """Whether a compute with ``kwargs`` runs on dask's threaded scheduler (no
    ``scheduler=`` given, no scheduler or distributed client set as the default).
    Answered without importing dask when nothing can have configured it."""
    if "scheduler" not in kwargs and not dask_may_be_configured():
        return True
    import dask
    import dask.threaded
    from dask.base import get_scheduler

    if "scheduler" in kwargs:
        return get_scheduler(scheduler=kwargs["scheduler"]) is dask.threaded.get
    if dask.config.get("scheduler", None) is None and "distributed" not in sys.modules:
        # No scheduler configured, and no distributed Client can exist without
        # distributed imported. (get_scheduler would import distributed, 0.15-0.3 s,
        # just to look for one.)
        return True
    return get_scheduler() in (None, dask.threaded.get)


def compute_options(source: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` for ``compute``, with enough threads for a network source's latency."""
    concurrency = capabilities(source).io_concurrency
    if not concurrency or "scheduler" in kwargs or "num_workers" in kwargs:
        return kwargs
    if not uses_threaded_scheduler(kwargs):
        return kwargs  # a distributed client or another scheduler decides
    return {"num_workers": max(int(concurrency), os.cpu_count() or 1), **kwargs}


def default_client(compute_kwargs: dict[str, Any] | None = None) -> Any:
    """The ``distributed.Client`` that dask computes on by default in this process (one
    made with ``Client(...)``, unless ``set_as_default=False``), or ``None``: none, or the
    compute options or dask's configuration name another scheduler. Every export follows
    this one rule, as a plain ``.compute()`` does."""
    if "distributed" not in sys.modules:  # no client can exist: nothing to import
        return None
    if compute_kwargs and "scheduler" in compute_kwargs:
        return None
    import dask

    if dask.config.get("scheduler", None) not in (None, "dask.distributed", "distributed"):
        return None
    from distributed import default_client as current

    try:
        return current()
    except ValueError:  # "No clients found"
        return None
