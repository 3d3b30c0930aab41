"""How chunks run: the one place that decides.

The threaded scheduler, a dask-free thread pool (for a PNG where dask was never loaded),
a distributed client (:func:`compute_context`: a running scheduler or a ``LocalCluster``),
how many threads a network source wants (:func:`compute_options`), row blocks computed in
order with bounded prefetch and progress (:func:`row_blocks`), and the runner a writer is
handed for its own tasks (:func:`make_runner`, a
:class:`~minerva_dask.writers._runner.Runner`). Writers never pick any of these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._context import (
    SCHEDULER_TIMEOUT_S,
    check_cluster_options,
    check_compute_options,
    compute_context,
    compute_options,
    dask_may_be_configured,
    default_client,
    uses_threaded_scheduler,
)
from ._rows import array_row_blocks, row_blocks

if TYPE_CHECKING:
    from ..writers._runner import Runner

__all__ = [
    "SCHEDULER_TIMEOUT_S",
    "array_row_blocks",
    "check_cluster_options",
    "check_compute_options",
    "compute_all",
    "compute_context",
    "compute_options",
    "dask_may_be_configured",
    "default_client",
    "make_runner",
    "row_blocks",
    "uses_threaded_scheduler",
]


def make_runner(client: Any = None, compute_kwargs: dict[str, Any] | None = None) -> Runner:
    """Who runs a writer's tasks: the ``distributed.Client`` ``client``, or this process's
    threads with dask's ``compute_kwargs`` (``num_workers``, ``scheduler``...); either
    refused in one line (:func:`check_compute_options`) before any work. Without
    ``client``, the default client if there is one (:func:`default_client`)."""
    check_compute_options(client, compute_kwargs)
    client = client if client is not None else default_client(compute_kwargs)
    if client is not None:
        from ._distributed import DistributedRunner

        return DistributedRunner(client)
    from ._local import LocalRunner

    return LocalRunner(compute_kwargs)


def compute_all(collections: list[Any], client: Any = None, **kwargs: Any) -> list[Any]:
    """``collections`` computed in one dask computation, on ``client`` or with
    ``kwargs`` for ``dask.compute``; their results, in order."""
    if client is not None:
        return list(client.compute(collections, sync=True))
    import dask

    return list(dask.compute(*collections, **kwargs))
