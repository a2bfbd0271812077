import pytest

from pytgi.config import (
    CPU_STEP_BUDGET,
    GPU_STEP_BUDGET,
    SchedulerConfig,
    resolve_budget_tail,
    resolve_step_budget,
)
from pytgi.engine.builder import default_prefill_cap
from pytgi.kv_cache.manager import KVCacheManager
from pytgi.scheduler.scheduler import ProportionalCap, Scheduler


def test_prompt_tokens_are_capped_while_decoding_only_on_a_cpu():
    assert default_prefill_cap("cpu") == ProportionalCap()
    assert default_prefill_cap("cuda") is None


def test_the_step_budget_defaults_by_device_and_a_given_one_wins():
    assert resolve_step_budget(SchedulerConfig(), "cpu") == CPU_STEP_BUDGET == 512
    assert resolve_step_budget(SchedulerConfig(), "cuda") == GPU_STEP_BUDGET == 2048
    assert resolve_step_budget(SchedulerConfig(max_batch_prefill_tokens=4096), "cpu") == 4096


def test_a_scheduler_needs_a_resolved_step_budget():
    with pytest.raises(ValueError, match="resolve_step_budget"):
        Scheduler(SchedulerConfig(), KVCacheManager(8, 4, True))


def test_only_a_cpus_default_budget_has_a_tail():
    assert resolve_budget_tail(SchedulerConfig(), "cpu") == CPU_STEP_BUDGET // 8 == 64
    assert resolve_budget_tail(SchedulerConfig(max_batch_prefill_tokens=512), "cpu") == 0  # a set budget is exact
    assert resolve_budget_tail(SchedulerConfig(), "cuda") == 0
