"""What a perfect edit scores: each held-out face re-rendered with one attribute at its far end
(the renderer's own edit), read by PluGeN4Faces' scoring oracle.

    python benchmarks/plugen_ceiling.py [--profile cpu] [--seed 0] [--split test]

A learned edit cannot score more than the renderer's: where this ceiling sits near the issue-18
floor (success 0.60, identity cosine 0.90), the oracle, not the editor, limits the figure. Prints,
per attribute, the perfect edit's success and identity cosine, computed as ``edit_curves`` does,
and the oracle's slope (read level against true level on the unedited faces; 1 is a faithful
reader; yaw is fixed at its middle level on the test faces, so it has none).
"""

from __future__ import annotations

import argparse

import numpy as np

from facekit.methods.oracle import read
from facekit.methods.plugen import ATTRIBUTE_NAMES, profile_config
from facekit.methods.plugen import evaluate as pe
from facekit.methods.plugen.config import world_of
from facekit.methods.plugen.data import apply_levels, test_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--split", default="test", choices=["test", "val"])
    args = ap.parse_args()
    oracle = pe.train_oracle(args.profile, progress=False).model.eval()
    d = profile_config(args.profile).data
    world = world_of(d)
    params, levels = test_params(d, args.seed, args.split)
    ref = read(oracle, world.render(params))
    targets = pe.edit_targets(levels)
    print(f"profile {args.profile}, seed {args.seed}, {len(levels)} {args.split} faces\n")
    print("| attribute | perfect-edit success | identity cosine | oracle slope |\n|---|---|---|---|")
    for k, name in enumerate(ATTRIBUTE_NAMES):
        edited = levels.clone()
        edited[:, k] = targets[:, k]
        out = read(oracle, world.render(apply_levels(params, edited).replace(pitch=0.0, roll=0.0)))
        requested = targets[:, k] - levels[:, k]
        success = float(((out["levels"][:, k] - ref["levels"][:, k]) * requested.sign()).mean() / requested.abs().mean())
        id_cos = float((out["emb"] * ref["emb"]).sum(1).mean())
        slope = "-" if name == "yaw" else f"{np.polyfit(levels[:, k].numpy(), ref['levels'][:, k].numpy(), 1)[0]:.3f}"
        print(f"| {name} | {success:.3f} | {id_cos:.3f} | {slope} |")


if __name__ == "__main__":
    main()
