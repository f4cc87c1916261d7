"""Data cards: what each dataset configuration is, how it was made and what it is not.

``facekit cards`` writes ``data_cards/<name>.md`` (plus a small figure) for every entry of
:func:`card_datasets`, the configurations the notebooks use: the synthetic world's own
(``SYNTH_CARDS``) and those the method packages declare (``DATA_CARDS``). Cards are
regenerated from code, so they cannot drift from the generator they describe. This module sits
above ``synth`` and the methods, so neither imports it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

import facekit
from facekit.io import atomic_write
from facekit.synth.datasets import (
    FACTOR_RANGES,
    FACTOR_UNITS,
    SPLITS,
    FaceDataset,
    PairDataset,
)
from facekit.synth.params import AU_FACS, EMOTION_PROTOTYPES, IDENTITY_TRAITS, UNITS
from facekit.synth.worlds import WorldFaces, get_world

Dataset = FaceDataset | PairDataset | WorldFaces  # what a card describes
CardSpec = tuple[Callable[[], Dataset], str]  # (factory, one-line purpose)

# What a framing means for the reader of a card (facekit.synth.framing).
FRAMING_NOTE = {"face": " (the inner face; posed faces aligned by eyes and mouth, as photos are)",
                "head": " (head and shoulders, as rendered)"}

def _world(name: str, n: int, split: str, n_persons: int | None = None) -> Callable[[], Dataset]:
    def make() -> Dataset:
        return get_world(name).faces(n, split=split, n_persons=n_persons)

    return make


# name -> (factory, one-line purpose). Counts are those of the ``cpu`` profile. The method
# packages add theirs (their ``DATA_CARDS``), built from their own configs so they cannot drift.
SYNTH_CARDS: dict[str, CardSpec] = {
    "faces_clean": (lambda: FaceDataset(20000, split="train", expressions="random"),
                    "single faces with sparse random Action Units, training style (notebook 01)"),
    "faces_target": (lambda: FaceDataset(5000, split="test", expressions="random", style="target"),
                     "single faces in the target style, test persons: the stand-in for real photos (notebook 01)"),
    "faces_emotion": (lambda: FaceDataset(20000, split="train", expressions="emotion"),
                      "single faces showing an EMFACS emotion prototype at a random intensity (notebook 01)"),
    "pairs_expression": (lambda: PairDataset(20000, split="train", factor="expression"),
                         "same-person pairs whose emotion intensity changes by a known amount"),
    "pairs_weight": (lambda: PairDataset(20000, split="train", factor="weight"),
                     "same-person pairs whose weight (BMI) changes by a known amount"),
    "pairs_age": (lambda: PairDataset(20000, split="train", factor="age"),
                  "same-person pairs whose age changes by a known number of years"),
    "world_default": (_world("default", 3000, "train", 300), "the default training world (facekit.synth.worlds): face "
                      "framing, random AUs and EMFACS prototypes mixed, AU labels from FACS level B; the learnability "
                      "audit's training pool at the cpu profile"),
    "world_default_target": (_world("default-target", 800, "test"), "the default world in the target style, "
                             "test persons: the audit's target-style test pool at the cpu profile"),
}

def card_datasets() -> dict[str, CardSpec]:
    """Every data card: the synthetic world's and each method package's ``DATA_CARDS``."""
    from facekit.methods import METHODS, method_module

    out = dict(SYNTH_CARDS)
    for name in METHODS:
        out.update(getattr(method_module(name), "DATA_CARDS", {}))
    return out


LIMITATIONS = """\
- **The gap to real photos.** Faces are drawn by a procedural 2.5D renderer: an ellipsoid
  head with closed-form features, Lambert + Blinn-Phong shading. Real skin texture, hair
  strands, occlusions (hands, hats), cast shadows, make-up and the full variety of real
  face shapes are absent. A model that works here may not work on photos; the target
  style (blur, noise, JPEG blocks, colour casts, harsh light, grey) rehearses only part of
  that gap. Measure on real photos before relying on any number.
- **Action Units are approximations.** Each AU moves the region FACS describes (see the
  table), bilaterally; intensity is linear in [0, 1], mapped onto the FACS A-E levels by
  `facekit.synth.worlds` (A below 0.15, B from 0.15, C 0.35, D 0.65, E 0.9). Unilateral
  actions (e.g. contempt's one-sided AU14) are not modelled.
- **Demographics are not modelled as such.** Skin tone, hair and face shape vary
  continuously with the identity code; no ethnicity, gender or other protected label
  exists or should be inferred.
- **Age and weight are visual proxies** (wrinkles, greying, sagging; face width, cheeks,
  jaw), not biological measurements.
"""

PRIVACY = """\
No real person is depicted. Every face is computed from a random identity code; no photo,
scan or biometric template of a real person was used to build the generator. Similarity of
a rendered face to any real person is coincidental.
"""


def describe(ds: Dataset, sample: int = 2048) -> tuple[dict[str, np.ndarray], str]:
    """Label columns drawn from the generator (parameters only, no rendering) and a count table."""
    idx = torch.arange(min(sample, len(ds)))
    if isinstance(ds, FaceDataset):
        p, extra = ds.params(idx)
        cols = {k: v.numpy() for k, v in p.labels().items() if not k.startswith("id_")}
        cols.update({k: v.numpy() for k, v in extra.items() if k != "person"})
    else:
        va, vb = ds.values(idx)
        cols = {"value_a": va.numpy(), "delta": (vb - va).numpy()}
    lines = ["| split | persons |", "|---|---|"]
    for split in SPLITS:
        lines.append(f"| {split} | {len(ds.identities.ids(split))} |")
    return cols, "\n".join(lines)


def _build(name: str) -> tuple[Dataset, dict[str, np.ndarray], str]:
    cards = card_datasets()
    if name not in cards:
        raise KeyError(f"unknown data card {name!r}; valid cards are {list(cards)}")
    ds = cards[name][0]()
    cols, split_table = describe(ds)
    return ds, cols, split_table


def card_markdown(name: str) -> str:
    """A card's text: the committed ``data_cards/<name>.md`` in a source checkout, else
    generated in memory (so notebooks show it wherever they run)."""
    path = Path(facekit.__file__).resolve().parents[1] / "data_cards" / f"{name}.md"
    if path.exists():
        return path.read_text(encoding="utf-8")
    ds, cols, split_table = _build(name)
    au_cols = [k for k in cols if k in AU_FACS]
    return card_text(name, card_datasets()[name][1], ds, ds.config(), cols, au_cols, split_table, f"{name}.png")


def write_card(name: str, out_dir: str | Path = "data_cards", overwrite: bool = False) -> tuple[Path, str]:
    """Write one card; returns (path, status) with status 'written', 'unchanged' or 'exists'."""
    out = Path(out_dir)
    md_path, fig_path = out / f"{name}.md", out / f"{name}.png"
    ds, cols, split_table = _build(name)
    cfg = ds.config()

    fig_cols = {k: v for k, v in cols.items() if k in ("age", "weight", "yaw", "light_azimuth", "intensity", "value_a", "delta")}
    au_cols = [k for k in cols if k in AU_FACS]
    text = card_text(name, card_datasets()[name][1], ds, cfg, cols, au_cols, split_table, fig_path.name)
    if md_path.exists():
        if md_path.read_text(encoding="utf-8") == text and fig_path.exists():
            return md_path, "unchanged"
        if not overwrite:
            return md_path, "exists"

    fig = Figure(figsize=(2.6 * (len(fig_cols) + 2), 2.4))
    axes = fig.subplots(1, len(fig_cols) + (1 if au_cols else 0) + 1, squeeze=False)
    axes = axes[0]
    for ax, (col, values) in zip(axes, fig_cols.items(), strict=False):
        ax.hist(values, bins=25, color="#4c72b0")
        ax.set_title(col, fontsize=8)
        ax.set_xlabel(UNITS.get(col, FACTOR_UNITS.get(cfg.get("factor", ""), "")) or col, fontsize=7)
        ax.set_ylabel("count", fontsize=7)
        ax.tick_params(labelsize=6)
    k = len(fig_cols)
    if au_cols:
        threshold = cfg.get("occurrence_threshold", 0.0)
        rates = [float((cols[a] >= threshold if threshold else cols[a] > 0).mean()) for a in au_cols]
        axes[k].bar(range(len(au_cols)), rates, color="#dd8452")
        axes[k].set_xticks(range(len(au_cols)), [a[2:] for a in au_cols], fontsize=5)
        axes[k].set_title("AU occurrence rate", fontsize=8)
        axes[k].set_xlabel("AU", fontsize=7)
        axes[k].set_ylabel("share of faces", fontsize=7)
        k += 1
    img = ds.batch([0])["image" if isinstance(ds, FaceDataset) else "a"][0].cpu().permute(1, 2, 0).numpy()
    axes[k].imshow(img)
    axes[k].set_title("item 0", fontsize=8)
    axes[k].axis("off")
    fig.suptitle(f"{name}: parameter distributions ({min(len(ds), 2048)} items)", fontsize=9)
    fig.tight_layout()
    atomic_write(fig_path, lambda p: fig.savefig(p, format="png", dpi=70))
    atomic_write(md_path, text)
    return md_path, "written"


def card_text(name: str, purpose: str, ds: Dataset, cfg: dict, cols: dict[str, np.ndarray],
               au_cols: list[str], split_table: str, fig_name: str) -> str:
    threshold = cfg.get("occurrence_threshold")
    occurs = (lambda v: v >= threshold) if threshold is not None else (lambda v: v > 0)
    au_table = "\n".join(f"| {a} | {AU_FACS[a]} | {float(occurs(cols[a]).mean()):.2f} |" for a in au_cols) if au_cols else ""
    occurrence = (f"an AU occurs at intensity >= {threshold:g} (FACS level B; weaker traces are unlabelled)"
                  if threshold is not None else "no occurrence threshold set (this dataset predates the training "
                  "worlds; an AU counts as present above 0)")
    traits = ", ".join(t for t, _ in IDENTITY_TRAITS)
    stats = "\n".join(
        f"| {k} | {np.mean(v):.2f} | {np.std(v):.2f} | {np.min(v):.2f} | {np.max(v):.2f} |"
        for k, v in cols.items() if k not in AU_FACS and np.issubdtype(np.asarray(v).dtype, np.floating)
    )
    factor = cfg.get("factor")
    factor_text = (f"\nEach pair shows one person twice; only **{factor}** changes "
                   f"(values drawn uniformly from {FACTOR_RANGES[factor]} {FACTOR_UNITS[factor]}; "
                   f"`delta = value_b - value_a`). Pose and light jitter a little within a pair "
                   f"(nuisance = {cfg['nuisance']}).\n") if factor else ""
    emotions = ", ".join(f"{e} ({'+'.join(k[2:] for k in aus) or 'no AU'})" for e, aus in EMOTION_PROTOTYPES.items())
    return f"""# Data card: `{name}`

{purpose}.

## Generator
- facekit {facekit.__version__}, {f"world `{cfg['world']}`, " if "world" in cfg else ""}backend `{cfg['backend']}`, \
framing `{cfg['framing']}`{FRAMING_NOTE.get(cfg['framing'], '')}, style `{cfg['style']}`, {cfg['size']}x{cfg['size']} RGB.
- Occurrence threshold: {occurrence}.
- Configuration (the dataset is a pure function of it: item i is the same image every time):

```json
{json.dumps(cfg, indent=2, sort_keys=True)}
```

## Counts and splits
{cfg['n']} items at the `cpu` profile, drawn from the `{cfg['split']}` split ({cfg['persons']} persons,
round-robin, so every person has the same number of items). Persons are split once by
`IdentitySplit` (world seed {cfg['identities']['world_seed']}); the splits are disjoint:

{split_table}

## Labels
- `person`: integer person id; the identity code (traits: {traits}) is a pure function of it.
- Action Units: intensity in [0, 1] per AU (FACS names below).
- `age` (years), `weight` (BMI), `yaw`/`pitch`/`roll` (degrees), `glasses` (0/1).
- Emotions (EMFACS prototypes): {emotions}.
{factor_text}
## Parameter distributions
![distributions]({fig_name})

| label | mean | std | min | max |
|---|---|---|---|---|
{stats}

{"| AU | FACS name | occurrence rate |" + chr(10) + "|---|---|---|" + chr(10) + au_table if au_table else ""}

## Intended use
Teaching and research on facial representation learning with exact ground truth:
disentangling identity from expression, age and weight; rehearsing domain shift with the
target style; unit tests. Not for building or evaluating systems that make decisions about
real people without validation on real, consented data.

## Known limitations
{LIMITATIONS}
## Privacy
{PRIVACY}"""


def write_all(out_dir: str | Path = "data_cards", overwrite: bool = False, only: list[str] | None = None) -> list[tuple[Path, str]]:
    names = only or list(card_datasets())
    return [write_card(n, out_dir, overwrite) for n in names]

