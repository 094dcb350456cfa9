"""Integrations of :class:`sgs_ext.StochasticGradientSurgery` with training frameworks.

Each integration lives in its own module and imports its framework only when that module
is imported, so ``import sgs_ext`` (and ``import sgs_ext.integrations``) never imports
``transformers``::

    from sgs_ext.integrations.transformers import GradientSurgeryTrainer
"""

__all__ = ["GradientSurgeryTrainer"]


def __getattr__(name):
    if name == "GradientSurgeryTrainer":
        from .transformers import GradientSurgeryTrainer

        return GradientSurgeryTrainer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
