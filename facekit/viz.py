"""Figures, and the update rule of the interactive widgets that show them. Every figure has a
title and labelled axes, so it reads on its own."""

from __future__ import annotations

import abc
import io
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

if TYPE_CHECKING:
    import pandas as pd

    from facekit.synth.params import FaceParams


class Controls(abc.ABC):
    """A widget's controls: :meth:`_update` redraws once per moved control (wire each to
    :meth:`_on_change`), and once for controls set together (:meth:`setting`), not once each."""

    _quiet = False

    @abc.abstractmethod
    def _update(self) -> None:
        """Redraw from the controls' values."""

    def _on_change(self, _change: object = None) -> None:
        if not self._quiet:
            self._update()

    @contextmanager
    def setting(self) -> Iterator[None]:
        """Set several controls inside; one redraw when the block ends."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False
        self._update()


def to_numpy_image(img: torch.Tensor) -> np.ndarray:
    """``3 x H x W`` (or ``H x W``) float tensor in [0, 1] to ``H x W x 3`` uint8."""
    t = img.detach().float().cpu().clamp(0, 1)
    if t.dim() == 2:
        t = t.unsqueeze(0).expand(3, -1, -1)
    if t.dim() != 3 or t.shape[0] not in (1, 3):
        raise ValueError(f"image has shape {tuple(img.shape)}; expected 3 x H x W or H x W")
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return (t.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def png_bytes(img: torch.Tensor, scale: int = 1) -> bytes:
    """PNG encoding of one image (for ipywidgets.Image), optionally upscaled by ``scale``."""
    from PIL import Image

    arr = to_numpy_image(img)
    pil = Image.fromarray(arr)
    if scale > 1:
        pil = pil.resize((arr.shape[1] * scale, arr.shape[0] * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def face_grid(
    images: torch.Tensor,
    title: str,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    ncols: int | None = None,
    cell: float = 1.3,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> Figure:
    """A grid of faces. ``images`` is ``N x 3 x H x W`` or ``R x C x 3 x H x W``."""
    if images.dim() == 4:
        n = images.shape[0]
        ncols = ncols or min(n, 8)
        nrows = (n + ncols - 1) // ncols
        pad = nrows * ncols - n
        if pad:
            images = torch.cat([images, torch.ones(pad, *images.shape[1:])])
        images = images.view(nrows, ncols, *images.shape[1:])
    if images.dim() != 5:
        raise ValueError(f"images has shape {tuple(images.shape)}; expected N x 3 x H x W or R x C x 3 x H x W")
    nrows, ncols = images.shape[:2]
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell * ncols, cell * nrows + 0.6), squeeze=False)
    for r in range(nrows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.imshow(to_numpy_image(images[r, c]))
            ax.set_xticks([])
            ax.set_yticks([])
            if col_labels is not None and r == 0:
                ax.set_title(col_labels[c], fontsize=8)
            if row_labels is not None and c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8)
    fig.suptitle(title)
    if xlabel:
        fig.supxlabel(xlabel, fontsize=9)
    if ylabel:
        fig.supylabel(ylabel, fontsize=9)
    fig.tight_layout()
    return fig


def difference_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel absolute difference of two ``3 x H x W`` images, summed over channels."""
    return (a - b).abs().sum(0)


def histograms(columns: dict[str, np.ndarray], title: str, units: dict[str, str] | None = None, bins: int = 30) -> Figure:
    """One small histogram per column (used by data cards and the tour)."""
    names = list(columns)
    ncols = min(4, len(names))
    nrows = (len(names) + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 2.3 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        ax.hist(np.asarray(columns[name]), bins=bins, color="#4c72b0")
        ax.set_xlabel(f"{name} ({units[name]})" if units and name in units else name, fontsize=8)
        ax.set_ylabel("count", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


History = Sequence[Mapping[str, float]]
HistoryLine = tuple[History, str, str]  # (a training history, the logged key to draw, the line's label)


def history_lines(history: History, keys: Mapping[str, str] | Sequence[str]) -> list[HistoryLine]:
    """The lines of :func:`history_figure` for some keys of one history (a mapping gives each
    key its label; a sequence labels each line with its key)."""
    labels = keys if isinstance(keys, Mapping) else {k: k for k in keys}
    return [(history, k, label) for k, label in labels.items()]


def history_figure(panels: Mapping[str, Sequence[HistoryLine]], title: str, *, ylabel: str | Sequence[str] = "loss",
                   xlabel: str = "training step", log: bool = True, colours: Mapping[str, str] | None = None,
                   marker: str | None = None) -> Figure:
    """Logged training losses against the step: one panel per entry of ``panels`` (titled by its
    key), one line per ``(history, key, label)`` in it, drawn over the log entries that hold the
    key (a key a run did not log draws nothing). ``title`` titles the figure (a single panel:
    the panel itself); ``ylabel`` is one label or one per panel; ``colours`` keeps a line's
    colour by label across panels. Every method's training-history figure is this one.
    """
    ylabels = [ylabel] * len(panels) if isinstance(ylabel, str) else list(ylabel)
    if len(ylabels) != len(panels):
        raise ValueError(f"ylabel has {len(ylabels)} labels for {len(panels)} panels; pass one label or one per panel")
    width = 6 if len(panels) == 1 else 3.6 * len(panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 3.2), squeeze=False)
    for ax, (name, lines), yl in zip(axes[0], panels.items(), ylabels, strict=True):
        for history, key, label in lines:
            rows = [h for h in history if key in h]
            if rows:
                ax.plot([h["step"] for h in rows], [h[key] for h in rows], label=label, marker=marker, ms=3,
                        color=(colours or {}).get(label))
        ax.set(xlabel=xlabel, ylabel=f"{yl} (log scale)" if log else yl)
        if log and ax.lines:
            ax.set_yscale("log")
        if len(panels) > 1:
            ax.set_title(name, fontsize=9)
        if len(ax.lines) > 1:
            ax.legend(fontsize=8)
    if len(panels) == 1:
        axes[0, 0].set_title(title)
    else:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def au_region_effects(params: FaceParams, size: int = 64, backend: str = "procedural") -> pd.DataFrame:
    """Mean absolute pixel change in each facial region when each AU goes from 0 to 1.

    A quantitative check of the renderer against FACS: each row should light up in the
    region that AU moves, and nowhere else.
    """
    import pandas as pd

    from facekit.synth.params import AU_NAMES
    from facekit.synth.procedural import region_masks
    from facekit.synth.render import render

    base = render(params, size, backend=backend)
    masks = {k: v.float() for k, v in region_masks(params, size).items()}
    rows = {}
    for au in AU_NAMES:
        d = (render(params.with_au(au, 1.0), size, backend=backend) - base).abs().sum(1)
        rows[au] = {r: float((d * m).sum() / m.sum()) for r, m in masks.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


# The facial region FACS says each AU moves (the boxes of ``procedural.region_boxes``).
AU_PRIMARY_REGION: dict[str, str] = {
    "AU1": "brows", "AU2": "brows", "AU4": "brows", "AU5": "eyes", "AU6": "eyes", "AU7": "eyes",
    "AU9": "nose", "AU10": "mouth", "AU12": "mouth", "AU14": "mouth", "AU15": "mouth", "AU17": "chin",
    "AU20": "mouth", "AU23": "mouth", "AU25": "mouth", "AU26": "mouth", "AU43": "eyes",
}


def au_selectivity(effects: pd.DataFrame) -> pd.Series:
    """Per AU, the share of its change (summed over regions) that lands in its FACS region."""
    import pandas as pd

    return pd.Series({au: float(effects.loc[au, AU_PRIMARY_REGION[au]] / effects.loc[au].sum()) for au in effects.index})


def heatmap(df: pd.DataFrame, title: str, xlabel: str, ylabel: str, cbar: str) -> Figure:
    fig, ax = plt.subplots(figsize=(0.9 * df.shape[1] + 2, 0.32 * df.shape[0] + 1.4))
    im = ax.imshow(df.values, cmap="magma", aspect="auto")
    ax.set_xticks(range(df.shape[1]), df.columns, rotation=30, ha="right")
    ax.set_yticks(range(df.shape[0]), df.index)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=cbar)
    fig.tight_layout()
    return fig


def au_gallery(params: FaceParams, size: int = 96, backend: str = "procedural", per_row: int = 9) -> Figure:
    """Each AU at full intensity on one face, above its difference from the neutral face."""
    from facekit.synth.params import AU_FACS, AU_NAMES
    from facekit.synth.render import render

    p = params[0]
    base = render(p, size, backend=backend)[0]
    chunks = [AU_NAMES[i:i + per_row] for i in range(0, len(AU_NAMES), per_row)]
    fig, axes = plt.subplots(2 * len(chunks), per_row, figsize=(1.45 * per_row, 3.3 * len(chunks)), squeeze=False)
    for c, names in enumerate(chunks):
        for j in range(per_row):
            top, bottom = axes[2 * c, j], axes[2 * c + 1, j]
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
            if j >= len(names):
                top.axis("off")
                bottom.axis("off")
                continue
            img = render(p.with_au(names[j], 1.0), size, backend=backend)[0]
            top.imshow(to_numpy_image(img))
            top.set_title(f"{names[j]}\n{AU_FACS[names[j]]}", fontsize=7)
            bottom.imshow(difference_map(img, base).numpy(), cmap="magma", vmin=0, vmax=1.5)
            if j == 0:
                top.set_ylabel("AU = 1", fontsize=8)
                bottom.set_ylabel("|change|", fontsize=8)
    fig.suptitle("Every Action Unit at full intensity (top) and where the pixels changed (bottom)")
    fig.tight_layout()
    return fig


def style_calibration(groups: dict[str, dict[str, torch.Tensor]], bins: int = 25) -> Figure:
    """Histograms of the style statistics (``facekit.synth.style_stats``), one panel per statistic
    side by side, one outline per group of images (real sets and synthetic styles)."""
    from facekit.synth.style_stats import STAT_UNITS, STATS

    fig, axes = plt.subplots(1, len(STATS), figsize=(3.1 * len(STATS), 2.9), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, stat in zip(axes[0], STATS, strict=True):
        values = [g[stat].float().numpy() for g in groups.values()]
        lo, hi = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
        edges = np.linspace(lo, hi if hi > lo else lo + 1e-3, bins + 1)
        for k, (name, v) in enumerate(zip(groups, values, strict=True)):
            synthetic = name.startswith(("clean", "target"))
            ax.hist(v, bins=edges, density=True, histtype="stepfilled" if synthetic else "step",
                    alpha=0.35 if synthetic else 1.0, linewidth=1.5, color=colours[k % len(colours)], label=name)
        ax.set_title(stat, fontsize=9)
        ax.set_xlabel(STAT_UNITS[stat], fontsize=8)
        ax.set_ylabel("density", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0, -1].legend(fontsize=7, loc="upper right")
    fig.suptitle("Style calibration: synthetic styles (filled) against real photos (outlines), aligned 64 px crops")
    fig.tight_layout()
    return fig


def emotion_prototype_grid(n_identities: int = 4, backends: tuple[str, ...] = ("procedural", "ict"), size: int = 96,
                           seed: int = 0, intensity: float = 1.0) -> Figure:
    """The EMFACS emotion prototypes (columns) on ``n_identities`` people (rows), in each backend.

    Faces are neutral apart from the prototype's AUs (frontal, evenly lit, clean style) and
    face-framed, so the expression fills the picture. A backend whose assets are missing is
    skipped and the title says so, so the figure still draws on a machine without them.
    """
    from facekit.synth.assets import AssetsNotFoundError, find_ict_dir
    from facekit.synth.params import EMOTIONS, FaceParams, emotion_aus, sample_identities
    from facekit.synth.render import render

    if not isinstance(n_identities, int) or n_identities < 1:
        raise ValueError(f"n_identities={n_identities!r} is not valid; pass an int >= 1")
    if not backends or any(b not in ("procedural", "ict") for b in backends):
        raise ValueError(f"backends={backends!r} is not valid; pass a non-empty tuple of 'procedural' and/or 'ict'")
    if not 0 <= intensity <= 1:
        raise ValueError(f"intensity={intensity!r} is not valid; pass a value in [0, 1]")
    shown, skipped = [], []
    for b in backends:
        if b == "ict":
            try:
                find_ict_dir()
            except AssetsNotFoundError:
                skipped.append(b)
                continue
        shown.append(b)
    if not shown:
        raise ValueError(f"no backend in {backends} can draw here (ICT-FaceKit assets not found; "
                         "run `facekit assets fetch ict` or include 'procedural')")
    people = FaceParams.neutral(sample_identities(n_identities, seed))
    rows, labels = [], []
    for b in shown:
        faces = [render(people.replace(au=emotion_aus(e, intensity).expand(n_identities, -1)), size, backend=b,
                        framing="face") for e in EMOTIONS]
        rows += [[f[i] for f in faces] for i in range(n_identities)]
        labels += [f"{b}\nperson {i + 1}" for i in range(n_identities)]
    fig, axes = plt.subplots(len(rows), len(EMOTIONS), figsize=(1.25 * len(EMOTIONS) + 0.6, 1.3 * len(rows) + 0.8),
                             squeeze=False)
    for r, row in enumerate(rows):
        for c, img in enumerate(row):
            ax = axes[r, c]
            ax.imshow(to_numpy_image(img))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(EMOTIONS[c], fontsize=9)
            if c == 0:
                ax.set_ylabel(labels[r], fontsize=8)
    title = f"The {len(EMOTIONS)} EMFACS emotion prototypes at intensity {intensity:g} (columns) on {n_identities} people"
    if skipped:
        title += f"\n({', '.join(skipped)} skipped: ICT-FaceKit assets not found; `facekit assets fetch ict`)"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
