"""Figures and the live editor widget of notebook 06 (PluGeN4Faces)."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.figure import Figure

from facekit.methods.plugen.config import ATTRIBUTE_NAMES, ATTRIBUTES, EDIT_METHODS
from facekit.methods.plugen.model import PlugenEditor
from facekit.viz import Controls, face_grid, history_lines, png_bytes
from facekit.viz import history_figure as plot_history

METHOD_LABELS = {"plugen4faces": "PluGeN4Faces (identity loss)", "plugen": "PluGeN (no identity loss)",
                 "linear": "linear directions"}
COLOURS = {"plugen4faces": "tab:green", "plugen": "tab:orange", "linear": "tab:blue"}


def traversal_grid(editor: PlugenEditor, image: torch.Tensor, attribute: str,
                   levels: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)) -> Figure:
    """One face with ``attribute`` set to each level (columns), one row per method."""
    editor.check_levels({attribute: 0.0})
    z = editor.encode(image[None] if image.ndim == 3 else image[:1])
    rows = [editor.decode(torch.cat([editor.edit_latent(z, {attribute: lv}, m) for lv in levels])) for m in EDIT_METHODS]
    lo, hi, unit = ATTRIBUTES[attribute][1:]
    cols = [f"{lv:g} ({lo + (hi - lo) * lv:.3g})" for lv in levels]
    return face_grid(torch.stack(rows), f"Traversal: {attribute} ({ATTRIBUTES[attribute][0]})",
                     row_labels=[METHOD_LABELS[m].split(" (")[0] for m in EDIT_METHODS], col_labels=cols,
                     xlabel=f"target level (in {unit})", ylabel="method")


def history_figure(history: dict[str, list[dict[str, float]]]) -> Figure:
    """Autoencoder reconstruction error, and the within-person spread of the identity dims of
    both flows (the identity loss, logged for the baseline too), against training step."""
    methods = ("plugen4faces", "plugen")
    return plot_history({"Autoencoder reconstruction error": history_lines(history["ae"], {"mse": "autoencoder"}),
                         "Within-person spread of the identity dims":
                             [(history[m], "identity", METHOD_LABELS[m]) for m in methods]},
                        "PluGeN4Faces training: the autoencoder, then the flows",
                        ylabel=["pixel MSE", "identity loss (per dim)"],
                        colours={METHOD_LABELS[m]: COLOURS[m] for m in methods})


def identity_vs_success(curves: pd.DataFrame, matched: pd.DataFrame | None = None) -> Figure:
    """Per attribute: identity cosine against oracle-read attribute success, one line per
    method (points: amounts 0, 0.25, ..., 1); dashed: the matched success ``s*``."""
    attrs = list(dict.fromkeys(curves["attribute"]))
    fig, axes = plt.subplots(2, (len(attrs) + 1) // 2, figsize=(3.2 * ((len(attrs) + 1) // 2), 6.4), squeeze=False)
    for ax, attr in zip(axes.flat, attrs, strict=False):
        for method, c in curves[curves["attribute"] == attr].groupby("method", sort=False):
            g = c.groupby("amount")[["success", "id_cos"]].mean().reset_index()
            ax.plot(g["success"], g["id_cos"], "o-", color=COLOURS[method], label=METHOD_LABELS[method], ms=3)
        if matched is not None:
            s = matched[matched["attribute"] == attr]["s_star"]
            if len(s):
                ax.axvline(float(s.mean()), color="grey", ls="--", lw=1)
        ax.set_title(attr, fontsize=9)
        ax.set_xlabel("attribute success (oracle)", fontsize=8)
        ax.set_ylabel("identity cosine", fontsize=8)
    for ax in list(axes.flat)[len(attrs):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, loc="lower left")
    fig.suptitle("Identity preservation against attribute success (held-out persons; dashed: matched success s*)")
    fig.tight_layout()
    return fig


def curves_vs_amount(curves: pd.DataFrame) -> Figure:
    """Attribute success, identity cosine and identity-code error against edit strength,
    averaged over the attributes."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for method, c in curves.groupby("method", sort=False):
        g = c.groupby("amount")[["success", "id_cos", "code_dist"]].mean()
        for ax, col in zip(axes, ("success", "id_cos", "code_dist"), strict=True):
            ax.plot(g.index, g[col], "o-", color=COLOURS[method], label=METHOD_LABELS[method])
    labels = ("attribute success (fraction of the requested change)", "identity cosine to the unedited face",
              "identity-code error (L2, 26-d)")
    for ax, lab in zip(axes, labels, strict=True):
        ax.set_xlabel("edit strength (fraction of the way to the target)")
        ax.set_ylabel(lab, fontsize=8)
    axes[0].legend(fontsize=8)
    fig.suptitle("Edit strength against success and identity, mean over the seven attributes")
    fig.tight_layout()
    return fig


def photo_edits(editor: PlugenEditor, crops: torch.Tensor, edits: dict[str, dict[str, float]],
                optimise_steps: int = 100, title: str = "Real photos") -> Figure:
    """Rows: aligned real faces. Columns: the crop, the encoder's reconstruction, after
    ``optimise_steps`` of latent optimisation, then each edit (label -> levels) by each method."""
    z0 = editor.embed(crops, 0)
    z = editor.embed(crops, optimise_steps)
    cols = [crops.cpu(), editor.decode(z0), editor.decode(z)]
    labels = ["input", "encoder", f"+{optimise_steps} steps"]
    for name, levels in edits.items():
        levels = editor.check_levels(levels)
        for m in EDIT_METHODS:
            cols.append(editor.decode(editor.edit_latent(z, levels, m)))
            labels.append(f"{name}\n{m}")
    return face_grid(torch.stack(cols, 1), title, col_labels=labels, row_labels=[f"photo {i}" for i in range(len(crops))],
                     xlabel="reconstruction, then edit and method", ylabel="real face", cell=1.25)


class EditorWidget(Controls):
    """Pick a face, move a slider per attribute, see the three methods side by side.

    Sliders start at the face's true levels; only attributes moved away from them are edited.
    """

    def __init__(self, editor: PlugenEditor, images: torch.Tensor, levels: torch.Tensor, display_scale: int = 3) -> None:
        if len(images) != len(levels) or len(images) == 0:
            raise ValueError(f"got {len(images)} images and {len(levels)} level rows; pass one row per image")
        self.editor, self.images, self.levels, self.scale = editor, images, levels, display_scale
        self.face = widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="face", continuous_update=False)
        self.face.add_class("facekit-slider")
        self.face.observe(self._on_face, names="value")
        self.sliders: dict[str, widgets.FloatSlider] = {}
        for name in ATTRIBUTE_NAMES:
            s = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description=name, continuous_update=False,
                                    tooltip=ATTRIBUTES[name][0])
            s.add_class("facekit-slider")
            s.observe(self._on_change, names="value")
            self.sliders[name] = s
        size = editor.size * display_scale
        self.panels = {k: widgets.Image(format="png", width=size, height=size) for k in ("input", *EDIT_METHODS)}
        boxes = []
        for k, img in self.panels.items():
            img.add_class("facekit-input" if k == "input" else "facekit-face")  # the browser test watches the edits
            boxes.append(widgets.VBox([img, widgets.HTML(f"<b>{METHOD_LABELS.get(k, 'input face')}</b>")]))
        self.caption = widgets.HTML()
        self.widget = widgets.VBox([widgets.HBox([widgets.VBox([self.face, *self.sliders.values()]),
                                                  widgets.HBox(boxes)]), self.caption])
        self.widget.add_class("facekit-explorer")
        self.updates = 0
        self._on_face()

    def targets(self) -> dict[str, float]:
        """The attributes moved away from the face's own levels, and their targets."""
        own = self.levels[self.face.value]
        return {n: s.value for k, (n, s) in enumerate(self.sliders.items()) if abs(s.value - float(own[k])) > 0.026}

    def render(self) -> dict[str, torch.Tensor]:
        """The input face and each method's edit, ``3 x size x size`` each."""
        x = self.images[self.face.value][None]
        z = self.editor.encode(x)
        t = self.targets()
        out = {"input": x[0]}
        for m in EDIT_METHODS:
            out[m] = self.editor.decode(self.editor.edit_latent(z, t, m) if t else z)[0]
        return out

    def _on_face(self, _change: object = None) -> None:
        with self.setting():
            for k, s in enumerate(self.sliders.values()):
                s.value = round(float(self.levels[self.face.value, k]) / 0.05) * 0.05

    def _update(self) -> None:
        for k, img in self.render().items():
            self.panels[k].value = png_bytes(img, self.scale)
        t = self.targets()
        self.caption.value = ("edited: " + ", ".join(f"{n} -> {v:.2f}" for n, v in t.items())) if t else \
            "no attribute moved: each method shows its reconstruction"
        self.updates += 1

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


__all__ = ["EditorWidget", "curves_vs_amount", "history_figure", "identity_vs_success", "photo_edits", "traversal_grid"]
