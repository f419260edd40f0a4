"""Experience replay with the other strategies' compute: the same buffer, mix and shifts as ``replay``, but each epoch
on a task takes only as many optimiser steps as a pass over that task's own data (ceil(N / batch) full batches,
N its train examples), drawn from the stream of passes over replay's mix. Replay proper takes (finished tasks + 1)
times as many (its buffer repeated so that every finished task weighs as much as the new one), so its lead over the
others mixes the method with the compute; this variant separates them (issue: "statistics that hold up").

It runs with replay's params (``replay.buffer_size``, ``replay.shift``) and replay's tuned values: it has no search
space of its own, and ``dvc exp run -S replay.shift=2`` reruns both.
"""

from __future__ import annotations

from typing import Any, ClassVar

from forgetting.data.mnist import Split
from forgetting.strategies.replay import Replay, ReplayParams


class EqualStepsReplay(Replay):
    name = "replay_equal_steps"
    params_section: ClassVar[dict[str, Any]] = {"replay": ReplayParams}  # replay's own, written out for params.py
    search_space: ClassVar[dict[str, list[Any]]] = {}
    tuned_as = "replay"
    steps = "replay's mix, in as many optimiser steps as the others (a pass over the task's own data an epoch)"

    def steps_per_epoch(self, train: Split, batch_size: int) -> int:
        return -(-len(train) // batch_size)
