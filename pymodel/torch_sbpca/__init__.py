"""PyTorch integration of SBPCA: a gradient transform for any model and a DDP communication hook.

Public API (see ``docs/TORCH.md``):

* :class:`SBPCAGradient` -- hooks Linear/Conv2d layers, replaces weight gradients by SBPCA estimates.
* :class:`SBPCAOptimizer` -- wraps a ``torch.optim`` optimizer so ``step`` applies the transform.
* :class:`SBPCAState`, :func:`sbpca_update`, :func:`orth` -- the float algorithm on tensors.
* :class:`SBPCAHookState`, :func:`sbpca_hook` -- DDP hook exchanging k(a+b+1) numbers per layer.
* :class:`CommCounter` -- counts the bytes handed to ``torch.distributed`` collectives.
* :func:`compare_ddp`, :func:`ddp_exactness_check` -- multi-process gloo runs (tests, benchmarks).
"""

from .comm import CommCounter
from .core import SBPCAState, orth, sbpca_update
from .ddp_compare import SmallCNN, compare_ddp, ddp_exactness_check, digits_tensors
from .ddp_hook import SBPCAHookState, sbpca_hook
from .transform import SBPCAGradient, SBPCAOptimizer, layer_deltas, layer_inputs

__all__ = [
    "SBPCAState", "orth", "sbpca_update",
    "SBPCAGradient", "SBPCAOptimizer", "layer_inputs", "layer_deltas",
    "SBPCAHookState", "sbpca_hook", "CommCounter",
    "SmallCNN", "digits_tensors", "compare_ddp", "ddp_exactness_check",
]
