"""Helpers shared by the op tests: gradient lists, a float64 oracle, and the
error bounds the fused kernels must meet.

The oracle (``exact_*``) computes what the ops compute from the inputs as
stored: every tensor's dtype-rounded values, taken exactly to float64.  It is
independent of torch's reductions (``sgs_ext.reference`` sums in float32 with
torch's kernels, whose accumulation order, and so their error, depends on the
CPU) and its own error is bounded and small (:func:`oracle_error_bound`):
products are summed in float64 over blocks of ORACLE_BLOCK elements, the block
sums with error-free transformations.

The bounds say how far the fused kernels may be from the exact value.  They
are worst cases derived from how the kernels accumulate (``_roundings``, read
off csrc/cpu/*.cpp and csrc/cuda/*.cu): a sum S = sum_i x_i*y_i whose terms
each pass through at most k roundings of unit roundoff u has

    |computed - S| <= ((1 + u)^k - 1) * sum_i |x_i*y_i|      (~ k*u*sum|xy|)

and a result returned in float32 adds u32*|computed|.  See
:func:`dot_error_bound` and :func:`expected_projection`.  A result is checked
against the oracle within the kernel's bound plus the oracle's.

``every_cpu_isa`` is an autouse fixture for op test modules: imported into a
module, it runs every test of the module under each CPU instruction set.
"""
import functools
import inspect
import math
from typing import Dict, List, Optional, Sequence, Tuple

import pytest
import torch
from hypothesis import HealthCheck, given, settings

import sgs_ext
from sgs_ext import _C

DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16]

U32 = 2.0**-24  # unit roundoff of float32
U64 = 2.0**-53  # unit roundoff of float64
UNIT_ROUNDOFF = {torch.float32: U32, torch.float64: U64, torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8}
# Absolute error of rounding a value into a dtype's subnormal range: half its smallest subnormal.
UNDERFLOW = {d: torch.finfo(d).tiny * torch.finfo(d).eps / 2 for d in DTYPES}

# Every bound of the kernels' error is multiplied by SAFETY.  The bounds are
# worst cases, but a few terms are left out: second-order terms of the
# oracle's error-free summation (below 1e-20 relative), of evaluating the
# bounds in float64 (sum|x*y| is itself computed in float64), and, for
# projected values, |r| taken from the oracle's r rather than the exact one.
# Together these are far below 1%; the rest of the factor leaves room for a
# miscount of a rounding or two in _roundings, so that a harmless regrouping
# of a kernel's sums does not fail the tests.  An error from a real bug is far
# larger (test_ops_testing.py checks that wrong results are rejected).
SAFETY = 2.0

EPS = 1e-12  # the ops' default eps


# ----------------------------------------------------------------------------
# Gradient lists


def random_list(sizes: Sequence[int], dtype: torch.dtype, seed: int, scale: float = 1.0) -> List[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, generator=g, dtype=torch.float64) * scale).to(dtype) for n in sizes]


def conflicting_pair(sizes: Sequence[int], dtype: torch.dtype, seed: int):
    """A train list and an oracle list whose dot product is clearly negative."""
    oracle = random_list(sizes, torch.float64, seed)
    noise = random_list(sizes, torch.float64, seed + 1)
    train = [0.3 * n - 0.8 * o for n, o in zip(noise, oracle)]
    return [t.to(dtype) for t in train], [o.to(dtype) for o in oracle]


def clone_list(tensors):
    return [t.clone() for t in tensors]


def stats_dtype(tensors: Sequence[torch.Tensor]) -> torch.dtype:
    """The dtype of the ops' statistics: float64 when every tensor is float64, float32 otherwise."""
    return torch.float64 if tensors and all(t.dtype == torch.float64 for t in tensors) else torch.float32


def float64_copy(t: torch.Tensor) -> torch.Tensor:
    """t's values as a new float64 tensor (never t itself, even when t is float64)."""
    return t.detach().to(torch.float64, copy=True)


# ----------------------------------------------------------------------------
# The float64 oracle


ORACLE_BLOCK = 32  # elements per float64 block sum of the oracle


def _exact_column_sums(v: torch.Tensor) -> List[float]:
    """The column sums of a 2-D float64 tensor, to within u64*|sum| + m*log2(m)*u64^2*sum|v|
    (m rows).

    A pairwise tree of two-sums: each level adds the first half of the rows to
    the second half and keeps every addition's rounding error exactly (Knuth's
    two-sum); an odd row out is set aside.  Each column's sum is exactly the
    last row plus the rows set aside plus all the errors.  The errors are tiny
    (each at most u64 times a partial sum), so summing each level's errors in
    plain float64, in any order, costs a second-order amount; math.fsum adds up
    the rest exactly rounded.
    """
    rest = []
    while v.shape[0] > 1:
        h = v.shape[0] // 2
        if v.shape[0] % 2:
            rest.append(v[-1])
        a, b = v[:h], v[h : 2 * h]
        s = a + b
        z = s - a
        rest.append(((a - (s - z)) + (b - z)).sum(0))
        v = s
    if v.shape[0]:
        rest.append(v[0])
    if not rest:
        return [0.0] * v.shape[1]
    return [math.fsum(column) for column in torch.stack(rest).T.tolist()]


class _Flat:
    """A tensor list as float64 copies of its elements, one flat vector per dtype."""

    def __init__(self, tensors: Sequence[torch.Tensor]):
        tensors = list(tensors)
        self.numels = [t.numel() for t in tensors]
        self.dtypes = [t.dtype for t in tensors]
        self.out_dtype = stats_dtype(tensors)
        self.by_dtype: Dict[torch.dtype, torch.Tensor] = {}
        for dtype in DTYPES:
            group = [t.detach().reshape(-1) for t in tensors if t.dtype == dtype and t.numel()]
            if group:
                self.by_dtype[dtype] = torch.cat(group).to(torch.float64)


class _PairSums:
    """S[i][j] = list_i · list_j for tensor lists that match tensor for tensor (as the ops
    require): the oracle's value, and per dtype sum|x*y| (what the bounds need).

    For each dtype, every list's elements form a row of a float64 matrix; an
    einsum gives, per block of ORACLE_BLOCK elements, the block sums of every
    pair (in whatever order the library adds them: at most ORACLE_BLOCK
    roundings per product), and the block sums are added exactly.
    """

    def __init__(self, flats: Sequence[_Flat]):
        L = len(flats)
        first = flats[0]
        assert all(f.dtypes == first.dtypes and f.numels == first.numels for f in flats)
        self.numels, self.out_dtype = first.numels, first.out_dtype
        upper = [(i, j) for i in range(L) for j in range(i, L)]
        columns = torch.tensor([i * L + j for i, j in upper])
        self.abs_sum: Dict[torch.dtype, torch.Tensor] = {}
        blocks = []
        for dtype in first.by_dtype:
            rows = torch.stack([f.by_dtype[dtype] for f in flats])
            n = rows.shape[1]
            blocked = torch.nn.functional.pad(rows, (0, -n % ORACLE_BLOCK)).reshape(L, -1, ORACLE_BLOCK)
            blocks.append(torch.einsum("ikb,jkb->kij", blocked, blocked).reshape(-1, L * L)[:, columns])
            rows = rows.abs_()
            self.abs_sum[dtype] = rows @ rows.T
        sums = _exact_column_sums(torch.cat(blocks)) if blocks else [0.0] * len(upper)
        self.exact = [[0.0] * L for _ in range(L)]
        for (i, j), v in zip(upper, sums):
            self.exact[i][j] = self.exact[j][i] = v

    def abs_sums(self, i: int, j: int) -> Dict[torch.dtype, float]:
        return {dtype: float(a[i, j]) for dtype, a in self.abs_sum.items()}


def oracle_error_bound(abs_sum: float, value: float) -> float:
    """|oracle - exact| for S = sum x*y with sum|x*y| = abs_sum: each block sum is within
    ORACLE_BLOCK*u64*(its sum|x*y|) (float64 products and additions, any order), and the exact
    summation of the block sums adds one rounding of the result."""
    return ORACLE_BLOCK * U64 * abs_sum + U64 * abs(value)


def exact_dot(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor]) -> float:
    """The sum over tensors and elements of x*y (within oracle_error_bound)."""
    return _PairSums([_Flat(xs), _Flat(ys)]).exact[0][1]


def exact_stats(train: Sequence[torch.Tensor], oracle: Sequence[torch.Tensor]) -> Tuple[float, float, float]:
    """[train·oracle, ‖oracle‖², ‖train‖²] as dot_norm defines them, from the stored values."""
    S = _PairSums([_Flat(train), _Flat(oracle)]).exact
    return S[0][1], S[1][1], S[0][0]


def exact_gram(sets: Sequence[Sequence[torch.Tensor]]) -> torch.Tensor:
    """G[i, j] = set_i · set_j in float64."""
    return torch.tensor(_PairSums([_Flat(s) for s in sets]).exact, dtype=torch.float64)


def exact_coefficient(stats: Sequence[float], eps: float = EPS) -> float:
    """c of train -= c * oracle (common/surgery_math.h): dot / max(‖oracle‖², eps) when dot < 0
    and every statistic is finite, else 0 (write nothing)."""
    dot, oracle_sq, train_sq = (float(v) for v in stats)
    if not all(math.isfinite(v) for v in (dot, oracle_sq, train_sq)) or not dot < 0:
        return 0.0
    return dot / max(oracle_sq, eps)


# ----------------------------------------------------------------------------
# Error bounds of the reductions


def _roundings(op: str, device: str, dtype: torch.dtype, chunk: int) -> Tuple[int, int]:
    """(k32, k64): at most how many float32 and how many float64 roundings a product x_i*y_i
    passes through, from its inputs to the partial sum of its chunk (`chunk` elements at most).

    CPU, dot_norm (csrc/cpu/dot_norm_cpu.cpp):
      float32   the product, then the float32 lane of a 256-element block, which sums 4 products
                (kBlock / kStep): k32 = 4.  The block's lane sums go into 16 float64 lanes, each
                taking kAcc = 4 of them per block (4 * chunk/256 additions), the lanes are added
                one by one (16), and the float64 scalar tail adds up to 255 more products after
                them (its products are exact in float64): k64 = 4*chunk/256 + 16 + 255.
      float64   the product (1), one of 32 float64 lanes (4 vectors x 8) taking chunk/32 products,
                the 32 lanes added one by one, a tail of up to 31: k64 = 1 + chunk/32 + 32 + 31.
      16-bit    products are exact in float64; 16 float64 lanes take chunk/16 products each, then
                are added one by one: k64 = chunk/16 + 16.
    CPU, gram (csrc/cpu/gram_cpu.cpp), any dtype: every element converted exactly to float64; the
      product (1), one of 32 lanes taking 8 products per 256-element tile (8), the 4 vectors added
      in pairs (2), the 8 lanes added one by one (8), the tile added into the chunk's sum (chunk/256
      tiles): k64 = 1 + 8 + 2 + 8 + chunk/256.
    CUDA, dot_norm (csrc/cuda/dot_norm_cuda.cu, 512 threads): each thread sums chunk/512 products
      in the compute type (float32 for float32 and 16-bit, float64 for float64), then a float64
      block tree of 9 levels: k = 1 + chunk/512 in that type, plus 9 in float64.
    CUDA, gram (csrc/cuda/gram_cuda.cu, 256 threads): each thread sums chunk/256 products in
      the compute type (float64 for float64, float32 otherwise), then a float64 block tree of 8
      levels: k = 1 + chunk/256 in that type, plus 8 in float64.
    """
    if device == "cpu" and op == "dot_norm":
        if dtype == torch.float32:
            return 4, 4 * chunk // 256 + 16 + 255
        if dtype == torch.float64:
            return 0, 1 + chunk // 32 + 32 + 31
        return 0, chunk // 16 + 16
    if device == "cpu" and op == "gram":
        return 0, 1 + 8 + 2 + 8 + chunk // 256
    if device == "cuda" and op == "dot_norm":
        per_thread = 1 + chunk // 512
        return (0, per_thread + 9) if dtype == torch.float64 else (per_thread, 9)
    if device == "cuda" and op == "gram":
        per_thread = 1 + chunk // 256
        return (0, per_thread + 8) if dtype == torch.float64 else (per_thread, 8)
    raise ValueError(f"no accumulation model for {op} on {device}")


def _chunk_roundings(device: str, num_chunks: int) -> int:
    """float64 roundings of adding the chunks' partial sums: in chunk order on the CPU
    (sum_partials, one by one from 0); on CUDA each of 256 threads adds every 256th chunk, then
    a block tree of 8 levels (reduce_partials)."""
    if device == "cpu":
        return num_chunks
    return -(-num_chunks // 256) + 8


def _chunk_size(device: str) -> int:
    return _C.cpu_chunk_size() if device == "cpu" else _C.cuda_chunk_size()


def _growth(k32: int, k64: int) -> float:
    """(1 + u32)^k32 * (1 + u64)^k64 - 1, the relative error of k32 float32 and k64 float64
    roundings (computed with log1p/expm1: 1 + u64 is 1 in float64)."""
    return math.expm1(k32 * math.log1p(U32) + k64 * math.log1p(U64))


def _bound(abs_sums: Dict[torch.dtype, float], value: float, numels: Sequence[int], out_dtype: torch.dtype,
           op: str, device: str) -> float:
    chunk = _chunk_size(device)
    num_chunks = sum(-(-n // chunk) for n in numels)
    k_chunks = _chunk_roundings(device, num_chunks)
    accumulated = 0.0
    for dtype, abs_sum in abs_sums.items():
        k32, k64 = _roundings(op, device, dtype, chunk)
        accumulated += _growth(k32, k64 + k_chunks) * abs_sum
    u_out = U32 if out_dtype == torch.float32 else 0.0  # the float64 result returned in float32
    return SAFETY * (accumulated + u_out * (abs(value) + accumulated))


def dot_error_bound(xs: Sequence[torch.Tensor], ys: Sequence[torch.Tensor], *, op: str = "dot_norm",
                    device: str = "cpu") -> float:
    """The largest |computed - exact| of S = sum x*y over the tensor lists xs, ys when `op`
    ("dot_norm" or "gram") computes it on `device` ("cpu" or "cuda"):

        SAFETY * (A + u_out * (|S| + A)),
        A = sum over dtypes of ((1 + u32)^k32 * (1 + u64)^(k64 + k_chunks) - 1) * sum|x*y|

    with (k32, k64) per dtype from _roundings (on the CPU: float32 dot_norm k32 = 4 and
    k64 = 4*chunk/256 + 271 = 1295; float64 k64 = 2112; 16-bit k64 = 4112; gram k64 = 275, for
    chunks of 65536), k_chunks from _chunk_roundings (the number of chunks on the CPU), and
    u_out = u32 when the result is returned in float32 (any non-float64 tensor), else 0.  To
    first order, A ~ (k32*u32 + (k64 + k_chunks)*u64) * sum|x*y|.
    """
    p = _PairSums([_Flat(xs), _Flat(ys)])
    return _bound(p.abs_sums(0, 1), p.exact[0][1], p.numels, p.out_dtype, op, device)


# ----------------------------------------------------------------------------
# Checking results


class _StatsOracle:
    """The oracle's statistics of (train, oracle), and for each the dot_norm bound and the
    oracle's own error bound."""

    def __init__(self, train, oracle, device: str):
        p = _PairSums([_Flat(train), _Flat(oracle)])
        self.out_dtype = p.out_dtype
        pairs = [(0, 1), (1, 1), (0, 0)]  # train·oracle, ‖oracle‖², ‖train‖²
        self.exact = [p.exact[i][j] for i, j in pairs]
        self.bound = [_bound(p.abs_sums(i, j), p.exact[i][j], p.numels, p.out_dtype, "dot_norm", device)
                      for i, j in pairs]
        self.oracle_error = [oracle_error_bound(sum(p.abs_sums(i, j).values()), p.exact[i][j]) for i, j in pairs]

    def check(self, got: torch.Tensor) -> None:
        assert got.dtype == self.out_dtype, (got.dtype, self.out_dtype)
        assert got.shape == (3,)
        for name, g, e, b, o in zip(("train·oracle", "‖oracle‖²", "‖train‖²"), got.cpu().tolist(), self.exact,
                                    self.bound, self.oracle_error):
            assert abs(g - e) <= b + o, (
                f"{name}: got {g!r}, oracle {e!r}: error {abs(g - e):.4g} > bound {b:.4g} + oracle's {o:.3g}")


def assert_stats_match_oracle(got: torch.Tensor, train, oracle, *, device: str = "cpu") -> None:
    """got (from dot_norm, or surgery_ on train, oracle before its projection) is the exact
    [train·oracle, ‖oracle‖², ‖train‖²] within the dot_norm bound, in the stats dtype."""
    _StatsOracle(train, oracle, device).check(got)


def assert_gram_matches_oracle(got: torch.Tensor, sets, *, device: str = "cpu") -> None:
    """got is the exact Gram matrix of the sets within the gram bound, symmetric, in the stats dtype."""
    L = len(sets)
    assert got.shape == (L, L)
    assert got.dtype == stats_dtype(sets[0]), (got.dtype, stats_dtype(sets[0]))
    assert torch.equal(got, got.T)
    got = got.cpu().double()
    p = _PairSums([_Flat(s) for s in sets])
    for i in range(L):
        for j in range(i, L):
            e, g = p.exact[i][j], float(got[i, j])
            b = _bound(p.abs_sums(i, j), e, p.numels, p.out_dtype, "gram", device)
            o = oracle_error_bound(sum(p.abs_sums(i, j).values()), e)
            assert abs(g - e) <= b + o, (
                f"G[{i}, {j}]: got {g!r}, oracle {e!r}: error {abs(g - e):.4g} > bound {b:.4g} + oracle's {o:.3g}")


def _evaluation_error(rho: float, u_c: float, eta_c: float, u_d: float, eta_d: float) -> Tuple[float, float, float]:
    """(a, b, g) with |fl_d(fl_c(t - fl_c(ĉ*o))) - (t - c*o)| <= a*|c*o| + b*|t - c*o| + g
    for |ĉ - c| <= rho*|c|.

    u_c, eta_c: unit roundoff and underflow of the compute type; u_d, eta_d: those of storing
    into the dtype (0 when the dtype is the compute type).  Step by step, with r = t - c*o:
        ĉ*o rounded:        e1 = (rho + u_c*(1 + rho))*|c*o| + eta_c
        t - that, rounded:  e2 = e1 + u_c*(|r| + e1)      (a subtraction cannot underflow)
        stored:             e3 = e2 + u_d*(|r| + e2) + eta_d
    A fused multiply-add only removes roundings, so the bound covers it too.
    """
    a1, g1 = rho + u_c * (1 + rho), eta_c
    a2, b2, g2 = a1 * (1 + u_c), u_c, g1 * (1 + u_c)
    return a2 * (1 + u_d), b2 * (1 + u_d) + u_d, g2 * (1 + u_d) + eta_d


def expected_projection(train, oracle, stats: Optional[torch.Tensor] = None, *, eps: float = EPS,
                        device: str = "cpu", _stats_oracle: Optional[_StatsOracle] = None,
                        ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """(expected, tolerance): float64 lists shaped like train, of what train must hold after
    project_(train, oracle, stats, eps), or after surgery_(train, oracle, eps) when stats is None.

    expected = t - c*o, evaluated in float64, with c = exact_coefficient(stats), where for
    surgery_ the stats are the oracle's.  The fused surgery_ computes c from its own
    statistics, which differ from the oracle's by at most b_dot, b_den (the dot_norm bound plus
    the oracle's); that gives its c a relative error of at most

        rho = (1 + b_dot/|dot|) * (1 + u_s) / (1 - b_den/max(‖o‖², eps)) - 1

    (u_s: the stats dtype's unit roundoff, for the division).  With given stats, b_dot = 0 and
    b_den only covers eps rounded to a float32 stats dtype.  Each element is then computed in
    the compute type (float32, or float64 for float64 tensors) and stored in its dtype:
    _evaluation_error gives the per-element bound; the oracle's own float64 evaluation (rho =
    u64 for rounding c) is bounded the same way and added.  When c == 0 nothing may be
    written: tolerance 0.
    """
    train, oracle = list(train), list(oracle)
    s_dtype = stats.dtype if stats is not None else stats_dtype(train)
    u_s = UNIT_ROUNDOFF[s_dtype]
    eps_s = float(torch.tensor(eps, dtype=s_dtype))
    if stats is None:
        so = _stats_oracle or _StatsOracle(train, oracle, device)
        values = tuple(so.exact)
        # the fused op's stats are within the kernel's bound of the exact ones, which are
        # within the oracle's bound of the oracle's values
        b_dot, b_oo = so.bound[0] + so.oracle_error[0], so.bound[1] + so.oracle_error[1]
    else:
        values = tuple(stats.cpu().tolist())
        b_dot = b_oo = 0.0
    expected = [float64_copy(t) for t in train]
    c = exact_coefficient(values, eps)
    if c == 0.0:
        return expected, [torch.zeros_like(e) for e in expected]
    if b_dot >= abs(values[0]):
        raise ValueError(f"the sign of dot = {values[0]!r} is within its error bound {b_dot!r}: "
                         "whether the op projects is not determined; use a clearly conflicting pair")
    den = max(values[1], eps)
    b_den = max(b_oo, abs(eps_s - eps))
    assert b_den < den, "the coefficient's denominator is lost in rounding"
    rho = (1 + b_dot / abs(values[0])) * (1 + u_s) / (1 - b_den / den) - 1
    own = _evaluation_error(U64, U64, UNDERFLOW[torch.float64], 0.0, 0.0)  # c rounded to float64, then the same
    tolerance = []
    for i, (t, o) in enumerate(zip(train, oracle)):
        o64 = float64_copy(o)
        expected[i] -= c * o64
        compute = torch.float64 if t.dtype == torch.float64 else torch.float32
        stored = t.dtype in (torch.float16, torch.bfloat16)
        fused = _evaluation_error(rho, UNIT_ROUNDOFF[compute], UNDERFLOW[compute],
                                  UNIT_ROUNDOFF[t.dtype] if stored else 0.0, UNDERFLOW[t.dtype] if stored else 0.0)
        a, b, g = (SAFETY * (x + y) for x, y in zip(fused, own))
        tolerance.append(o64.abs_().mul_(a * abs(c)).add_(expected[i].abs(), alpha=b).add_(g))
    return expected, tolerance


def assert_within(got: Sequence[torch.Tensor], expected: Sequence[torch.Tensor],
                  tolerance: Sequence[torch.Tensor]) -> None:
    """|got - expected| <= tolerance element by element (tolerance 0: bit for bit)."""
    assert len(got) == len(expected)
    for i, (g, e, tol) in enumerate(zip(got, expected, tolerance)):
        assert g.shape == e.shape, f"tensor {i}: shape {tuple(g.shape)} != {tuple(e.shape)}"
        if not g.numel():
            continue
        err = (g.detach().cpu().double() - e).abs()
        bad = ~(err <= tol)  # NaN is bad too
        if bad.any():
            k = int(bad.reshape(-1).nonzero()[0])
            at = lambda x: x.reshape(-1)[k].item()  # noqa: E731
            raise AssertionError(
                f"tensor {i}: {int(bad.sum())} of {g.numel()} elements out of tolerance; element {k}: "
                f"got {at(g.double())!r}, expected {at(e)!r}, error {at(err):.4g} > tolerance {at(tol):.4g}")


def assert_projection_matches_oracle(got_train, train_before, oracle, stats: Optional[torch.Tensor] = None, *,
                                     eps: float = EPS, device: str = "cpu") -> None:
    """got_train (train after project_ with `stats`, or after surgery_ when stats is None) holds
    the exact projection of train_before within expected_projection's tolerance, in train's dtypes."""
    assert [t.dtype for t in got_train] == [t.dtype for t in train_before]
    expected, tolerance = expected_projection(train_before, oracle, stats, eps=eps, device=device)
    assert_within(got_train, expected, tolerance)


def assert_surgery_matches_oracle(got_stats: torch.Tensor, got_train, train_before, oracle, *, eps: float = EPS,
                                  device: str = "cpu") -> None:
    """surgery_(train, oracle) returned got_stats and left got_train, train having been
    train_before: both match the oracle within their bounds."""
    so = _StatsOracle(train_before, oracle, device)
    so.check(got_stats)
    assert [t.dtype for t in got_train] == [t.dtype for t in train_before]
    expected, tolerance = expected_projection(train_before, oracle, eps=eps, device=device, _stats_oracle=so)
    assert_within(got_train, expected, tolerance)


# ----------------------------------------------------------------------------
# Loose comparisons, for the pure-PyTorch implementations (the benchmarks'
# variants against sgs_ext.reference): torch's kernels have no accumulation
# model here, so these use fixed relative tolerances.  The fused ops are
# checked against the oracle instead.

# Relative tolerance of the statistics (dot relative to |t||o|) per dtype.
STATS_RTOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 1e-5, torch.bfloat16: 1e-5}
# Tolerance of projected values relative to the largest magnitude involved.
VALUES_RTOL = {torch.float64: 1e-12, torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1.6e-2}


def assert_stats_close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> None:
    rtol = STATS_RTOL[dtype]
    dot, oo, tt = (float(v) for v in want)
    scale_dot = math.sqrt(abs(oo) * abs(tt)) or 1.0
    g = [float(v) for v in got]
    assert abs(g[0] - dot) <= rtol * scale_dot + 1e-30, (g, [dot, oo, tt])
    assert abs(g[1] - oo) <= rtol * max(abs(oo), 1e-30), (g, [dot, oo, tt])
    assert abs(g[2] - tt) <= rtol * max(abs(tt), 1e-30), (g, [dot, oo, tt])


def assert_lists_close(got, want, dtype: torch.dtype) -> None:
    scale = max([float(t.double().abs().max()) for t in want if t.numel()] or [1.0])
    tol = VALUES_RTOL[dtype] * max(scale, 1e-30)
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape and a.dtype == b.dtype, i
        if a.numel():
            err = float((a.double() - b.double()).abs().max())
            assert err <= tol, f"tensor {i}: max error {err} > {tol}"


# ----------------------------------------------------------------------------
# Every CPU instruction set

CPU_ISAS = ["default", "avx2", "avx512"]


@pytest.fixture(scope="module", params=CPU_ISAS, autouse=True)
def every_cpu_isa(request):
    """Runs each test of a module that imports this fixture under each CPU ISA (kernel variant);
    ISAs this CPU lacks are skipped.  Restores the ISA afterwards."""
    isa = request.param
    supported = sgs_ext.ops.supported_cpu_isas()
    if isa not in supported:
        pytest.skip(f"this CPU does not support {isa} (it supports {', '.join(supported)})")
    before = sgs_ext.ops.cpu_isa()
    sgs_ext.ops.set_cpu_isa(isa)
    try:
        yield isa
    finally:
        sgs_ext.ops.set_cpu_isa(before)


def isa_property(max_examples: int, **strategies):
    """@given(**strategies) with max_examples examples under the best ISA this CPU supports
    (the one it runs by default) and a third of them under the other ISAs, which every_cpu_isa
    runs too: they run the same C++ code, compiled for other vector widths."""

    def decorate(check):
        @functools.wraps(check)
        def test(*args, **kwargs):
            full = sgs_ext.ops.cpu_isa() == sgs_ext.ops.supported_cpu_isas()[-1]
            n = max_examples if full else max(1, max_examples // 3)
            property_ = settings(max_examples=n, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            return property_(given(**strategies)(check))(*args, **kwargs)

        sig = inspect.signature(check)
        test.__signature__ = sig.replace(parameters=[p for p in sig.parameters.values() if p.name not in strategies])
        return test

    return decorate

