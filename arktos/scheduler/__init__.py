"""The unified scheduler: one scheduler for container pods and VM pods, over one or many resource partitions.

    from arktos.scheduler import Scheduler, SchedulerOptions

Parts: `NodeCache` (nodes as numpy array rows, placed and assumed pods),
`Framework` with `FilterPlugin` / `ScorePlugin` (vectorised over all nodes),
`SchedulingQueue` (priority, backoff, parking until the cluster changes),
and `Scheduler`, the component behind `arktos scheduler`.  The node labels
that advertise runtimes are `RUNTIME_CONTAINER_LABEL` and `RUNTIME_VM_LABEL`.
"""

from arktos.scheduler.framework import FilterPlugin, Framework, PodInfo, ScheduleResult, ScorePlugin
from arktos.scheduler.nodecache import RUNTIME_CONTAINER_LABEL, RUNTIME_VM_LABEL, NodeCache
from arktos.scheduler.plugins import default_filters, default_scores
from arktos.scheduler.queue import QueuedPod, SchedulingQueue
from arktos.scheduler.scheduler import DEFAULT_SCHEDULER_NAME, Scheduler, SchedulerOptions

__all__ = [
    "DEFAULT_SCHEDULER_NAME",
    "RUNTIME_CONTAINER_LABEL",
    "RUNTIME_VM_LABEL",
    "FilterPlugin",
    "Framework",
    "NodeCache",
    "PodInfo",
    "QueuedPod",
    "ScheduleResult",
    "Scheduler",
    "SchedulerOptions",
    "SchedulingQueue",
    "ScorePlugin",
    "default_filters",
    "default_scores",
]
