"""gram: all pairwise dot products of L gradient sets (L = 2, 4, 8), fused
against the naive pairwise loop (and the torch.cat reference), with the
bandwidth probe on two of the same sets.

Traffic counted: each set is read once, L elements per parameter (4L bytes in
float32); the pairwise loop reads each set L times, which is its problem.
"""
import pytest

from benchmarks.bandwidth import PROBES
from benchmarks.gradients import make_sets
from benchmarks.memory import expected_extra_copies
from benchmarks.shapes import model_shapes, num_params
from benchmarks.timing import skip_unless_fits, time_case
from benchmarks.variants import GRAM_VARIANTS


@pytest.fixture(scope="module")
def gram_sets(size, device, pytestconfig):
    """(flat buffers, lists of views) of as many sets as the largest L asks for."""
    max_sets = max(int(s) for s in pytestconfig.getoption("--gram-sets").split(","))
    shapes = model_shapes(size)
    limit = pytestconfig.getoption("--gram-max-params")
    if num_params(shapes) > limit:
        pytest.skip(f"gram runs for sizes up to {limit:.3g} parameters (--gram-max-params); {size} has {num_params(shapes)}")
    skip_unless_fits(max_sets * num_params(shapes) * 4, device, f"{max_sets} {size} gradient sets")
    yield make_sets(shapes, max_sets, device=device)


def _info(kind, size, flat, variant, num_sets, bytes_moved, run_info):
    return {
        "kind": kind,
        "group": "gram",
        "size": size,
        "numel": flat.numel(),
        "variant": variant,
        "num_sets": num_sets,
        "bytes": bytes_moved,
        "dtype": str(flat.dtype).replace("torch.", ""),
        **run_info,
    }


@pytest.mark.parametrize("probe", list(PROBES))
def test_bandwidth(benchmark, gram_sets, size, probe, budget, device, run_info):
    flats, _ = gram_sets
    p = PROBES[probe]
    benchmark.group = f"gram {size}"
    info = _info("bandwidth", size, flats[0], probe, 2, p.bytes_moved(flats[0]), run_info)
    time_case(benchmark, lambda: p.run(flats[1], flats[0]), budget, device, info)


@pytest.mark.parametrize("variant", list(GRAM_VARIANTS))
def test_gram(benchmark, gram_sets, size, num_sets, variant, budget, device, run_info):
    flats, sets = gram_sets
    if num_sets > len(sets):
        pytest.skip(f"only {len(sets)} sets were built")
    needed = expected_extra_copies("gram", variant, num_sets) * flats[0].nbytes
    skip_unless_fits(needed, device, f"{variant} gram of {num_sets} sets")
    fn = GRAM_VARIANTS[variant]
    chosen = sets[:num_sets]
    benchmark.group = f"gram {size} L={num_sets}"
    info = _info("gram", size, flats[0], variant, num_sets, num_sets * flats[0].nbytes, run_info)
    time_case(benchmark, lambda: fn(chosen), budget, device, info)
