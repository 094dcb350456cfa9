"""Gradient surgery and dot_norm: every variant on the same gradient lists, and
the bandwidth probe on the same bytes, one size at a time.

Traffic counted (the least any implementation must move, per parameter):
surgery reads train and oracle for the statistics, then reads both and writes
train for the projection: 5 elements (20 bytes in float32); dot_norm reads
both once: 2 elements (8 bytes).

Every timed round, of the probes and of the variants alike, starts right after
the same untimed copy that restores ``train`` from a pristine copy: the
surgery needs it (or its second round would find no conflict), and a round's
speed can depend on what ran just before it (see ``timing.py``), so all cases get
the same start.  ``test_fused_against_probes`` alternates the probes and the
fused surgery round by round, so that they also see the same minutes of a
noisy machine; the bandwidth target is judged on it.
"""
import time

import pytest

import sgs_ext
from benchmarks.bandwidth import PROBES
from benchmarks.gradients import make_pair
from benchmarks.memory import expected_extra_copies
from benchmarks.shapes import model_shapes, num_params
from benchmarks.timing import skip_unless_fits, synced, time_case
from benchmarks.variants import SURGERY_VARIANTS

ELEMENTS_MOVED = {"surgery": 5, "dot_norm": 2}


@pytest.fixture(scope="module")
def pair(size, device):
    """(the gradient lists, a function that restores train from a pristine copy)."""
    shapes = model_shapes(size)
    skip_unless_fits(3 * num_params(shapes) * 4, device, f"the {size} gradient lists")
    lists = make_pair(shapes, device=device)
    pristine = lists.train_flat.clone()

    def restore():  # untimed: every timed round starts from the same conflicting pair
        lists.train_flat.copy_(pristine)

    yield lists, restore


def _info(kind, size, lists, variant, bytes_moved, run_info):
    return {
        "kind": kind,
        "group": "surgery",
        "size": size,
        "numel": lists.numel,
        "variant": variant,
        "bytes": bytes_moved,
        "dtype": str(lists.train_flat.dtype).replace("torch.", ""),
        **run_info,
    }


@pytest.mark.parametrize("probe", list(PROBES))
def test_bandwidth(benchmark, pair, size, probe, budget, device, run_info):
    lists, restore = pair
    p = PROBES[probe]
    benchmark.group = f"surgery {size}"
    info = _info("bandwidth", size, lists, probe, p.bytes_moved(lists.train_flat), run_info)
    time_case(benchmark, lambda: p.run(lists.oracle_flat, lists.train_flat), budget, device, info, setup=restore)


@pytest.mark.parametrize("variant", list(SURGERY_VARIANTS))
def test_dot_norm(benchmark, pair, size, variant, budget, device, run_info):
    lists, restore = pair
    v = SURGERY_VARIANTS[variant]
    skip_unless_fits(expected_extra_copies("dot_norm", variant) * lists.train_flat.nbytes, device, f"{variant} dot_norm")
    benchmark.group = f"dot_norm {size}"
    traffic = ELEMENTS_MOVED["dot_norm"] * lists.train_flat.nbytes
    info = _info("dot_norm", size, lists, variant, traffic, run_info)
    time_case(benchmark, lambda: v.dot_norm(lists.train, lists.oracle), budget, device, info, setup=restore)


@pytest.mark.parametrize("variant", list(SURGERY_VARIANTS))
def test_surgery(benchmark, pair, size, variant, budget, device, run_info):
    lists, restore = pair
    v = SURGERY_VARIANTS[variant]
    skip_unless_fits(expected_extra_copies("surgery", variant) * lists.train_flat.nbytes, device, f"{variant} surgery")
    benchmark.group = f"surgery {size}"
    traffic = ELEMENTS_MOVED["surgery"] * lists.train_flat.nbytes
    info = _info("surgery", size, lists, variant, traffic, run_info)
    projected = []

    def call():
        stats = v.surgery_(lists.train, lists.oracle)
        projected.append(stats)

    time_case(benchmark, call, budget, device, info, setup=restore)
    # Every round must have projected, or the variant skipped the writes it is timed for.
    assert all(float(s[0]) < 0 for s in projected), "a surgery round saw no conflict"
    benchmark.extra_info["rounds_projected"] = len(projected)


def test_fused_against_probes(benchmark, pair, size, budget, device, run_info):
    """The fused surgery and every probe, in alternating rounds on the same bytes.

    pytest-benchmark times the surgery; the untimed setup of each of its rounds
    runs (and times) one round of every probe, each after a restore, then
    restores ``train`` for the surgery.  Every round's times are stored with the
    case, so the report can compare the surgery with the probes round by round:
    within a round they run about a second apart, on the same machine state.
    """
    lists, restore = pair
    benchmark.group = f"surgery {size}"
    traffic = ELEMENTS_MOVED["surgery"] * lists.train_flat.nbytes
    info = _info("paired", size, lists, "fused", traffic, run_info)
    probes = {name: synced(lambda p=p: p.run(lists.oracle_flat, lists.train_flat), device) for name, p in PROBES.items()}
    surgery = synced(lambda: sgs_ext.surgery_(lists.train, lists.oracle), device)
    rounds, projected = [], []

    def probe_round_then_restore():
        times = {}
        for name, run in probes.items():
            restore()
            start = time.perf_counter()
            run()
            times[name] = time.perf_counter() - start
        rounds.append(times)
        restore()

    def call():
        start = time.perf_counter()
        projected.append(surgery())
        rounds[-1]["fused"] = time.perf_counter() - start

    time_case(benchmark, call, budget, device, info, setup=probe_round_then_restore)
    assert all(float(s[0]) < 0 for s in projected), "a surgery round saw no conflict"
    rounds = rounds[1:]  # the first round was time_case's warm-up
    benchmark.extra_info["probe_bytes"] = {name: PROBES[name].bytes_moved(lists.train_flat) for name in PROBES}
    benchmark.extra_info["round_times_s"] = rounds
