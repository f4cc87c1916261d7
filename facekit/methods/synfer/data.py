"""SynFER's data: captions and their tokenizer, the target-style sets, the oracle's faces, generation requests."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from facekit.io import disk_cached, to_uint8
from facekit.methods.synfer.config import N_CLASSES, DataConfig, SynFERConfig
from facekit.synth.datasets import FaceDataset
from facekit.synth.params import AU_NAMES, EMOTIONS, N_AUS, emotion_aus, emotion_matrix
from facekit.synth.worlds import World, WorldFaces, get_world, renderer_fingerprint


def _balanced(ds: FaceDataset, per_class: int, chunk: int = 512) -> dict[str, Tensor]:
    """The first ``per_class`` items of each emotion of ``ds`` (class-sorted), as uint8 images."""
    picked: list[Tensor] = []
    counts = torch.zeros(N_CLASSES, dtype=torch.int64)
    start = 0
    while int(counts.min()) < per_class:
        if start >= ds.n:
            raise ValueError(f"the dataset of {ds.n} faces has fewer than {per_class} of some emotion")
        idx = torch.arange(start, min(start + chunk, ds.n))
        emo = ds.params(idx)[1]["emotion"]
        for i, e in zip(idx.tolist(), emo.tolist(), strict=True):
            if counts[e] < per_class:
                picked.append(torch.tensor([i, e]))
                counts[e] += 1
        start += chunk
    pe = torch.stack(picked)
    order = pe[:, 1].argsort(stable=True)
    b = ds.batch(pe[order, 0])
    return {"image": to_uint8(b["image"].cpu()), "label": b["emotion"].cpu(), "au": b["au"].cpu(),
            "intensity": b["intensity"].cpu()}


def world_of(d: DataConfig, world_seed: int | None = None) -> World:
    """SynFER's training world: ``d.world`` at this config's size and framing (the faces the
    generator makes), over ``d.n_identities`` persons of ``world_seed`` (default ``d.world_seed``)."""
    return get_world(d.world, size=d.size, framing=d.framing, n_identities=d.n_identities,
                     world_seed=d.world_seed if world_seed is None else world_seed)


def real_sets(cfg: SynFERConfig) -> dict[str, dict[str, Tensor]]:
    """``labelled`` (``labelled_pool`` per class, val persons) and ``test`` (``n_test`` per class,
    test persons): emotion prototypes of the world (every intensity bin, neutral at 0),
    class-sorted, with each face's ``intensity``; the same for every seed."""
    d = cfg.data
    w = world_of(d)

    def make(split: str, per: int, seed: int) -> Callable[[], dict[str, Tensor]]:
        return lambda: _balanced(w.faces(per * N_CLASSES * 4, split=split, seed=seed, expressions="emotion"), per)

    key = {"world": w.config(), "renderer": renderer_fingerprint(), "v": 4}
    return {"labelled": disk_cached("synfer-labelled", {**key, "n": d.labelled_pool}, make("val", d.labelled_pool, 11)),
            "test": disk_cached("synfer-test", {**key, "n": d.n_test}, make("test", d.n_test, 12))}


def labelled_subset(cfg: SynFERConfig, seed: int) -> Tensor:
    """Indices of this seed's labelled set: ``n_labelled`` per class from the labelled pool."""
    d = cfg.data
    if not 1 <= d.n_labelled <= d.labelled_pool:
        raise ValueError(f"n_labelled={d.n_labelled} is not valid; pass 1..labelled_pool={d.labelled_pool} per class")
    g = torch.Generator().manual_seed(seed)
    return torch.cat([c * d.labelled_pool + torch.randperm(d.labelled_pool, generator=g)[: d.n_labelled]
                      for c in range(N_CLASSES)])


def pool_key(d: DataConfig) -> dict[str, Any]:
    return {"world": world_of(d).config(), "n_pool": d.n_pool}


def pool_dataset(d: DataConfig) -> WorldFaces:
    """The unlabelled pool's faces: emotion prototypes of the world's training persons, so the
    generator and the oracle see one backend, style and framing (its data card describes it)."""
    return world_of(d).faces(d.n_pool, split="train", seed=10, expressions="emotion")


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


def oracle_world(d: DataConfig) -> World:
    """The oracle's world: SynFER's (:func:`world_of`) over persons of a world seed of its own
    (``d.oracle_world``), so it judges faces of persons no SynFER model saw."""
    return world_of(d, d.oracle_world)


def oracle_data(cfg: SynFERConfig) -> dict[str, Tensor]:
    """The oracle's training faces, rendered once and cached by the world: its mix of emotion
    prototypes (``emotion`` 0-7, every intensity bin) and random-AU faces (``emotion`` -1), with
    AU occurrence at the world's threshold and ``au_known`` (trace AUs are neither label)."""
    pool = oracle_world(cfg.data).pool(cfg.data.n_oracle, split="train", seed=20)
    return {k: pool[k] for k in ("image", "emotion", "au_occurs", "au_known")}


def requests(cfg: SynFERConfig, n: int, seed: int) -> dict[str, Any]:
    """``n`` generation requests, class ``i % 8`` for request i (so any prefix of 8k is balanced, and
    a prefix of a longer list is the shorter list):
    AU vector = the class's EMFACS prototype at an intensity in [0.5, 1] (neutral: none), and a
    caption written from those AUs and random age, weight, glasses and pose."""
    writer = CaptionWriter()
    labels = torch.arange(n) % N_CLASSES
    rngs = [np.random.default_rng([1000 + seed, i]) for i in range(n)]  # request i depends on (seed, i) only
    intensity = torch.tensor([r.uniform(0.5, 1.0) for r in rngs], dtype=torch.float32) * (labels > 0)
    au = torch.stack([emotion_aus(EMOTIONS[int(c)], float(s)) for c, s in zip(labels, intensity, strict=True)]) if n \
        else torch.zeros(0, N_AUS)
    prompts = [writer.caption(au[i], float(r.uniform(18, 70)), float(r.uniform(17, 34)), float(r.random() < 0.15),
                              float(r.normal(0, 12)), r) for i, r in enumerate(rngs)]
    return {"label": labels, "au": au, "prompt": prompts, "intensity": intensity}
