"""Captions for SynFER: a caption writer (attributes -> varied sentences) and a word tokenizer.

SynFER's FEText pairs each face with a caption written from estimated attributes and with
its AU labels. Here the caption writer reads an age band, a weight word, glasses, the head
pose and expression words derived from the AU vector (the nearest EMFACS prototype and an
intensity adverb, plus the name of the strongest AU), and picks one of several templates
with a seeded generator, so the same attributes get varied wording.

Tokenizer (a documented simpler choice than CLIP's BPE, which needs downloaded files): a
closed word vocabulary built from the writer's own words, lower-cased; unknown words map to
``<unk>`` and are reported by :meth:`WordTokenizer.unknown`. Sequences are padded with
``<pad>`` to ``max_len``; an empty prompt is all padding, the unconditional prompt.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from facekit.synth.params import AU_NAMES, EMOTIONS, emotion_matrix

EMOTION_WORDS = {
    "neutral": ("neutral", "calm", "relaxed"),
    "happiness": ("happy", "smiling", "joyful"),
    "sadness": ("sad", "unhappy", "downcast"),
    "surprise": ("surprised", "astonished", "amazed"),
    "fear": ("fearful", "scared", "afraid"),
    "anger": ("angry", "furious", "annoyed"),
    "disgust": ("disgusted", "repulsed", "revolted"),
    "contempt": ("contemptuous", "scornful", "smug"),
}
AU_PHRASES = {
    "AU1": "raised inner brows", "AU2": "raised outer brows", "AU4": "lowered brows", "AU5": "wide eyes",
    "AU6": "raised cheeks", "AU7": "tight lids", "AU9": "wrinkled nose", "AU10": "raised upper lip",
    "AU12": "pulled lip corners", "AU14": "dimples", "AU15": "drooping lip corners", "AU17": "raised chin",
    "AU20": "stretched lips", "AU23": "tight lips", "AU25": "parted lips", "AU26": "dropped jaw",
    "AU43": "closed eyes",
}
TEMPLATES = (
    "a photo of a {expr} {age} person {extra}",
    "a {age} {build} face looking {expr} {pose}",
    "portrait of a {build} {age} adult, {expr}, {pose} {extra}",
    "close up of a {expr} face {extra} {pose}",
    "a {expr} {age} person with {au}",
    "face of a {age} {build} person, {expr} with {au}",
)
INTENSITY = ("slightly", "", "very")
ACTIVE = 0.1  # an AU counts as shown above this intensity


def expression_words(au: Tensor) -> tuple[int, float]:
    """The nearest EMFACS prototype (cosine) of an AU vector and its intensity (projection
    onto the prototype); a vector with no AU above ``ACTIVE`` is neutral at 0."""
    au = torch.as_tensor(au, dtype=torch.float32).reshape(-1)
    if float(au.max()) <= ACTIVE:
        return 0, 0.0
    protos = emotion_matrix()[1:]
    cos = (protos @ au) / (protos.norm(dim=1) * au.norm() + 1e-8)
    k = int(cos.argmax())
    intensity = float((protos[k] @ au) / protos[k].pow(2).sum())
    return k + 1, min(max(intensity, 0.0), 1.0)


class CaptionWriter:
    """Attributes -> a varied caption. ``rng`` (a numpy Generator) picks template and synonyms."""

    def caption(self, au: Tensor, age: float, weight: float, glasses: float, yaw: float,
                rng: np.random.Generator) -> str:
        emotion, intensity = expression_words(au)
        word = rng.choice(EMOTION_WORDS[EMOTIONS[emotion]])
        adverb = "" if emotion == 0 else INTENSITY[min(int(intensity * 3), 2)]
        au_t = torch.as_tensor(au).reshape(-1)
        top = int(au_t.argmax())
        fields = {
            "expr": f"{adverb} {word}".strip(),
            "age": "young" if age < 35 else "middle aged" if age < 55 else "older",
            "build": "slim" if weight < 20 else "heavy" if weight > 28 else "average",
            "extra": "wearing glasses" if glasses > 0.5 else "",
            "pose": "turned right" if yaw > 12 else "turned left" if yaw < -12 else "facing the camera",
            "au": AU_PHRASES[AU_NAMES[top]] if float(au_t[top]) > ACTIVE else "a still face",
        }
        return " ".join(str(rng.choice(TEMPLATES)).format(**fields).replace(",", " , ").split())

    def emotion_prompt(self, emotion: str, intensity: float = 1.0, rng: np.random.Generator | None = None) -> str:
        """A plain prompt for one emotion (what a user would type to ask for that class)."""
        if emotion not in EMOTION_WORDS:
            raise ValueError(f"emotion={emotion!r} is not valid; choose one of {list(EMOTIONS)}")
        rng = rng or np.random.default_rng(0)
        word = rng.choice(EMOTION_WORDS[emotion])
        adverb = "" if emotion == "neutral" else INTENSITY[min(int(intensity * 3), 2)]
        return f"a photo of a {adverb} {word} person".replace("  ", " ")


def _vocabulary() -> list[str]:
    words = {"<pad>", "<unk>", ","}
    texts = [*TEMPLATES, *AU_PHRASES.values(), *INTENSITY, "young middle aged older slim heavy average wearing glasses",
             "turned right left facing the camera a still face photo of person"]
    texts += [w for ws in EMOTION_WORDS.values() for w in ws]
    for t in texts:
        words.update(re.findall(r"[a-z]+", t.lower()))
    return ["<pad>", "<unk>", ","] + sorted(words - {"<pad>", "<unk>", ","})


class WordTokenizer:
    """Words -> ids over the caption writer's closed vocabulary; pads/truncates to ``max_len``."""

    def __init__(self, max_len: int = 16) -> None:
        self.vocab = _vocabulary()
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_len = max_len

    def __len__(self) -> int:
        return len(self.vocab)

    @staticmethod
    def words(text: str) -> list[str]:
        return re.findall(r"[a-z]+|,", text.lower())

    def unknown(self, text: str) -> list[str]:
        """Words of ``text`` outside the vocabulary (they become ``<unk>``)."""
        return [w for w in self.words(text) if w not in self.index]

    def __call__(self, texts: str | Sequence[str]) -> Tensor:
        if isinstance(texts, str):
            texts = [texts]
        out = torch.zeros(len(texts), self.max_len, dtype=torch.int64)
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"prompt {i} is a {type(t).__name__}; pass a string ('' for unconditional)")
            ids = [self.index.get(w, 1) for w in self.words(t)][: self.max_len]
            out[i, : len(ids)] = torch.tensor(ids, dtype=torch.int64)
        return out


__all__ = ["AU_PHRASES", "EMOTION_WORDS", "CaptionWriter", "WordTokenizer", "expression_words"]
