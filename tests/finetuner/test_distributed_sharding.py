"""The framework-neutral half of data-parallel training: who is which worker, and each worker's shard."""

from __future__ import annotations

import json

import numpy as np
import pytest

from finetuner.data.samplers import ClassSampler
from finetuner.tuner.distributed import ShardedSampler, World, world_from_env


def test_the_world_comes_from_torchrun_paddle_or_tf_config() -> None:
    assert world_from_env({}) == World(0, 1, 0)
    assert world_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == World(3, 4, 1)
    assert world_from_env({"PADDLE_TRAINER_ID": "1", "PADDLE_TRAINERS_NUM": "2"}) == World(1, 2, 1)
    config = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 1}}
    assert world_from_env({"TF_CONFIG": json.dumps(config)}) == World(2, 3, 0)
    with pytest.raises(ValueError, match="WORLD_SIZE"):
        world_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(ValueError, match="TF_CONFIG"):
        world_from_env({"TF_CONFIG": json.dumps({"cluster": {"worker": ["b:1"]}, "task": {"type": "ps"}})})


def test_workers_shard_every_global_batch_and_keep_m_items_per_class() -> None:
    labels = np.repeat(np.arange(10), 20)
    shards = [ShardedSampler(ClassSampler(labels, batch_size=32, m=4, seed=3), World(r, 2)) for r in (0, 1)]
    whole = ClassSampler(labels, batch_size=32, m=4, seed=3)
    for epoch in (0, 1):
        for full, left, right in zip(whole.plan(epoch), shards[0].plan(epoch), shards[1].plan(epoch)):
            np.testing.assert_array_equal(np.concatenate([left, right]), full)
            for part in (left, right):
                assert len(part) == 16 and set(np.unique(labels[part], return_counts=True)[1]) == {4}
    assert len(shards[0]) == len(whole)


def test_a_sharded_sampler_resumes_from_the_wrapped_sampler_state() -> None:
    labels = np.repeat(np.arange(8), 10)
    shard = ShardedSampler(ClassSampler(labels, batch_size=16, m=4, seed=1), World(1, 2))
    seen = [batch for _, batch in zip(range(2), iter(shard))]
    state = shard.state_dict()
    assert state["position"] == 2
    again = ShardedSampler(ClassSampler(labels, batch_size=16, m=4, seed=1), World(1, 2))
    again.load_state_dict(state)
    np.testing.assert_array_equal(next(iter(again)), shard.plan()[2])
    assert len(seen) == 2
    with pytest.raises(ValueError, match="workers"):
        ShardedSampler(ClassSampler(labels, batch_size=4, m=4, seed=1), World(0, 8))
