"""SynFER figures and the AU-slider explorer (notebook 04 holds one line per figure)."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import torch
from matplotlib.figure import Figure
from torch import Tensor

from facekit.methods.synfer.data import CaptionWriter
from facekit.methods.synfer.model import SynFERPipeline
from facekit.synth.params import AU_FACS, AU_NAMES, EMOTIONS, au_index, emotion_aus
from facekit.viz import history_figure as plot_history
from facekit.viz import history_lines, png_bytes

EXPLORER_AUS = ("AU1", "AU2", "AU4", "AU6", "AU9", "AU12", "AU15", "AU20", "AU25", "AU26")


def emotion_grid(pipe: SynFERPipeline, intensities: Sequence[float] = (0.4, 0.7, 1.0), seed: int = 0,
                 steps: int = 10, emotions: Sequence[str] = EMOTIONS) -> Tensor:
    """``len(emotions) x len(intensities)`` faces: each asked for with the emotion's prompt and its
    EMFACS AU prototype at that intensity; one starting noise per column, shared down a column."""
    writer = CaptionWriter()
    prompts, aus = [], []
    for e in emotions:
        for s in intensities:
            prompts.append(writer.emotion_prompt(e, s))
            aus.append(emotion_aus(e, 0.0 if e == "neutral" else s))
    n_col = len(intensities)
    out = []
    for r in range(len(emotions)):  # same seed per row start: column j always gets noise (seed, j)
        sl = slice(r * n_col, (r + 1) * n_col)
        out.append(pipe(prompts[sl], torch.stack(aus[sl]), num_inference_steps=steps, seed=seed).images)
    return torch.stack(out)


def loss_curve(history: Sequence[dict[str, float]], title: str) -> Figure:
    """The generator's denoising loss over training."""
    return plot_history({"loss": history_lines(history, {"loss": "denoising loss"})}, title,
                        ylabel="MSE of the UNet's prediction", log=False, marker="o")


class SynFERExplorer:
    """AU sliders and a prompt box that generate a face with the SynFER pipeline.

    Every change re-runs DDIM (``steps`` steps, two UNet passes each); at 32x32 on a CPU that
    is a fraction of a second, so faces are generated live rather than read from a cache.
    """

    def __init__(self, pipe: SynFERPipeline, prompt: str = "a photo of a happy person", aus: Sequence[str] = EXPLORER_AUS,
                 seed: int = 0, steps: int = 10, display_scale: int = 4) -> None:
        unknown = [a for a in aus if a not in AU_FACS]
        if unknown:
            raise ValueError(f"unknown AUs {unknown}; valid AUs are {list(AU_NAMES)}")
        self.pipe, self.steps, self.display_scale = pipe, steps, display_scale
        self.sliders: dict[str, widgets.FloatSlider] = {}
        for name in aus:
            s = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description=name, tooltip=AU_FACS[name],
                                    continuous_update=False)
            s.add_class("facekit-slider")
            s.observe(self._on_change, names="value")
            self.sliders[name] = s
        self.prompt = widgets.Text(value=prompt, description="prompt", continuous_update=False)
        self.prompt.observe(self._on_change, names="value")
        self.seed = widgets.BoundedIntText(value=seed, min=0, max=10**6, description="seed")
        self.seed.observe(self._on_change, names="value")
        size = pipe.model.sample_size * display_scale
        self.image = widgets.Image(format="png", width=size, height=size)
        self.image.add_class("facekit-face")
        self.caption = widgets.HTML()
        controls = widgets.VBox([self.prompt, self.seed, *self.sliders.values()])
        self.widget = widgets.HBox([controls, widgets.VBox([self.image, self.caption])])
        self.widget.add_class("facekit-explorer")
        self.generations = 0
        self._update()

    def au(self) -> Tensor:
        a = torch.zeros(len(AU_NAMES))
        for name, s in self.sliders.items():
            a[au_index(name)] = s.value
        return a

    def generate(self) -> Tensor:
        """The current face, ``3 x H x W``."""
        return self.pipe(self.prompt.value, self.au(), num_inference_steps=self.steps, seed=self.seed.value).images[0]

    def _on_change(self, _change: object = None) -> None:
        self._update()

    def _update(self) -> None:
        self.image.value = png_bytes(self.generate(), self.display_scale)
        self.generations += 1
        unknown = self.pipe.tokenizer.unknown(self.prompt.value)
        note = f"<br><i>not in the vocabulary (read as &lt;unk&gt;): {', '.join(unknown)}</i>" if unknown else ""
        active = [f"{n} {AU_FACS[n]} = {s.value:.2f}" for n, s in self.sliders.items() if s.value > 0]
        self.caption.value = (f"prompt: <b>{self.prompt.value or '(empty: unconditional text)'}</b><br>"
                              + ("<br>".join(active) if active else "no AU requested (neutral AU vector)") + note)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


__all__ = ["EXPLORER_AUS", "SynFERExplorer", "emotion_grid", "loss_curve"]
