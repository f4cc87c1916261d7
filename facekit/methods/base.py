"""The contract every method package meets, written as Protocols.

A method package (``facekit.methods.<name>``) exposes ``Config``, ``profile_config``,
``train_and_load``, ``load``, ``run_seed``, ``CLAIMS``, ``METRICS``, ``NOTEBOOK`` and ``TRAIN_HINT``
(:class:`MethodPackage`). The models it returns meet one or more capability protocols, which the
:class:`facekit.analyze.Analyzer` checks its named slots against, so any model with the
capability fits a slot, not only the one shipped for it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from facekit.metrics import PairedDifference, paired_difference
from facekit.train import TrainResult


@dataclass(frozen=True)
class Derived:
    """A per-seed quantity a claim compares that no run writes as one metric: ``fn`` of one
    seed's values of the ``inputs`` (metric names), e.g. the share of the identity probe's
    distance to chance that IAT removes. ``name`` says what it is in tables."""

    name: str
    inputs: tuple[str, ...]
    fn: Callable[..., float]

    def per_seed(self, values: Mapping[str, Sequence[float]]) -> list[float]:
        return [float(self.fn(*row)) for row in zip(*(values[k] for k in self.inputs), strict=True)]


@dataclass(frozen=True)
class Claim:
    """One claim of a paper as data: ``ours`` beats ``baseline`` (metric names in one seed's
    ``run_seed`` dict, a :class:`Derived` quantity of them, or a number for a fixed bar) in
    ``direction`` by more than ``margin``.

    A claim holds when every seed goes the claimed way and the 95% interval of the paired
    difference excludes ``margin`` (:meth:`judge`).
    """

    id: str
    statement: str
    ours: str | Derived
    baseline: str | Derived | float
    direction: Literal["higher", "lower"]
    margin: float = 0.0

    def __post_init__(self) -> None:
        if self.direction not in ("higher", "lower"):
            raise ValueError(f"Claim {self.id}: direction={self.direction!r} is not valid; pass 'higher' or 'lower'")

    @property
    def higher_is_better(self) -> bool:
        return self.direction == "higher"

    @property
    def inputs(self) -> tuple[str, ...]:
        """The metric names the claim reads."""
        return tuple(n for side in (self.ours, self.baseline) if not isinstance(side, int | float)
                     for n in (side.inputs if isinstance(side, Derived) else (side,)))

    def sides(self, values: Mapping[str, Sequence[float]]) -> tuple[list[float], list[float]]:
        """Per-seed values of ``ours`` and ``baseline`` from ``{metric: value of each seed}``."""
        def side(s: str | Derived | float, n: int) -> list[float]:
            if isinstance(s, Derived):
                return s.per_seed(values)
            return [float(s)] * n if isinstance(s, int | float) else [float(v) for v in values[s]]

        ours = side(self.ours, 0)
        return ours, side(self.baseline, len(ours))

    def judge(self, values: Mapping[str, Sequence[float]]) -> tuple[list[float], list[float], PairedDifference]:
        """Both sides per seed and their paired difference, shifted by ``margin``: the verdict
        (``holds``: every seed goes the claimed way and the 95% interval excludes the margin)."""
        ours, base = self.sides(values)
        shift = -self.margin if self.higher_is_better else self.margin
        return ours, base, paired_difference(np.add(ours, shift), base, higher_is_better=self.higher_is_better)


@runtime_checkable
class MethodPackage(Protocol):
    """What ``facekit.methods.<name>`` exposes (checked by tests/test_methods_contract.py)."""

    Config: type
    CLAIMS: Sequence[Claim]
    METRICS: Mapping[str, Sequence[str]]  # {record: metric-name templates} (facekit.records.declared_metrics)
    NOTEBOOK: str
    TRAIN_HINT: str

    def profile_config(self, profile: str | None = None, seed: int = 0) -> Any: ...

    def train_and_load(self, profile: str | None = None, seed: int = 0, *,
                       progress: bool | None = None) -> tuple[Any, TrainResult]: ...

    def load(self, profile: str | None = None, seed: int = 0, *, device: str | torch.device | None = None,
             cfg: Any = None) -> Any: ...

    def run_seed(self, profile: str | None = None, seed: int = 0, *, progress: bool | None = False,
                 log: Callable[[str], None] = print) -> dict[str, float]: ...


# ------------------------------------------------------------------------- capabilities


@runtime_checkable
class AUModel(Protocol):
    """Action-unit occurrence: ``predict_proba(images) -> N x len(aus)``."""

    aus: list[str]

    def predict_proba(self, images: Tensor | np.ndarray, framing: str = "head") -> np.ndarray: ...


@runtime_checkable
class ExpressionModel(Protocol):
    """Expression class probabilities: ``predict_proba(images) -> N x len(classes)``."""

    classes: list[str]

    def predict_proba(self, images: Tensor) -> np.ndarray: ...


@runtime_checkable
class IdentityModel(Protocol):
    """An identity embedding: ``embed(images)["inter"]`` is unit-norm; ``similarity(a, b)`` its cosine."""

    def embed(self, images: Tensor, batch_size: int = 256) -> dict[str, Tensor]: ...

    def similarity(self, a: Tensor, b: Tensor) -> Tensor: ...


@runtime_checkable
class ChangeModel(Protocol):
    """The change between two photos of one person, per task (``tasks``), in the task's units."""

    tasks: list[str]

    def predict_change(self, a: Tensor, b: Tensor, task: str) -> Tensor: ...


@runtime_checkable
class ReferenceModel(Protocol):
    """A reference (neutral) face of the same person for each query image."""

    def reference(self, images: Tensor) -> Tensor: ...


@runtime_checkable
class Editor(Protocol):
    """Edits attributes of face images while keeping identity."""

    attributes: list[str]

    def edit(self, images: Tensor, method: str = ..., **levels: float) -> Tensor: ...


CAPABILITIES: dict[str, type] = {"au_model": AUModel, "expression_model": ExpressionModel,
                                 "identity_model": IdentityModel, "change_model": ChangeModel,
                                 "reference_model": ReferenceModel, "editor": Editor}

__all__ = ["CAPABILITIES", "AUModel", "ChangeModel", "Claim", "Editor", "ExpressionModel", "IdentityModel",
           "MethodPackage", "ReferenceModel"]
