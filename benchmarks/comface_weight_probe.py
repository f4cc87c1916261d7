"""How much of a weight change the pixels of ComFace's transfer pairs carry, model-free: why
ComFace's weight figure fell when its data moved to the training world (MODEL_CARD.md).

    python benchmarks/comface_weight_probe.py [--world default-target] [--framing face,head]
        [--size 64] [--nuisance 0.3] [--jitter all|pose|light]

Renders held-out weight pairs as ``transfer_sets`` does (300 labelled pairs of one half of the
test persons, 200 evaluation pairs of the other half), fits the PCA baseline's pair features
(raw pixels -> PCA -> b - a) and its ridge head, and prints the evaluation MAE (BMI) and
Spearman rho. No model is trained, so a fall here is one of the data, not of a network.
``--jitter`` keeps only the pose (yaw, pitch, roll) or only the light part of the within-pair
nuisance, to tell which one hides the change.
"""

from __future__ import annotations

import argparse
import time

import torch

from facekit.methods import comface
from facekit.methods.comface.data import pair_rows
from facekit.synth.datasets import PairDataset
from facekit.synth.params import RANGES, FaceParams
from facekit.synth.rng import hash_normal
from facekit.synth.worlds import WORLDS, get_world

JITTERS = ("all", "pose", "light")
# The within-pair nuisance of PairDataset._view, split into its parts: (field, scale, salt).
POSE = (("yaw", 6, 61), ("pitch", 4, 62), ("roll", 3, 63))
LIGHT = (("light_azimuth", 15, 64), ("light_strength", 0.1, 65))


def keep_jitter(ds: PairDataset, part: str) -> None:
    """Make ``ds`` jitter only the ``part`` ("pose" or "light") of its nuisance, with the same draws."""
    fields = POSE if part == "pose" else LIGHT
    view = ds._view

    def only(base: FaceParams, emotion: torch.Tensor, value: torch.Tensor, idx: torch.Tensor, v: int) -> FaceParams:
        changed = view(base, emotion, value, idx, v).replace(**{f: getattr(base, f) for f, _, _ in POSE + LIGHT})
        j = idx * 16 + v
        return changed.replace(**{f: (getattr(base, f) + ds.nuisance * s * hash_normal(ds.seed, j, salt)).clamp(*RANGES[f])
                                  for f, s, salt in fields})

    ds._view = only  # type: ignore[method-assign]


def probe(world: str, framing: str, size: int, nuisance: float, jitter: str) -> dict[str, float]:
    w = get_world(world, size=size, framing=framing, n_identities=comface.DataConfig().n_identities)
    parts = {}
    for part, n, seed in (("labelled", 300, 101), ("eval", 200, 202)):
        ds = w.pairs(n, split="test", seed=seed, factor="weight", nuisance=nuisance)
        half = len(ds.persons) // 2
        ds.persons = ds.persons[:half] if part == "labelled" else ds.persons[half:]
        if jitter != "all":
            keep_jitter(ds, jitter)
        rows = pair_rows(ds, "weight")(torch.arange(n))
        parts[part] = (rows["a"].cpu().clamp(0, 1), rows["b"].cpu().clamp(0, 1), comface.task_deltas(rows, "weight"))
    (a_lab, b_lab, y_lab), (a_ev, b_ev, y_ev) = parts["labelled"], parts["eval"]
    pca = comface.pca_pair_features(torch.cat([a_lab, b_lab]))
    return comface.evaluate_head(pca(a_lab, b_lab), y_lab, pca(a_ev, b_ev), y_ev, "weight")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="default-target", choices=list(WORLDS))
    ap.add_argument("--framing", default="face,head", help="comma-separated framings to probe")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--nuisance", type=float, default=0.3)
    ap.add_argument("--jitter", default="all", choices=JITTERS)
    args = ap.parse_args()
    for framing in args.framing.split(","):
        t0 = time.time()
        r = probe(args.world, framing, args.size, args.nuisance, args.jitter)
        print(f"{args.world} {framing} {args.size} px, nuisance {args.nuisance:g} ({args.jitter}): "
              f"PCA weight MAE {r['mae']:.2f} BMI, Spearman {r['spearman']:.3f} ({time.time() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
