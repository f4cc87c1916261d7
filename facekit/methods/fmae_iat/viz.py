"""Figures and the AU-meter widget of notebook 03 (FMAE-IAT); logic stays out of the notebook."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from facekit.methods.fmae_iat.model import AUDetector
from facekit.models.vit_mae import FaceMAE
from facekit.synth.params import AU_FACS, FaceParams, identity_codes
from facekit.synth.render import render
from facekit.viz import face_grid, history_lines, png_bytes
from facekit.viz import history_figure as plot_history


def history_figure(history: list[dict[str, float]], keys: Sequence[str], title: str) -> Figure:
    """The logged ``keys`` of one training run."""
    return plot_history({"loss": history_lines(history, keys)}, title, ylabel="loss (mean over the logging window)",
                        log=False)


def reconstruction_figure(mae: FaceMAE, images: torch.Tensor, title: str, seed: int = 0) -> Figure:
    """Rows: original, what the encoder sees (75% of patches hidden), reconstruction."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(len(images), mae.spec.n_patches, generator=g)
    out = mae.reconstruct(images, noise=noise)
    grid = torch.stack([images, out["masked"], out["reconstruction"]])
    return face_grid(grid, title, row_labels=["original", "masked (75%)", "reconstruction"],
                     xlabel="face (unseen by the MAE)", ylabel="stage")


def base_rate_figure(labels: torch.Tensor, subjects: torch.Tensor, aus: Sequence[str], title: str) -> Figure:
    """Each subject's AU base rates: rows that differ mean identity predicts the labels."""
    n = int(subjects.max()) + 1
    rates = torch.stack([labels[subjects == s].float().mean(0) for s in range(n)]).numpy()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    im = ax.imshow(rates, aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(aus)), aus, rotation=90)
    ax.set(title=title, xlabel="Action Unit", ylabel="subject")
    fig.colorbar(im, ax=ax, label="share of the subject's images with the AU")
    fig.tight_layout()
    return fig


def scale_figure(val_f1: dict[str, float], chosen: float, title: str) -> Figure:
    fig, ax = plt.subplots(figsize=(5, 3))
    scales = list(val_f1)
    ax.bar(scales, [val_f1[s] for s in scales], color=["C1" if float(s) == chosen else "C0" for s in scales])
    ax.set(title=title, xlabel="gradient-reversal scale", ylabel="validation mean F1 at 0.5")
    fig.tight_layout()
    return fig


def variants_figure(scores: dict[str, float], names: Sequence[str], title: str) -> Figure:
    """Left: mean F1 at 0.5 per variant; right: identity-probe accuracy against chance."""
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.bar(names, [scores[f"{n}/f1"] for n in names], color="C0")
    a.set(title="AU detection on unseen subjects", xlabel="variant", ylabel="mean F1 at threshold 0.5")
    b.bar(names, [scores[f"{n}/probe"] for n in names], color="C2")
    b.axhline(scores["probe/chance"], color="k", ls="--", label="chance")
    b.set(title="identity leakage", xlabel="variant", ylabel="identity-probe accuracy")
    b.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def per_au_table(scores: dict[str, float], names: Sequence[str], aus: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({n: [scores.get(f"{n}/f1/{au}", np.nan) for au in aus] for n in names},
                        index=pd.Index(list(aus), name="AU")).round(3)


def real_faces_figure(images: torch.Tensor, probs: np.ndarray, aus: Sequence[str], title: str, top: int = 3) -> Figure:
    """Each photo with its ``top`` most probable AUs written under it."""
    n = len(images)
    fig, axes = plt.subplots(1, n, figsize=(1.6 * n, 2.6), squeeze=False)
    for i, ax in enumerate(axes[0]):
        ax.imshow(images[i].permute(1, 2, 0).clamp(0, 1).numpy())
        ax.set_xticks([])
        ax.set_yticks([])
        best = np.argsort(-probs[i])[:top]
        ax.set_xlabel("\n".join(f"{aus[j]} {probs[i, j]:.2f}" for j in best), fontsize=7)
    fig.suptitle(title)
    fig.supylabel("photo", fontsize=9)
    fig.tight_layout()
    return fig


class AUMeter:
    """Sliders set a synthetic face's AU intensities; the detector's probabilities update live.

    Drive it from Python by setting ``meter.sliders["AU12"].value``; ``meter.last`` holds the
    latest probabilities (``{AU: p}``).
    """

    def __init__(self, detector: AUDetector, person: int = 3, size: int = 96) -> None:
        self.detector, self.size = detector, size
        self.person = person
        self.sliders: dict[str, widgets.FloatSlider] = {}
        for au in detector.aus:
            s = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description=au, tooltip=AU_FACS[au],
                                    continuous_update=False)
            s.add_class("facekit-slider")
            s.observe(self._update, names="value")
            self.sliders[au] = s
        self.image = widgets.Image(format="png", width=2 * size, height=2 * size)
        self.image.add_class("facekit-face")
        self.readout = widgets.HTML()
        self.widget = widgets.HBox([widgets.VBox(list(self.sliders.values())), widgets.VBox([self.image, self.readout])])
        self.widget.add_class("facekit-explorer")
        self.last: dict[str, float] = {}
        self._update()

    def face(self) -> torch.Tensor:
        p = FaceParams.neutral(identity_codes([self.person]))
        for au, s in self.sliders.items():
            p = p.with_au(au, s.value)
        return render(p, self.size)

    def _update(self, _change: Any = None) -> None:
        img = self.face()
        self.image.value = png_bytes(img[0], 2)
        probs = self.detector.predict_proba(img)[0]
        self.last = dict(zip(self.detector.aus, probs.tolist(), strict=True))
        rows = "".join(f"<tr><td>{au}</td><td>{AU_FACS[au]}</td><td>{self.sliders[au].value:.2f}</td>"
                       f"<td><b>{p:.2f}</b></td></tr>" for au, p in self.last.items())
        self.readout.value = ("<table><tr><th>AU</th><th>FACS name</th><th>set</th><th>detected p</th></tr>"
                              f"{rows}</table>")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


__all__ = ["AUMeter", "base_rate_figure", "history_figure", "per_au_table", "real_faces_figure",
           "reconstruction_figure", "scale_figure", "variants_figure"]
