"""Connecting to Ray: a cluster's address, the session this process already has, or a small local one."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

#: A local cluster's object store: parts never pass through it (workers read inputs and write parts
#: themselves), only plans and summaries do; Ray's floor is 75 MiB.
LOCAL_OBJECT_STORE_BYTES = 100 * 1024 * 1024


@contextmanager
def ray_session(address: str | None = None, cpus: int | None = None) -> Iterator[int]:
    """Yield the cluster's CPU count. A local cluster started here (no ``address``, none running) has
    ``cpus`` CPUs (default: this machine's), no dashboard, a small object store, and is stopped at the end."""
    import ray
    import ray.data

    started = False
    if not ray.is_initialized():
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING, "configure_logging": True}
        if address:
            ray.init(address=address, **quiet)
        else:
            ray.init(
                num_cpus=cpus or os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                **quiet,
            )
        started = True
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    try:
        yield max(1, int(ray.cluster_resources().get("CPU", 1)))
    finally:
        if started:
            ray.shutdown()
