"""What an evaluation produces: predictions per cell (-C, -3DCC) or per video (-P), with run information.

:mod:`~timm_dynmix.robustness.evaluate` fills these; :mod:`~timm_dynmix.robustness.report` turns them into metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from timm_dynmix.robustness.readers import CorruptionBenchmark, PerturbationBenchmark

__all__ = ["CellPredictions", "CorruptionResult", "PerturbationResult"]


@dataclass
class CellPredictions:
    """Top-1 predictions, their softmax confidence and the labels of one cell."""

    corruption: str
    severity: int
    pred: np.ndarray
    confidence: np.ndarray
    label: np.ndarray

    @property
    def correct(self) -> np.ndarray:
        return self.pred == self.label


@dataclass
class CorruptionResult:
    benchmark: CorruptionBenchmark
    cells: list[CellPredictions]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class PerturbationResult:
    benchmark: PerturbationBenchmark
    # perturbation -> (top-1 (V, T), top-5 (V, T, 5), labels (V,))
    predictions: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    info: dict[str, Any] = field(default_factory=dict)
