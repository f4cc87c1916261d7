"""Per-identity colours and ageing amounts, shared by both backends so that a person keeps
their skin, lip, hair, brow and iris colours whichever renderer draws them."""

from __future__ import annotations

import dataclasses

import torch

from facekit.synth.params import IDENTITY_TRAITS, FaceParams

_TRAIT = {name: k for k, (name, _) in enumerate(IDENTITY_TRAITS)}


def trait(p: FaceParams, name: str) -> torch.Tensor:
    """An identity trait squashed to (-1, 1): near-linear within one standard deviation."""
    return torch.tanh(0.6 * p.identity[:, _TRAIT[name]].float())


@dataclasses.dataclass
class Appearance:
    """(N,) amounts and (N, 3) RGB colours."""

    wrinkle: torch.Tensor  # 0 at 28 years, 1 at 73: wrinkles and skin ageing
    grey: torch.Tensor  # hair greying, 0..1
    recede: torch.Tensor  # hairline recession with age, for persons prone to it
    hair_len: torch.Tensor  # 0 short .. 1 long
    fringe: torch.Tensor  # fringe coverage, 0..1
    skin: torch.Tensor
    lip: torch.Tensor
    hair: torch.Tensor
    brow: torch.Tensor
    iris: torch.Tensor


def appearance(p: FaceParams) -> Appearance:
    dev = p.identity.device

    def rgb(*c: float) -> torch.Tensor:
        return torch.tensor(c, device=dev)

    def mix(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return a + (b - a) * t[:, None]

    age = p.age.float()
    wrinkle = ((age - 28) / 45).clamp(0, 1)
    grey = ((age - 38) / 32 + 0.25 * trait(p, "hair_red")).clamp(0, 1)
    light = ((trait(p, "skin_tone") + 1) / 2).clamp(0, 1)
    skin = (mix(rgb(0.36, 0.24, 0.17), rgb(0.93, 0.76, 0.64), light)
            + rgb(0.04, -0.01, -0.03) * trait(p, "skin_warmth")[:, None]
            + rgb(0.01, 0.0, -0.035) * wrinkle[:, None]).clamp(0, 1)
    hc = ((trait(p, "hair_colour") + 1) / 2).clamp(0, 1) ** 1.5
    hair = mix(rgb(0.07, 0.05, 0.04), rgb(0.80, 0.66, 0.42), hc) + rgb(0.20, -0.03, -0.08) * trait(p, "hair_red").clamp_min(0)[:, None]
    recede = wrinkle * (trait(p, "hairline") < -0.2).float() * 0.25
    return Appearance(
        wrinkle=wrinkle,
        grey=grey,
        recede=recede,
        hair_len=(trait(p, "hair_length") + 0.1).clamp(0, 1),
        fringe=(trait(p, "fringe") - 0.2).clamp(0, 1) * (1 - recede * 4).clamp(0, 1),
        skin=skin,
        lip=skin * rgb(0.70, 0.40, 0.42) + rgb(0.10, 0.0, 0.01),
        hair=mix(hair, torch.full_like(hair, 0.78), grey).clamp(0, 1),
        brow=mix(hair * 0.8, torch.full_like(hair, 0.70), (grey - 0.3).clamp(0, 1)).clamp(0, 1),
        iris=mix(rgb(0.30, 0.17, 0.08), rgb(0.30, 0.48, 0.62), ((trait(p, "eye_colour") + 0.3) / 1.3).clamp(0, 1)),
    )
