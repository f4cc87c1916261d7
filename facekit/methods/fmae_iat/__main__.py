"""``python -m facekit.methods.fmae_iat pretrain --profile gpu --seed 0``; the same line after
``accelerate launch [--multi_gpu --num_processes N] -m`` pretrains on N devices."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from facekit.methods.fmae_iat.train import pretrain


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="FMAE pretraining on the synthetic face stream")
    ap.add_argument("what", choices=["pretrain"])
    ap.add_argument("--profile", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    result = pretrain(args.profile, args.seed)
    print(f"{'loaded' if result.loaded else 'trained'}: {result.run_dir}")


if __name__ == "__main__":
    main()
