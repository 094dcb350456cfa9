"""Bad input: a clear error that names what is wrong and where (under every CPU
instruction set this CPU supports: the checks come before any kernel, so the
messages must not depend on it)."""
import pytest
import torch

import sgs_ext
from ops_testing import every_cpu_isa  # noqa: F401  (autouse: runs each test under each ISA)


def lists(n=3, size=5, dtype=torch.float32):
    return [torch.randn(size, dtype=dtype) for _ in range(n)], [torch.randn(size, dtype=dtype) for _ in range(n)]


@pytest.mark.parametrize("op", ["dot_norm", "surgery_"])
def test_lists_of_different_lengths(op):
    train, oracle = lists()
    with pytest.raises(ValueError, match=r"train has 3 tensors but oracle has 2"):
        getattr(sgs_ext, op)(train, oracle[:2])


def test_shape_mismatch_names_index_and_both_shapes():
    train, oracle = lists()
    oracle[2] = torch.randn(2, 3)
    with pytest.raises(ValueError, match=r"train\[2\] and oracle\[2\] differ in shape: \[5\] vs \[2, 3\]"):
        sgs_ext.dot_norm(train, oracle)


def test_dtype_mismatch_names_index_and_both_dtypes():
    train, oracle = lists()
    oracle[1] = oracle[1].double()
    with pytest.raises(TypeError, match=r"train\[1\] and oracle\[1\] differ in dtype: Float vs Double"):
        sgs_ext.surgery_(train, oracle)


def test_non_floating_dtype():
    train, oracle = lists()
    train[0] = torch.arange(5)
    with pytest.raises(TypeError, match=r"train\[0\] has dtype Long; gradients must be float32"):
        sgs_ext.dot_norm(train, oracle)


def test_undefined_gradient():
    train, oracle = lists()
    train[1] = None
    with pytest.raises(ValueError, match=r"train\[1\] is None"):
        sgs_ext.dot_norm(train, oracle)


def test_device_mismatch_names_index():
    train, oracle = lists()
    oracle[2] = torch.empty(5, device="meta")
    with pytest.raises(ValueError, match=r"oracle\[2\] is on meta but train\[0\] is on cpu"):
        sgs_ext.dot_norm(train, oracle)


def test_a_single_tensor_instead_of_a_list():
    with pytest.raises(TypeError, match="must be a list of tensors"):
        sgs_ext.dot_norm(torch.randn(3), [torch.randn(3)])


def test_project_rejects_malformed_stats():
    train, oracle = lists()
    with pytest.raises(ValueError, match="stats must be the 3-element tensor"):
        sgs_ext.project_(train, oracle, torch.zeros(2))
    with pytest.raises(TypeError, match="stats must be float32 or float64"):
        sgs_ext.project_(train, oracle, torch.zeros(3, dtype=torch.int64))


def test_gram_set_mismatch_names_set_and_index():
    a, b = lists()
    b[1] = torch.randn(4)
    with pytest.raises(ValueError, match=r"sets\[0\]\[1\] and sets\[1\]\[1\] differ in shape"):
        sgs_ext.gram([a, b])
    with pytest.raises(ValueError, match="different lengths"):
        sgs_ext.gram([a, b[:2]])
    with pytest.raises(ValueError, match="at least one"):
        sgs_ext.gram([])


def test_direct_op_call_is_validated_too():
    train, oracle = lists()
    with pytest.raises(ValueError, match=r"train has 3 tensors but oracle has 1"):
        torch.ops.sgs.dot_norm(train, oracle[:1])


@pytest.mark.parametrize("op", ["project_", "surgery_"])
@pytest.mark.parametrize("eps", [0.0, -1e-12, float("nan"), float("inf")])
def test_eps_must_be_positive_and_finite(op, eps):
    train, oracle = lists()
    args = (train, oracle, sgs_ext.dot_norm(train, oracle)) if op == "project_" else (train, oracle)
    with pytest.raises(ValueError, match=rf"sgs::{op}: eps must be a positive finite number"):
        getattr(sgs_ext, op)(*args, eps=eps)


def test_a_train_tensor_listed_twice_is_rejected():
    """The projection writes train in parallel: the same tensor twice would race."""
    train, oracle = lists()
    with pytest.raises(ValueError, match=r"sgs::project_: train\[0\] and train\[2\] overlap in memory"):
        sgs_ext.surgery_([train[0], train[1], train[0]], oracle)


def test_overlapping_views_are_rejected_and_the_exact_alias_is_allowed():
    buf = torch.randn(20)
    other = torch.randn(20)
    with pytest.raises(ValueError, match=r"train\[0\] and train\[1\] overlap in memory"):
        sgs_ext.surgery_([buf[0:10], buf[5:15]], [other[0:10], other[10:20]])
    with pytest.raises(ValueError, match=r"train\[1\] and oracle\[0\] overlap in memory|oracle\[0\] and train\[1\]"):
        sgs_ext.surgery_([other[0:10], buf[0:10]], [buf[5:15], other[10:20]])
    # adjacent views of one buffer (DDP buckets, flat parameters) do not overlap
    sgs_ext.surgery_([buf[0:10], buf[10:20]], [other[0:10], other[10:20]])
    # oracle[i] is train[i] itself: t - c*t elementwise, no race (oracle lists may share memory freely)
    x = torch.randn(10)
    sgs_ext.surgery_([x], [x])
    sgs_ext.dot_norm([buf[0:10], buf[5:15]], [buf[0:10], buf[5:15]])  # read-only: nothing to race


# ---------------------------------------------------------------------------- autograd's in-place rules


def test_project_bumps_the_version_of_every_written_tensor():
    """As torch's in-place ops do: a tensor saved for backward and then projected fails the
    backward loudly instead of giving wrong gradients."""
    train, oracle = lists()
    oracle = [-t for t in train]  # a conflict: every tensor is written
    before = [t._version for t in train]
    sgs_ext.surgery_(train, oracle)
    assert all(t._version > v for t, v in zip(train, before))
    w = torch.randn(5, requires_grad=True)
    h = w * 1.0
    y = (h * h).sum()  # saves h
    with torch.no_grad():
        sgs_ext.project_([h], [torch.randn(5)], torch.tensor([-1.0, 1.0, 1.0]))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.backward()


def test_a_leaf_that_requires_grad_is_refused_in_grad_mode():
    w = torch.randn(5, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad"):
        sgs_ext.project_([w], [torch.randn(5)], torch.tensor([-1.0, 1.0, 1.0]))
    with torch.no_grad():  # as an optimizer writes parameters
        sgs_ext.project_([w], [torch.randn(5)], torch.tensor([-1.0, 1.0, 1.0]))


def test_an_inference_tensor_is_refused_outside_inference_mode():
    with torch.inference_mode():
        x = torch.randn(5)
    with pytest.raises(RuntimeError, match="[Ii]nference tensor"):
        sgs_ext.surgery_([x], [-x.clone()])


META_CALLS = {
    "dot_norm": lambda m: sgs_ext.dot_norm([m(5)], [m(5)]),
    "project_": lambda m: sgs_ext.project_([m(5)], [m(5)], m(3)),
    "surgery_": lambda m: sgs_ext.surgery_([m(5)], [m(5)]),
    "gram": lambda m: sgs_ext.gram([[m(5)], [m(5)]]),
    "torch.ops.sgs.dot_norm": lambda m: torch.ops.sgs.dot_norm([m(5)], [m(5)]),
}


@pytest.mark.parametrize("call", META_CALLS.values(), ids=META_CALLS)
def test_an_eager_call_on_meta_tensors_is_refused(call):
    """The fake kernels are for tracing; on plain meta tensors they would answer shapes for
    calls a real device refuses (no check runs), so the call is refused, as torch refuses an
    op without a meta kernel."""
    with pytest.raises(NotImplementedError, match=r"sgs::\w+: meta tensors are supported only while tracing"):
        call(lambda *size: torch.empty(*size, device="meta"))


def test_tracing_still_gets_the_shapes_and_dtypes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        train, oracle = [torch.empty(5, dtype=torch.float64)], [torch.empty(5, dtype=torch.float64)]
        stats = sgs_ext.dot_norm(train, oracle)
        assert (stats.shape, stats.dtype) == ((3,), torch.float64)
        assert sgs_ext.surgery_(train, oracle).shape == (3,)
        sgs_ext.project_(train, oracle, stats)
        assert sgs_ext.gram([train, oracle, train]).shape == (3, 3)
