"""Figures and the intensity explorer (the only gencon file importing matplotlib or ipywidgets)."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from facekit.methods.gencon.config import BIN_NAMES
from facekit.methods.gencon.data import person_photo, render_photo
from facekit.methods.gencon.model import GenCon
from facekit.synth.params import EMOTIONS, emotion_matrix
from facekit.viz import difference_map, face_grid, history_lines, png_bytes
from facekit.viz import history_figure as plot_history


def difference_image(a: Tensor, b: Tensor, gain: float = 3.0) -> Tensor:
    """|a - b| summed over channels, amplified, as a grey ``3 x H x W`` image."""
    return (gain * difference_map(a, b)).clamp(0, 1).expand(3, -1, -1)


def examples_figure(model: GenCon, test: dict[str, Tensor], n: int = 6, seed: int = 0) -> Figure:
    """Rows of query, generated reference, true neutral and |query - reference| for ``n``
    expressive held-out faces (strongest first)."""
    idx = torch.nonzero(test["emotion"] > 0).ravel()
    idx = idx[torch.randperm(len(idx), generator=torch.Generator().manual_seed(seed))[:n]]
    idx = idx[test["intensity"][idx].argsort(descending=True)]
    x, neutral = test["image"][idx].float() / 255, test["neutral"][idx].float() / 255
    ref = model.reference(x)
    rows = torch.stack([torch.stack([x[i], ref[i], neutral[i], difference_image(x[i], ref[i])]) for i in range(len(idx))])
    labels = [f"{EMOTIONS[int(test['emotion'][i])]} {float(test['intensity'][i]):.2f}" for i in idx]
    return face_grid(rows, "Held-out persons: query, generated reference, true neutral, difference", row_labels=labels,
                     col_labels=["query", "reference G(x)", "true neutral", "|query - reference| x3"],
                     xlabel="what the network compares", ylabel="emotion and intensity of the query")


def bins_figure(scores: dict[str, float]) -> Figure:
    """Held-out accuracy per intensity bin, reference-contrast vs single-image."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    xs = np.arange(len(BIN_NAMES) + 1)
    labels = [*BIN_NAMES, "all"]
    for k, (name, label) in enumerate((("single", "single image"), ("gencon", "reference contrast"))):
        vals = [scores[f"{name}/acc_{b}"] for b in BIN_NAMES] + [scores[f"{name}/acc"]]
        ax.bar(xs + (k - 0.5) * 0.38, vals, width=0.38, label=label)
    ax.axhline(1 / len(EMOTIONS), color="grey", ls=":", label="chance (1/8)")
    ax.set_xticks(xs, labels)
    ax.set_xlabel("expression intensity bin")
    ax.set_ylabel("held-out accuracy")
    ax.set_ylim(0, 1)
    ax.set_title("Expression accuracy on unseen persons, by intensity")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def history_figure(histories: dict[str, list[dict[str, float]]]) -> Figure:
    """Each stage's logged losses against its steps (a loss keeps its colour across stages)."""
    keys = ("ce", "l1", "mse", "identity")
    return plot_history({stage: history_lines(hist, keys) for stage, hist in histories.items()},
                        "Training: G, then E with G frozen, then end to end",
                        colours={k: f"C{i}" for i, k in enumerate(keys)})


@torch.no_grad()
def intensity_sweep(model: GenCon, person: int, levels: Sequence[float] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)) -> dict[str, np.ndarray]:
    """Every emotion of one person at each intensity: ``difference`` (mean |query - reference|)
    and ``p_true`` (the classifier's probability of the shown emotion), each ``(7, levels)``."""
    base = person_photo(model.cfg.data, person)
    diff, p_true = np.zeros((len(EMOTIONS) - 1, len(levels))), np.zeros((len(EMOTIONS) - 1, len(levels)))
    for e in range(1, len(EMOTIONS)):
        au = emotion_matrix()[e][None] * torch.tensor(levels, dtype=torch.float32)[:, None]
        x = render_photo(model.cfg.data, base[[0] * len(levels)].replace(au=au))
        diff[e - 1] = (x - model.reference(x)).abs().mean((1, 2, 3)).numpy()
        p_true[e - 1] = model.predict_proba(x)[:, e]
    return {"levels": np.asarray(levels), "difference": diff, "p_true": p_true}


def sweep_figure(sweep: dict[str, np.ndarray], person: int) -> Figure:
    """The two curves of :func:`intensity_sweep`, one line per emotion."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for e, name in enumerate(EMOTIONS[1:]):
        axes[0].plot(sweep["levels"], sweep["difference"][e], marker="o", label=name)
        axes[1].plot(sweep["levels"], sweep["p_true"][e], marker="o", label=name)
    axes[0].set_title("How far the query is from its reference")
    axes[0].set_ylabel("mean |query - reference|")
    axes[1].set_title("Classifier's probability of the shown emotion")
    axes[1].set_ylabel("p(true emotion)")
    axes[1].set_ylim(0, 1)
    for ax in axes:
        ax.set_xlabel("expression intensity")
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle(f"Held-out person {person}: one photo setup, each emotion from 0 to full intensity")
    fig.tight_layout()
    return fig


class IntensityExplorer:
    """One held-out person; an emotion and an intensity slider. Shows the query, the generated
    reference, the true neutral and the difference, and the classifier's top guesses."""

    def __init__(self, model: GenCon, person: int | None = None, emotion: str = "happiness",
                 display_scale: int = 3) -> None:
        if emotion not in EMOTIONS[1:]:
            raise ValueError(f"emotion={emotion!r} is not valid; choose one of {list(EMOTIONS[1:])}")
        self.model, self.display_scale = model, display_scale
        test_ids = model.cfg.data.identities().ids("test")
        self.person = int(test_ids[0]) if person is None else int(person)
        self.params = person_photo(model.cfg.data, self.person)
        self.emotion = widgets.Dropdown(options=list(EMOTIONS[1:]), value=emotion, description="emotion")
        self.intensity = widgets.FloatSlider(value=0.3, min=0.0, max=1.0, step=0.05, description="intensity",
                                             continuous_update=False)
        self.intensity.add_class("facekit-slider")
        for w in (self.emotion, self.intensity):
            w.observe(self._update, names="value")
        size = model.size * display_scale
        self.images = [widgets.Image(format="png", width=size, height=size) for _ in range(4)]
        for im in self.images:
            im.add_class("facekit-face")
        titles = ["query", "reference G(x)", "true neutral", "|query - reference| x3"]
        self.caption = widgets.HTML()
        faces = widgets.HBox([widgets.VBox([widgets.HTML(f"<b>{t}</b>"), im]) for t, im in zip(titles, self.images,
                                                                                                strict=True)])
        self.widget = widgets.VBox([widgets.HBox([self.emotion, self.intensity]), faces, self.caption])
        self.widget.add_class("facekit-explorer")
        self.difference = 0.0
        self._update()

    def _update(self, _change: object = None) -> None:
        e = EMOTIONS.index(self.emotion.value)
        p = self.params.replace(au=emotion_matrix()[e][None] * self.intensity.value)
        x = render_photo(self.model.cfg.data, p)
        neutral = render_photo(self.model.cfg.data, self.params)
        ref = self.model.reference(x)
        proba = self.model.predict_proba(x)[0]
        self.difference = float((x - ref).abs().mean())
        for im, img in zip(self.images, (x[0], ref[0], neutral[0], difference_image(x[0], ref[0])), strict=True):
            im.value = png_bytes(img, self.display_scale)
        top = np.argsort(proba)[::-1][:3]
        guesses = ", ".join(f"{EMOTIONS[k]} {proba[k]:.2f}" for k in top)
        self.caption.value = (f"person {self.person}, {self.emotion.value} at {self.intensity.value:.2f}: "
                              f"mean |query - reference| = {self.difference:.4f}; classifier: {guesses}")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
