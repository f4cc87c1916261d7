"""Figures and the "change meter" widget of notebook 02 (ComFace).

Logic lives here so the notebook holds one line per figure and tests can drive the widget
by setting ``.value`` on its controls.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from facekit.methods.comface.config import DELTA_SCALE, TASKS
from facekit.methods.comface.data import world_of
from facekit.methods.comface.evaluate import ChangeHead
from facekit.methods.comface.model import ComFace
from facekit.synth.datasets import FACTOR_RANGES, FACTOR_UNITS
from facekit.synth.params import EMOTIONS, FaceParams, emotion_matrix
from facekit.synth.worlds import World
from facekit.viz import history_figure as plot_history
from facekit.viz import history_lines, png_bytes


def _set_factor(p: FaceParams, factor: str, value: float | torch.Tensor, emotion: int | torch.Tensor = 1) -> FaceParams:
    """``p`` with one factor set: expression is the intensity of emotion ``emotion``."""
    if factor == "expression":
        e = torch.as_tensor(emotion).expand(len(p))
        return p.replace(au=emotion_matrix()[e] * torch.as_tensor(value, dtype=torch.float32).view(-1, 1))
    return p.replace(**{factor: value})


# --------------------------------------------------------------------------- atlas


def embedding_atlas(model: ComFace, n_persons: int = 12, n_values: int = 5, world: World | None = None,
                    seed: int = 0) -> dict[str, Any]:
    """Faces of held-out test persons with each factor swept over ``n_values`` levels (the
    other factors held), embedded by ``model``: the data of the t-SNE figures. ``world``
    defaults to the model's test world, with half its pose spread so the sweep shows.

    Returns ``inter``, ``intra`` (N x d), ``person``, ``factor`` (index into TASKS) and
    ``value`` (the swept factor's value, scaled to [0, 1]).
    """
    w = world or dataclasses.replace(world_of(model.cfg.data, "test"), pose_scale=0.5)
    base, extra = w.faces(n_persons, split="test", seed=seed, expressions="neutral", n_persons=n_persons).params(
        range(n_persons))
    persons = extra["person"]
    imgs, person, factor, value = [], [], [], []
    for k, f in enumerate(TASKS):
        lo, hi = FACTOR_RANGES[f]
        for s in torch.linspace(0, 1, n_values):
            p = _set_factor(base, f, lo + (hi - lo) * float(s), emotion=1 + (torch.arange(n_persons) % (len(EMOTIONS) - 1)))
            imgs.append(w.render(p).cpu())
            person.append(persons)
            factor.append(torch.full((n_persons,), k))
            value.append(torch.full((n_persons,), float(s)))
    emb = model.embed(torch.cat(imgs), framing=w.framing)
    return {"inter": emb["inter"], "intra": emb["intra"], "person": torch.cat(person), "factor": torch.cat(factor),
            "value": torch.cat(value)}


def tsne_figure(atlas: Mapping[str, torch.Tensor], seed: int = 0) -> Figure:
    """t-SNE of the inter and intra embeddings, coloured by person and by change."""
    from sklearn.manifold import TSNE

    n = len(atlas["person"])
    perplexity = float(min(30, max(5, n // 8)))
    maps = {k: TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(atlas[k].numpy())
            for k in ("inter", "intra")}
    _, person = np.unique(atlas["person"].numpy(), return_inverse=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    panels = [("inter", "inter embedding, coloured by person", person, "tab20"),
              ("intra", "intra embedding, coloured by person", person, "tab20"),
              ("intra", "intra embedding, coloured by change", None, None)]
    for ax, (key, title, colour, cmap) in zip(axes, panels, strict=True):
        xy = maps[key]
        if colour is not None:
            ax.scatter(xy[:, 0], xy[:, 1], c=colour, cmap=cmap, s=12)
        else:
            for k, f in enumerate(TASKS):
                m = (atlas["factor"] == k).numpy()
                ax.scatter(xy[m, 0], xy[m, 1], c=atlas["value"].numpy()[m], cmap="viridis", s=8 + 30 * (k == 0),
                           marker="o^s"[k], label=f"{f} swept")
            ax.legend(fontsize=7, title="marker", title_fontsize=7)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
    fig.suptitle("What the two heads keep: identity (inter) and change (intra); colour of the right panel = factor level")
    fig.tight_layout()
    return fig


def positives_figure(pool: Mapping[str, torch.Tensor], n: int = 6, seed: int = 0) -> Figure:
    """What counts as "the same" for SimCLR (two augmentations of one photo) and for ComFace
    (two photos of one person across a real change)."""
    from facekit.models import augment

    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(pool["a"]), (n,), generator=g)
    a, b = pool["a"][idx].float() / 255, pool["b"][idx].float() / 255
    torch.manual_seed(seed)
    rows = [a, augment(a), augment(a), b]
    labels = ["photo", "SimCLR view 1", "SimCLR view 2", "ComFace positive"]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.3 * n, 1.35 * len(rows) + 0.6), squeeze=False)
    for r, row in enumerate(rows):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(row[c].permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(labels[r], fontsize=8)
            if r == 3:
                d = pool["delta"][idx[c]]
                k = int(d.abs().argmax())
                ax.set_xlabel(f"{TASKS[k]} {float(d[k]) * DELTA_SCALE[TASKS[k]]:+.2g}", fontsize=7)
    fig.suptitle("Positives: augmentations of one photo (SimCLR) vs the same person changed (ComFace)")
    fig.supxlabel("training pairs (bottom: the change from the top photo, in the factor's units)", fontsize=9)
    fig.tight_layout()
    return fig


def history_figure(history: Sequence[Mapping[str, float]], title: str = "ComFace training") -> Figure:
    """The two parts of the ComFace loss over training."""
    return plot_history({"loss": history_lines(history, {"inter": "inter: SupCon over persons",
                                                         "intra": "intra: delta MSE (scaled)"})}, title)


def transfer_figure(table: Any) -> Figure:
    """MAE against the number of labelled pairs, one panel per task, one line per method.
    ``table``: a DataFrame with columns method, task, n, mae."""
    fig, axes = plt.subplots(1, len(TASKS), figsize=(4 * len(TASKS), 3.4))
    for ax, task in zip(axes, TASKS, strict=True):
        sub = table[table.task == task]
        for method, grp in sub.groupby("method"):
            grp = grp.sort_values("n")
            ax.plot(grp.n, grp.mae, marker="o", label=method)
        ax.set_xscale("log")
        ns = sorted(sub.n.unique())
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
        ax.set_title(f"{task} change")
        ax.set_xlabel("labelled target pairs")
        ax.set_ylabel(f"MAE ({FACTOR_UNITS[task]})")
    axes[0].legend(fontsize=8)
    fig.suptitle("Transfer to the target style, unseen persons (lower is better)")
    fig.tight_layout()
    return fig


def similarity_figure(model: ComFace, pairs: Mapping[str, torch.Tensor]) -> Figure:
    """Histograms of inter-embedding cosine similarity, genuine vs impostor pairs."""
    embed = model.identity_embedder()
    za, zb = embed(pairs["a"].float() / 255), embed(pairs["b"].float() / 255)
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for k, (ax, name) in enumerate(zip(axes, ("age +30 years", "neutral vs strong expression"), strict=True)):
        m = torch.nonzero(pairs["kind"] == k).ravel()
        ax.hist((za[m] * zb[m]).sum(1).numpy(), bins=30, alpha=0.6, label="same person")
        ax.hist((za[m] * zb[m.roll(1)]).sum(1).numpy(), bins=30, alpha=0.6, label="different persons")
        ax.set(title=name, xlabel="cosine similarity of inter embeddings", ylabel="pairs")
        ax.legend(fontsize=8)
    fig.suptitle(f"Verification across a large change ({model.cfg.data.test_world} world, unseen persons)")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- widget


class ChangeMeter:
    """Two faces of one person set by sliders, with ComFace's estimate of the change between
    them next to the true change.

    The estimate is the synthetic-trained intra regressor (no target labels) and, when
    ``heads`` holds a fitted :class:`ChangeHead` for the factor, the ridge head too. The faces
    are rendered frontal in ``world`` (default: the model's test world, where the heads were fitted).
    """

    def __init__(self, model: ComFace, heads: Mapping[str, ChangeHead] | None = None, person: int = 0,
                 world: World | None = None, display_scale: int = 2) -> None:
        self.model, self.heads = model, dict(heads or {})
        self.world = world or world_of(model.cfg.data, "test")
        self.factor = widgets.Dropdown(options=list(TASKS), value="age", description="change")
        self.emotion = widgets.Dropdown(options=list(EMOTIONS[1:]), value=EMOTIONS[1], description="emotion")
        self.person = widgets.BoundedIntText(value=person, min=0, max=10**6, description="person")
        self.value_a = widgets.FloatSlider(description="face A", continuous_update=False)
        self.value_b = widgets.FloatSlider(description="face B", continuous_update=False)
        for s in (self.value_a, self.value_b):
            s.add_class("facekit-slider")
        self._set_ranges()
        size = model.size * display_scale
        self.image_a = widgets.Image(format="png", width=size, height=size)
        self.image_b = widgets.Image(format="png", width=size, height=size)
        for im in (self.image_a, self.image_b):
            im.add_class("facekit-face")
        self.caption = widgets.HTML()
        self.display_scale = display_scale
        self.factor.observe(self._on_factor, names="value")
        for w in (self.emotion, self.person, self.value_a, self.value_b):
            w.observe(self._on_change, names="value")
        controls = widgets.VBox([self.person, self.factor, self.emotion, self.value_a, self.value_b])
        self.widget = widgets.HBox([controls, widgets.VBox([widgets.HBox([self.image_a, self.image_b]), self.caption])])
        self.widget.add_class("facekit-explorer")
        self.updates = 0
        self._update()

    def _set_ranges(self) -> None:
        lo, hi = FACTOR_RANGES[self.factor.value]
        step = 0.05 if self.factor.value == "expression" else 1.0
        for s, frac in ((self.value_a, 0.2), (self.value_b, 0.7)):
            s.min, s.max = -1e9, 1e9  # widen first so the new range never clips the other bound
            s.min, s.max, s.step = lo, hi, step
            s.value = round(lo + frac * (hi - lo), 2)

    def _on_factor(self, _change: object = None) -> None:
        self._updating = True
        try:
            self._set_ranges()
        finally:
            self._updating = False
        self._update()

    def _on_change(self, _change: object = None) -> None:
        if not getattr(self, "_updating", False):
            self._update()

    def faces(self) -> torch.Tensor:
        """The two faces the controls describe, ``2 x 3 x S x S``."""
        p = FaceParams.neutral(self.world.identities.codes(torch.tensor([self.person.value] * 2)))
        values = torch.tensor([self.value_a.value, self.value_b.value], dtype=torch.float32)
        p = _set_factor(p, self.factor.value, values, EMOTIONS.index(self.emotion.value))
        return self.world.render(p).cpu()

    def estimate(self) -> dict[str, float]:
        """True change, the model's zero-shot estimate and (if fitted) the ridge head's."""
        f = self.factor.value
        x = self.faces()
        out = {"true": self.value_b.value - self.value_a.value,
               "comface": float(self.model.predict_change(x[:1], x[1:], f, self.world.framing)[0])}
        if f in self.heads:
            feats = self.model.pair_features(x[:1], x[1:], self.world.framing).numpy()
            out["ridge head"] = float(self.heads[f].predict(feats)[0])
        return out

    def _update(self) -> None:
        x = self.faces()
        self.image_a.value = png_bytes(x[0], self.display_scale)
        self.image_b.value = png_bytes(x[1], self.display_scale)
        est = self.estimate()
        unit = FACTOR_UNITS[self.factor.value]
        rows = "".join(f"<tr><td>{k}</td><td>{v:+.2f}</td></tr>" for k, v in est.items())
        self.caption.value = f"<b>change from A to B</b> ({unit})<table>{rows}</table>"
        self.updates += 1

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)
