"""``tf.distribute`` for the Keras tuner: ``MultiWorkerMirroredStrategy`` (workers from ``TF_CONFIG``) and
``MirroredStrategy`` (several devices of one machine).

TensorFlow needs the strategy before any variable exists, so the user (or ``finetuner fit`` in each worker)
creates it first and builds the model under ``strategy.scope()``; the tuner finds it from the model's variables.
Each worker takes its slice of the global batch (:mod:`finetuner.tuner.distributed`) and splits it over its
replicas; every replica all-gathers the embeddings (``ReplicaContext.all_gather``, whose gradient returns to
the rows' owner) so in-batch losses see the global batch, as in the PyTorch and Paddle tuners.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from finetuner.tuner.distributed import World, world_from_env
from tailor_ir.imports import import_tensorflow

tf = import_tensorflow()


def strategy_of(model: Any) -> Any:
    """The ``tf.distribute`` strategy the model's variables were created under, or None."""
    for variable in getattr(model, "variables", []):
        value = getattr(variable, "value", variable)
        strategy = getattr(value, "distribute_strategy", None) or getattr(value, "_distribute_strategy", None)
        if strategy is not None and strategy.num_replicas_in_sync > 1:
            return strategy
        break
    return None


def world_of(strategy: Any) -> World:
    """This process's place among the workers (``TF_CONFIG``; one process for a single-machine strategy)."""
    if strategy is None:
        return World()
    world = world_from_env() if getattr(strategy, "cluster_resolver", None) is not None else World()
    if strategy.num_replicas_in_sync % world.size:
        raise ValueError(
            f"the strategy has {strategy.num_replicas_in_sync} replicas for {world.size} workers: give every worker "
            "the same number of devices"
        )
    return world


def gather_rows(context: Any, rows: Any) -> Any:
    """Every replica's rows in replica order (ragged sizes padded for the collective, then cut back)."""
    count = tf.shape(rows)[:1]
    counts = context.all_gather(count, axis=0)
    longest = tf.reduce_max(counts)
    padding = [[0, longest - count[0]]] + [[0, 0]] * (len(rows.shape) - 1)
    gathered = context.all_gather(tf.pad(rows, padding), axis=0)
    parts = tf.split(gathered, context.num_replicas_in_sync)
    return tf.concat([part[: counts[i]] for i, part in enumerate(parts)], axis=0)


def _split(value: Any, parts: int, index: int) -> Any:
    if isinstance(value, dict):
        return {k: _split(v, parts, index) for k, v in value.items()}
    if isinstance(value, (tuple, list)) and value and not np.isscalar(value[0]):
        return [_split(v, parts, index) for v in value]
    array = np.asarray(value)
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32, copy=False)
    return tf.convert_to_tensor(np.array_split(array, parts)[index])


def run_step(strategy: Any, world: World, replica_step: Callable[..., Any], contents: Any, labels: np.ndarray) -> Any:
    """Run ``replica_step(inputs, labels)`` on every replica of this worker, each on its part of the worker's
    slice; every replica returns the same global loss."""
    per_worker = strategy.num_replicas_in_sync // world.size
    first = world.rank * per_worker

    def part(value: Any) -> Any:
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: _split(value, per_worker, ctx.replica_id_in_sync_group - first)
        )

    result = strategy.run(replica_step, args=(part(contents), part(labels)))
    return strategy.experimental_local_results(result)[0]
