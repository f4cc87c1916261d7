"""ipywidgets explorers. Logic lives here, so notebooks hold one line per widget and tests
can drive the same object by setting ``.value``."""

from __future__ import annotations

from collections.abc import Sequence

import ipywidgets as widgets
import torch

from facekit.synth.params import AU_FACS, AU_NAMES, RANGES, FaceParams, identity_codes
from facekit.synth.render import render
from facekit.viz import Controls, png_bytes

# slider name -> (FaceParams field, min, max, step, default)
FACTOR_SLIDERS: dict[str, tuple[str, float, float, float, float]] = {
    "age": ("age", *RANGES["age"], 1.0, 30.0),
    "weight": ("weight", *RANGES["weight"], 0.5, 22.0),
    "yaw": ("yaw", *RANGES["yaw"], 1.0, 0.0),
    "pitch": ("pitch", *RANGES["pitch"], 1.0, 0.0),
    "roll": ("roll", *RANGES["roll"], 1.0, 0.0),
    "light_azimuth": ("light_azimuth", *RANGES["light_azimuth"], 5.0, 20.0),
    "light_strength": ("light_strength", *RANGES["light_strength"], 0.05, 0.9),
    "glasses": ("glasses", 0.0, 1.0, 1.0, 0.0),
}


class FaceExplorer:
    """A face with a slider per factor that re-renders live.

    ``factors`` picks the sliders: AU names (``"AU12"``) and ``FACTOR_SLIDERS`` keys.
    ``person`` picks who (an integer id: the same person as everywhere in facekit).
    """

    def __init__(
        self,
        factors: Sequence[str] = (*AU_NAMES, "age", "weight", "yaw", "pitch", "roll", "light_azimuth", "glasses"),
        person: int = 0,
        size: int = 128,
        style: str = "clean",
        backend: str = "procedural",
        display_scale: int = 2,
    ) -> None:
        unknown = [f for f in factors if f not in AU_FACS and f not in FACTOR_SLIDERS]
        if unknown:
            raise ValueError(f"unknown factors {unknown}; valid are {list(AU_NAMES) + list(FACTOR_SLIDERS)}")
        self.size, self.style, self.backend, self.display_scale = size, style, backend, display_scale
        self.sliders: dict[str, widgets.FloatSlider] = {}
        for name in factors:
            if name in AU_FACS:
                s = widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description=name,
                                        tooltip=AU_FACS[name], continuous_update=False)
            else:
                _, lo, hi, step, default = FACTOR_SLIDERS[name]
                s = widgets.FloatSlider(value=default, min=lo, max=hi, step=step, description=name,
                                        continuous_update=False)
            s.add_class("facekit-slider")
            s.observe(self._on_change, names="value")
            self.sliders[name] = s
        self.person = widgets.BoundedIntText(value=person, min=0, max=10**6, description="person")
        self.person.observe(self._on_change, names="value")
        self.image = widgets.Image(format="png", width=size * display_scale, height=size * display_scale)
        self.image.add_class("facekit-face")
        self.caption = widgets.HTML()
        controls = widgets.VBox([self.person, *self.sliders.values()])
        self.widget = widgets.HBox([controls, widgets.VBox([self.image, self.caption])])
        self.widget.add_class("facekit-explorer")
        self.renders = 0
        self._update()

    def params(self) -> FaceParams:
        """The FaceParams the sliders describe."""
        p = FaceParams.neutral(identity_codes([self.person.value]))
        changes = {FACTOR_SLIDERS[n][0]: v.value for n, v in self.sliders.items() if n in FACTOR_SLIDERS}
        p = p.replace(**changes) if changes else p
        for name, s in self.sliders.items():
            if name in AU_FACS:
                p = p.with_au(name, s.value)
        return p

    def render(self) -> torch.Tensor:
        """The current face, ``3 x size x size``."""
        return render(self.params(), self.size, style=self.style, backend=self.backend)[0]

    def _on_change(self, _change: object = None) -> None:
        self._update()

    def _update(self) -> None:
        self.image.value = png_bytes(self.render(), self.display_scale)
        self.renders += 1
        active = [f"{n} {AU_FACS[n]} = {s.value:.2f}" for n, s in self.sliders.items() if n in AU_FACS and s.value > 0]
        self.caption.value = "<br>".join(active) if active else "no Action Unit active (neutral)"

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


# slider name -> (min, max, step); the scenario gives the starting value
PILOT_SLIDERS: dict[str, tuple[float, float, float]] = {
    "decisions_per_month": (0.0, 500000.0, 1000.0),
    "baseline_error_rate": (0.0, 1.0, 0.01),
    "cost_per_error": (0.0, 100.0, 0.5),
    "synthetic_fraction": (0.0, 1.0, 0.05),
    "horizon_months": (1.0, 60.0, 1.0),
}


class PilotExplorer(Controls):
    """Pick a scenario and move its drivers: the ROI, payback and recommendation are recomputed
    from the same metric records the report reads (``facekit.pilot``), so a meeting can ask
    "what if we had twice the volume?" and see the answer with its uncertainty."""

    def __init__(self, scenarios: Sequence[str] | None = None, profile: str | None = None) -> None:
        from facekit.pilot import Scenario, example_scenarios
        from facekit.records import load_records

        names = list(scenarios or example_scenarios())
        self.scenarios = {n: Scenario.load(n) for n in names}
        self.records = load_records(profile)
        self.profile = profile
        self.scenario = widgets.Dropdown(options=names, value=names[0], description="scenario")
        self.scenario.observe(self._on_scenario, names="value")
        self.sliders: dict[str, widgets.FloatSlider] = {}
        for name, (lo, hi, step) in PILOT_SLIDERS.items():
            s = widgets.FloatSlider(min=lo, max=hi, step=step, description=name.replace("_", " "),
                                    continuous_update=False, style={"description_width": "11em"},
                                    layout=widgets.Layout(width="28em"))
            s.add_class("facekit-slider")
            s.observe(self._on_change, names="value")
            self.sliders[name] = s
        self.figure = widgets.Image(format="png")
        self.figure.add_class("facekit-face")
        self.summary = widgets.HTML()
        self.widget = widgets.HBox([widgets.VBox([self.scenario, *self.sliders.values()]),
                                    widgets.VBox([self.figure, self.summary])])
        self.widget.add_class("facekit-explorer")
        self.updates = 0
        self._on_scenario()

    def current(self) -> object:
        """The scenario with the sliders' values."""
        import dataclasses

        base = self.scenarios[self.scenario.value]
        changes = {n: (int(s.value) if n == "horizon_months" else s.value) for n, s in self.sliders.items()}
        return dataclasses.replace(base, **changes)

    def _on_scenario(self, _change: object = None) -> None:
        base = self.scenarios[self.scenario.value]
        with self.setting():  # one update for the whole scenario, not one per slider
            for name, s in self.sliders.items():
                s.max = max(s.max, float(getattr(base, name)))
                s.value = float(getattr(base, name))

    def _update(self) -> None:
        import math

        from facekit.pilot import evaluate
        from facekit.report import figure_png, volume_figure

        self.result = evaluate(self.current(), self.profile, records=self.records)
        self.figure.value = figure_png(volume_figure(self.result))
        e, u, cur = self.result.econ, self.result.uncertainty, self.result.scenario.currency
        lines = [f"<b>Recommendation: {self.result.recommendation}</b>", *self.result.reasons]
        if e and u:
            pay = "never" if not math.isfinite(e["payback_months"]) else f"{e['payback_months']:.1f} months"
            lines += [f"ROI {e['roi']:.0%} (95% interval {u['roi_low']:.0%} to {u['roi_high']:.0%})",
                      f"payback {pay}; errors avoided per 1,000 decisions: {e['errors_avoided_per_1000']:.1f}",
                      f"one-off cost {e['one_off_cost']:,.0f} {cur}; operating {e['operating_cost_per_month']:,.0f} "
                      f"{cur} per month"]
        self.summary.value = "<br>".join(lines)
        self.updates += 1

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

