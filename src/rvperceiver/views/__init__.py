"""rvperceiver.views: tokenisation, lossless real-valued spectral transforms, dataset statistics, adaptive choice.

Pipeline of an :class:`InputView`: tokenise (:class:`TokenLayout`) → pre-norm → transform
(:func:`forward_transform`) → post-norm, with statistics streamed by :class:`RunningMoments`.
:func:`choose_view` picks raw or Fourier (or says neither) by a rule: the seed's participation ratio of the
between-example variance, or the default target-block rule, which scores each view against the target;
:class:`TargetNormalizer` scales regression targets.
"""

from __future__ import annotations

from rvperceiver.views.adaptive import AdaptiveChoice, choose_view, default_candidates
from rvperceiver.views.stats import RunningMoments, compute_moments, participation_ratio
from rvperceiver.views.target import TARGET_NORM_MODES, TargetNormalizer
from rvperceiver.views.tokenize import TOKEN_MODES, TokenLayout
from rvperceiver.views.transforms import TRANSFORM_KINDS, forward_transform, inverse_transform
from rvperceiver.views.view import NORM_MODES, TRANSFORM_AXES, InputView, ViewConfig

__all__ = [
    "NORM_MODES",
    "TARGET_NORM_MODES",
    "TOKEN_MODES",
    "TRANSFORM_AXES",
    "TRANSFORM_KINDS",
    "AdaptiveChoice",
    "InputView",
    "RunningMoments",
    "TargetNormalizer",
    "TokenLayout",
    "ViewConfig",
    "choose_view",
    "compute_moments",
    "default_candidates",
    "forward_transform",
    "inverse_transform",
    "participation_ratio",
]
