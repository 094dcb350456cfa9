"""A whole training step with surgery against the same step without it.

See train_step.py for what each step does; the report turns the times into
the surgery's share of a step.
"""
import pytest

from benchmarks.timing import time_case
from benchmarks.train_step import QUICK_STEP, FULL_STEP, STEP_KINDS, make_step


@pytest.mark.parametrize("kind", STEP_KINDS)
def test_train_step(benchmark, kind, pytestconfig, budget, device, run_info):
    quick = pytestconfig.getoption("--quick")
    cfg = QUICK_STEP if quick else FULL_STEP
    step = make_step(kind, cfg, device=device)
    benchmark.group = "train step"
    info = {
        "kind": "train_step",
        "group": "train_step",
        "size": "quick" if quick else "full",
        "numel": step.num_params,
        "variant": kind,
        "batch": cfg.batch,
        "oracle_batch": cfg.oracle_batch,
        "seq_len": cfg.seq_len,
        "model": f"{cfg.layers}-layer transformer tagger, hidden {cfg.hidden}, vocab {cfg.vocab_size}",
        **run_info,
    }
    time_case(benchmark, step, budget, device, info)
    if step.surgery_seconds:  # the surgery call alone, inside the same steps
        times = sorted(step.surgery_seconds)
        benchmark.extra_info["surgery_min_s"] = times[0]
        benchmark.extra_info["surgery_median_s"] = times[len(times) // 2]
