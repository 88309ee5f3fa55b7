"""The autoscaler supervisor's pure parts: which pools get a loop, and each loop's config."""

from __future__ import annotations

from typing import Any

from jobqueue_operator.autoscaler import pool_config, scaled_pools
from jobqueue_operator.spec import parse_spec


def spec(**extra: Any) -> Any:
    return parse_spec({"redis": {"url": "redis://r:6379"}, **extra})


def test_only_autoscaled_pools_get_a_loop_each_with_its_queue_format() -> None:
    parsed = spec(
        autoscaling={"enabled": True, "maxReplicas": 4},
        workers=[
            {"name": "gpu", "jobTypes": ["render"], "autoscaling": {"enabled": True}},
            {"name": "fixed", "jobTypes": ["mail"], "autoscaling": {"enabled": False}},
        ],
    )
    assert [pool for pool, _ in scaled_pools(parsed)] == ["default", "gpu"]
    assert scaled_pools(None) == ()
    assert scaled_pools(spec(autoscaling={"enabled": False})) == ()


def test_each_pool_scales_on_its_own_settings_and_a_removed_one_is_paused() -> None:
    parsed = spec(
        autoscaling={"enabled": True, "maxReplicas": 4},
        worker={"concurrency": 3},
        workers=[
            {
                "name": "gpu",
                "jobTypes": ["render"],
                "concurrency": 1,
                "autoscaling": {"enabled": True, "maxReplicas": 9},
            }
        ],
    )
    default = pool_config(parsed, "default")
    assert (default.spec.max_replicas, default.target_per_worker) == (4, 3)
    gpu = pool_config(parsed, "gpu")
    assert (gpu.spec.max_replicas, gpu.target_per_worker) == (9, 1)
    assert pool_config(parsed, "gone").spec.paused
