"""The Python definitions of the shared rules (sgs_ext.reference) agree with the kernels' own."""
import math

import pytest
import torch

import sgs_ext
from sgs_ext import _C
from sgs_ext.reference import projection_coefficient, stats_dtype

EDGE_CASES = [
    (-2.0, 4.0, 9.0, 1e-12),          # a conflict: -0.5
    (2.0, 4.0, 9.0, 1e-12),           # no conflict
    (0.0, 4.0, 9.0, 1e-12),           # orthogonal: no conflict
    (-0.0, 4.0, 9.0, 1e-12),
    (0.0, 0.0, 9.0, 1e-12),           # all-zero oracle
    (-1e-3, 0.0, 9.0, 1e-2),          # eps guards the division
    (-1e-3, 1e-4, 9.0, 1e-2),         # |oracle|^2 below eps: eps is the denominator
    (-1e-3, 1e-2, 9.0, 1e-2),         # at eps
    (-3.0, 7.0, 2.0, 1e-12),
    (-1e-30, 1e-300, 1.0, 1e-12),
    (-1e300, 1e-300, 1.0, 1e-300),    # the quotient overflows: nothing is written
] + [
    case
    for bad in (math.nan, math.inf, -math.inf)
    for case in ((bad, 4.0, 9.0, 1e-12), (-2.0, bad, 9.0, 1e-12), (-2.0, 4.0, bad, 1e-12))
]


def _same(a: float, b: float) -> bool:
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


@pytest.mark.parametrize("dot,oracle_sq,train_sq,eps", EDGE_CASES)
def test_projection_coefficient_equals_the_kernels_in_float64(dot, oracle_sq, train_sq, eps):
    want = _C.projection_coefficient(dot, oracle_sq, train_sq, eps, False)
    assert _same(projection_coefficient(dot, oracle_sq, train_sq, eps), want)


@pytest.mark.parametrize("dot,oracle_sq,train_sq,eps", EDGE_CASES)
def test_projection_coefficient_rounds_to_the_kernels_in_float32(dot, oracle_sq, train_sq, eps):
    """Float32 statistics: the kernels divide in float32, Python in float64 of the same values;
    the quotient rounded to float32 is the same (where it does not overflow float32)."""
    f32 = [float(torch.tensor(v, dtype=torch.float32)) for v in (dot, oracle_sq, train_sq, eps)]
    if f32[3] <= 0:
        pytest.skip("eps underflows float32")
    want = _C.projection_coefficient(*f32, True)
    got = projection_coefficient(*f32)
    got32 = float(torch.tensor(got, dtype=torch.float32))
    if math.isinf(got32):
        assert want == 0.0   # beyond float32: the kernel writes nothing
    else:
        assert _same(got32, want)


@pytest.mark.parametrize("eps", [0.0, -1e-12, math.inf, math.nan])
def test_projection_coefficient_refuses_a_bad_eps_as_the_ops_do(eps):
    with pytest.raises(ValueError, match="eps"):
        projection_coefficient(-2.0, 4.0, 9.0, eps)
    t, o = [torch.ones(3)], [-torch.ones(3)]
    with pytest.raises(ValueError, match="eps"):
        sgs_ext.project_(t, o, torch.tensor([-3.0, 3.0, 3.0]), eps)


@pytest.mark.parametrize("dtypes,want", [
    ((), torch.float32),
    ((torch.float64,), torch.float64),
    ((torch.float64, torch.float64), torch.float64),
    ((torch.float64, torch.float32), torch.float32),
    ((torch.float16,), torch.float32),
    ((torch.bfloat16, torch.float64), torch.float32),
])
def test_stats_dtype_is_the_dtype_the_ops_return(dtypes, want):
    tensors = [torch.ones(2, dtype=d) for d in dtypes]
    assert stats_dtype(tensors) == want
    if tensors:
        assert sgs_ext.dot_norm(tensors, [t.clone() for t in tensors]).dtype == want
        assert sgs_ext.gram([tensors, [t.clone() for t in tensors]]).dtype == want
