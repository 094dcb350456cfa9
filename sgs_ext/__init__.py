"""sgs-ext: fused stochastic gradient surgery for PyTorch.

Ops over lists of gradient tensors (one per parameter), computed in one pass
by the compiled extension and registered as ``torch.ops.sgs.*``:

    stats = sgs_ext.dot_norm(train, oracle)   # [train·oracle, ‖oracle‖², ‖train‖²]
    sgs_ext.project_(train, oracle, stats)    # train -= min(dot,0)/‖oracle‖² · oracle
    stats = sgs_ext.surgery_(train, oracle)   # both
    G = sgs_ext.gram([g_en, g_hi, g_ar])      # all pairwise dot products

``sgs_ext.reference`` has the same functions written the naive way.
"""
from . import reference
from ._loader import BUILT_WITH_TORCH, CUDA_COMPILED
from .ops import dot_norm, gram, project_, surgery_
from .surgery import StochasticGradientSurgery, SurgeryStats

__version__ = "0.1.0"
__all__ = [
    "StochasticGradientSurgery", "SurgeryStats",
    "dot_norm", "project_", "surgery_", "gram", "reference", "BUILT_WITH_TORCH", "CUDA_COMPILED",
]
