"""One training loop for every method, on ``accelerate``.

Every method (ComFace, MAE, diffusion, flows, ...) trains through :func:`fit`, so seeding,
checkpoints, resume, progress bars and multi-GPU behave the same everywhere. The same code
runs on a CPU, on one GPU, and under ``accelerate launch --num_processes N``.

Reproducibility contract: before each step the global RNGs are reseeded from
``(config.seed, step)``, so a step's randomness is a pure function of its index. A run that
was killed resumes from its last checkpoint and reaches the same weights as an uninterrupted
run, with no RNG state to save. Data is one of

* a **step function** ``data(step) -> batch`` returning the *global* batch (exact resume; under
  N processes each process trains on its own 1/N slice, so the result does not depend on N);
* a map-style ``Dataset`` (batched with ``config.batch_size``, shuffled per epoch);
* a ``DataLoader`` (sharded by accelerate, reshuffled per epoch from ``config.seed``).

Notebooks call :func:`train_or_load`: it loads the cached model when one exists, else trains
(resuming an interrupted run) and caches the result under :func:`cached_path`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import send_to_device
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from facekit.config import (
    cache_dir,
    config_dict,
    config_hash,
    get_device,
    get_profile,
    seed_everything,
)
from facekit.io import atomic_write

__all__ = [
    "TrainConfig",
    "TrainResult",
    "cached_path",
    "fit",
    "latest_checkpoint",
    "load_pretrained",
    "save_pretrained",
    "train_or_load",
]

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
TRAIN_CONFIG_NAME = "train_config.json"
HISTORY_NAME = "history.json"
_CKPT_DIR = "checkpoints"
_CKPT_RE = re.compile(r"^step-(\d{8})$")
_STATE_NAME = "trainer_state.json"
_NOT_IN_KEY = {"cache_key": False}  # field metadata: does not change the trained weights

Batch = Any
StepFn = Callable[[int], Batch]
Data = StepFn | Dataset | DataLoader
LossFn = Callable[[nn.Module, Batch], Any]


@dataclass
class TrainConfig:
    """Optimisation settings shared by every method; saved as JSON beside the weights.

    Fields marked ``cache_key=False`` (logging and checkpoint cadence) do not change the
    trained weights, so they are left out of the cache key (:func:`facekit.config.config_hash`).
    """

    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0
    schedule: str = "constant"
    grad_clip: float | None = 1.0
    seed: int = 0
    mixed_precision: str = "no"
    log_every: int = field(default=50, metadata=_NOT_IN_KEY)
    ckpt_every: int = field(default=500, metadata=_NOT_IN_KEY)
    keep_checkpoints: int = field(default=2, metadata=_NOT_IN_KEY)

    def __post_init__(self) -> None:
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        for name in ("steps", "batch_size", "log_every", "ckpt_every", "keep_checkpoints"):
            value = getattr(self, name)
            _check(name, value, isinstance(value, int) and value > 0, "a positive int")
        for name in ("warmup_steps", "seed"):
            value = getattr(self, name)
            _check(name, value, isinstance(value, int) and value >= 0, "a non-negative int")
        _check("lr", self.lr, self.lr > 0, "a positive float")
        _check("weight_decay", self.weight_decay, self.weight_decay >= 0, "a non-negative float")
        _check("betas", self.betas, all(0 <= b < 1 for b in self.betas), "two floats in [0, 1)")
        _check(
            "schedule",
            self.schedule,
            self.schedule in ("constant", "cosine"),
            "'constant' or 'cosine'",
        )
        _check(
            "grad_clip",
            self.grad_clip,
            self.grad_clip is None or self.grad_clip > 0,
            "None or a positive float",
        )
        _check(
            "mixed_precision",
            self.mixed_precision,
            self.mixed_precision in ("no", "fp16", "bf16"),
            "'no', 'fp16' or 'bf16'",
        )

    def lr_at(self, step: int) -> float:
        """Learning rate at ``step``: linear warmup, then constant or cosine decay to zero.

        A pure function of the step, so resume needs no scheduler state.
        """
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "cosine":
            progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
            return self.lr * 0.5 * (1.0 + math.cos(math.pi * progress))
        return self.lr

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error, not silently dropped."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown TrainConfig fields {unknown}; valid fields are {sorted(names)}"
            )
        return cls(**data)


@dataclass
class TrainResult:
    """What :func:`fit` and :func:`train_or_load` return.

    ``history`` holds one dict per ``log_every`` steps (``step``, ``loss``, ``lr`` and any scalar
    the loss function returned), averaged over the interval and over processes.
    """

    model: nn.Module
    history: list[dict[str, float]]
    step: int
    run_dir: Path | None
    resumed_from: int | None = None
    loaded: bool = False


def _check(name: str, value: Any, ok: bool, valid: str) -> None:
    if not ok:
        raise ValueError(f"TrainConfig.{name}={value!r} is not valid; pass {valid}")


# ----------------------------------------------------------------------------- cache keys


def cached_path(method: str, profile: str | None, seed: int, config: Any) -> Path:
    """Folder of a cached model: ``<cache>/models/<method>/<profile>/seed<seed>-<config_hash>``.

    Keyed by method, profile, seed and :func:`facekit.config.config_hash` of ``config`` (any
    dataclass, dict or JSON-able value), so changing any of them trains anew instead of silently
    loading a stale model.
    """
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.\-]*", method):
        raise ValueError(
            f"method={method!r} is not valid; use lower-case letters, digits, '_', '-', '.'"
        )
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r} is not valid; pass a non-negative int")
    return (
        cache_dir() / "models" / method / get_profile(profile) / f"seed{seed}-{config_hash(config)}"
    )


def model_path(
    method: str, model_config: Any, config: TrainConfig, *, key: Any = None, profile: str | None = None
) -> Path:
    """The cache folder :func:`train_or_load` trains into and :func:`load_cached` reads: the one
    place the key of a trained model (``model``, ``train`` and ``key`` hashed together) is built."""
    return cached_path(method, profile, config.seed, {"model": model_config, "train": config, "key": key})


def is_cached(path: str | Path) -> bool:
    """Whether ``path`` holds a complete saved model (weights are written last)."""
    return (Path(path) / WEIGHTS_NAME).is_file()


def require_cached(path: Path, what: str, hint: str) -> Path:
    """``path``, or ``FileNotFoundError`` saying what is missing, where, and what trains it."""
    if not is_cached(path):
        raise FileNotFoundError(f"no trained {what} at {path}; {hint}")
    return path


def load_cached(
    method: str,
    factory: Callable[..., nn.Module],
    model_config: Any,
    config: TrainConfig,
    *,
    key: Any = None,
    profile: str | None = None,
    device: str | torch.device | None = None,
    what: str | None = None,
    hint: str = "train it first",
) -> nn.Module:
    """The load-only half of :func:`train_or_load`: the cached model in eval mode, never training.

    Raises ``FileNotFoundError`` naming ``what`` (default: the method), the folder and ``hint``
    (the notebook or command that trains it) when the model is not cached.
    """
    path = model_path(method, model_config, config, key=key, profile=profile)
    label = what or f"{method} model for profile={get_profile(profile)!r}, seed={config.seed}"
    require_cached(path, label, hint)
    return load_pretrained(factory, path, device=device).eval()


# ------------------------------------------------------------------- pretrained save/load


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def save_pretrained(model: nn.Module, config: Mapping[str, Any] | Any, path: str | Path) -> Path:
    """Write ``config.json`` (the factory's keyword arguments) and ``model.safetensors``.

    ``config`` is a dict or a dataclass of JSON-able values. Files are written atomically, weights
    last, so the presence of ``model.safetensors`` means the folder is complete.
    """
    path = Path(path)
    data = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    _write_json(path / CONFIG_NAME, data)
    atomic_write(
        path / WEIGHTS_NAME, lambda tmp: save_model(model, str(tmp), force_contiguous=True)
    )
    return path


class DamagedModelError(RuntimeError):
    """A cached model folder exists but cannot be read (truncated, corrupt, unreadable, or written
    by an incompatible version); ``path`` is the folder, so it can be deleted and retrained."""

    def __init__(self, path: Path, err: BaseException) -> None:
        self.path = path
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        super().__init__(f"the cached model in {path} is damaged ({type(err).__name__}: {detail})")


def load_pretrained(
    factory: Callable[..., nn.Module], path: str | Path, device: str | torch.device | None = None
) -> nn.Module:
    """Build ``factory(**config.json)`` and load ``model.safetensors`` into it (strict).

    Only safetensors is read, never a pickle, so a cached or downloaded model cannot run code.
    """
    path = Path(path)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise FileNotFoundError(
                f"{path / name} not found; save the model with save_pretrained first"
            )
    dev = get_device(device)  # a bad FACEKIT_DEVICE is its own error, not a damaged model
    try:
        model = factory(**json.loads((path / CONFIG_NAME).read_text()))
        load_model(model, str(path / WEIGHTS_NAME), strict=True)
    except (SafetensorError, OSError, RuntimeError, ValueError, TypeError, KeyError) as err:
        raise DamagedModelError(path, err) from err
    return model.to(dev)


# ------------------------------------------------------------------------- checkpoints


def _checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoint folders of ``run_dir``, oldest first (complete or not)."""
    return sorted(p for p in (run_dir / _CKPT_DIR).glob("step-*") if _CKPT_RE.match(p.name))


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint folder in ``run_dir`` (``None`` when there is none).

    A folder is complete once its ``trainer_state.json`` exists: it is written last, atomically.
    """
    complete = [p for p in _checkpoints(Path(run_dir)) if (p / _STATE_NAME).is_file()]
    return complete[-1] if complete else None


def _save_checkpoint(
    run_dir: Path,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    accelerator: Accelerator,
    config: TrainConfig,
    history: list[dict[str, float]],
    pending: dict[str, Any],
) -> None:
    """Model and optimizer tensors in safetensors, the rest in JSON, each file atomic.

    ``pending`` holds the running log sums since the last history entry, so a resumed run
    logs exactly what an uninterrupted one would.
    """
    opt = optimizer.state_dict()
    tensors = {
        f"{pid}.{k}": v.contiguous()
        for pid, st in opt["state"].items()
        for k, v in st.items()
        if torch.is_tensor(v)
    }
    scalars = {
        str(pid): {k: v for k, v in st.items() if not torch.is_tensor(v)}
        for pid, st in opt["state"].items()
    }
    state = {
        "step": step,
        "config": config.to_dict(),
        "history": history,
        "pending": pending,
        "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars},
        "scaler": accelerator.scaler.state_dict() if accelerator.scaler is not None else None,
    }
    folder = run_dir / _CKPT_DIR / f"step-{step:08d}"
    if folder.exists():  # left incomplete by a killed save
        shutil.rmtree(folder)
    atomic_write(
        folder / WEIGHTS_NAME, lambda tmp: save_model(model, str(tmp), force_contiguous=True)
    )
    atomic_write(folder / "optimizer.safetensors", lambda tmp: save_file(tensors, str(tmp)))
    atomic_write(folder / _STATE_NAME, json.dumps(state, indent=1))  # last: marks it complete
    folders = _checkpoints(run_dir)
    complete = [p for p in folders if (p / _STATE_NAME).is_file()]
    for old in [*complete[: -config.keep_checkpoints], *(p for p in folders if p not in complete)]:
        shutil.rmtree(old)


def _load_checkpoint(
    ckpt: Path, model: nn.Module, optimizer: torch.optim.Optimizer, config: TrainConfig
) -> dict[str, Any]:
    state = json.loads((ckpt / _STATE_NAME).read_text())
    saved, now = config_dict(TrainConfig.from_dict(state["config"])), config_dict(config)
    changed = {k: (saved[k], now[k]) for k in now if saved[k] != now[k]}
    if changed:
        diff = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ValueError(
            f"{ckpt} was trained with a different config ({diff}); resuming would mix two runs. "
            "Pass another run_dir, or delete that folder to start over."
        )
    load_model(model, str(ckpt / WEIGHTS_NAME), strict=True)
    tensors = load_file(str(ckpt / "optimizer.safetensors"))
    opt_state: dict[int, dict[str, Any]] = {
        int(pid): dict(s) for pid, s in state["optimizer"]["scalars"].items()
    }
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        opt_state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict(
        {"state": opt_state, "param_groups": state["optimizer"]["param_groups"]}
    )
    return state


# ----------------------------------------------------------------------------- the loop


def _step_seed(seed: int, *parts: int) -> int:
    """A well-mixed seed for (seed, step[, rank]); nearby steps get unrelated streams."""
    return int(np.random.SeedSequence([seed, *parts]).generate_state(1, np.uint64)[0] >> 1)


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return type(shell).__name__ == "ZMQInteractiveShell"


TEXT_PROGRESS_ENV = "FACEKIT_TEXT_PROGRESS"


def _bar(**kwargs: Any) -> Any:
    """A tqdm bar: a widget in a notebook (``tqdm.auto``), or plain text on stderr when
    ``FACEKIT_TEXT_PROGRESS`` is set. ``facekit run`` sets it, so that the terminal running the
    notebooks shows the training bars too (a widget's updates never reach it)."""
    if os.environ.get(TEXT_PROGRESS_ENV):
        from tqdm.std import tqdm as text_bar

        return text_bar(mininterval=2.0, **kwargs)  # few updates: each is a message to the runner
    return tqdm(**kwargs)


def _show_progress(progress: bool | None) -> bool:
    """Bars in a terminal or a notebook; none in logs and CI unless asked."""
    if progress is not None:
        return progress
    return sys.stderr.isatty() or _in_notebook()


def _shard(batch: Batch, rank: int, world: int) -> Batch:
    """This process's contiguous 1/world slice of a global batch.

    Tuples, lists and dicts are structure (recursed); tensors, arrays and other sized,
    sliceable objects (such as ``FaceParams``) are split along their first axis; anything else
    (ints, strings) is passed whole.
    """
    if world == 1:
        return batch
    if isinstance(batch, Mapping):
        return type(batch)({k: _shard(v, rank, world) for k, v in batch.items()})
    if isinstance(batch, tuple | list):
        return type(batch)(_shard(v, rank, world) for v in batch)
    if isinstance(batch, str | bytes) or not (
        hasattr(batch, "__len__") and hasattr(batch, "__getitem__")
    ):
        return batch
    n = len(batch)
    if n % world:
        raise ValueError(
            f"a batch of {n} samples cannot be split evenly over {world} processes; "
            f"use a batch size divisible by {world}"
        )
    per = n // world
    return batch[rank * per : (rank + 1) * per]


def _split_loss(out: Any) -> tuple[Tensor, dict[str, Tensor]]:
    """Accept a scalar tensor, a dict with ``"loss"``, or an output object with ``.loss``
    (transformers); other scalar entries become logged values."""
    if isinstance(out, Tensor):
        loss, extra = out, {}
    elif isinstance(out, Mapping) and "loss" in out:
        loss, extra = out["loss"], {k: v for k, v in out.items() if k != "loss"}
    elif isinstance(getattr(out, "loss", None), Tensor):
        loss, extra = out.loss, {}
    else:
        raise TypeError(
            f"the loss function returned {type(out).__name__}; return a scalar tensor, "
            "a dict with a 'loss' entry, or an object with a .loss tensor"
        )
    if not isinstance(loss, Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
        raise ValueError(f"the loss must be a scalar tensor, got {shape}; reduce it (e.g. .mean())")
    logs = {
        k: torch.as_tensor(v).detach().float()
        for k, v in extra.items()
        if isinstance(v, float | int) or (isinstance(v, Tensor) and v.numel() == 1)
    }
    return loss, logs


def _batches(
    data: Data, config: TrainConfig, accelerator: Accelerator, start: int
) -> Iterator[Batch]:
    """Yield the batches of steps ``start, start+1, ...`` on the accelerator's device."""
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        data = DataLoader(data, batch_size=config.batch_size, shuffle=True, drop_last=True)
    if isinstance(data, DataLoader):
        loader = accelerator.prepare(data)
        per_epoch = len(loader)
        if per_epoch == 0:
            raise ValueError(
                "the DataLoader yields no batches; use a smaller batch size or more data"
            )
        epoch, skip = divmod(start, per_epoch)
        while True:
            loader.set_epoch(epoch)
            yield from accelerator.skip_first_batches(loader, skip) if skip else loader
            epoch, skip = epoch + 1, 0
    if not callable(data):
        raise TypeError(
            f"data of type {type(data).__name__} is not supported; pass a step function "
            "data(step) -> batch, a map-style Dataset, or a DataLoader"
        )
    step = start
    while True:
        seed_everything(_step_seed(config.seed, step))  # same global batch on every process
        batch = _shard(data(step), accelerator.process_index, accelerator.num_processes)
        yield send_to_device(batch, accelerator.device)
        step += 1


def _process_state() -> PartialState:
    """accelerate's process state, created on the device ``facekit.config.get_device`` picks
    (the first creation fixes the device for the whole process)."""
    return PartialState(cpu=get_device().type == "cpu")


def _make_accelerator(config: TrainConfig) -> Accelerator:
    state = AcceleratorState._shared_state
    if (
        state
        and state.get("_mixed_precision") not in (None, config.mixed_precision)
        and _process_state().num_processes == 1
    ):
        # A notebook may train in fp32 then bf16 in one kernel; accelerate would refuse.
        AcceleratorState._reset_state()
    return Accelerator(
        mixed_precision=config.mixed_precision,
        cpu=get_device().type == "cpu",
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
    )


def fit(
    model: nn.Module,
    data: Data,
    config: TrainConfig,
    *,
    loss_fn: LossFn | None = None,
    run_dir: str | Path | None = None,
    progress: bool | None = None,
    desc: str = "train",
) -> TrainResult:
    """Train ``model`` for ``config.steps`` AdamW steps, resuming from ``run_dir`` if it holds
    a checkpoint.

    ``loss_fn(model, batch)`` returns the loss (a scalar, a dict with ``"loss"`` and other scalars
    to log, or an object with ``.loss``). Without it the model computes its own loss:
    ``model(**batch)`` for a dict batch, else ``model(batch)``. Under several processes
    ``model`` is the DDP wrapper: call ``model(...)``, not its submodules, so gradients sync.

    With ``run_dir``, checkpoints go to ``run_dir/checkpoints/step-XXXXXXXX`` every
    ``config.ckpt_every`` steps and at the end. Weight decay skips biases and norm gains
    (parameters with fewer than 2 dims), as is standard for AdamW. A model with an ``lr_scales()``
    method (parameter name -> factor) has those parameters' learning rate scaled by it, for
    layer-wise learning-rate decay; the others keep the schedule's rate. The model comes back
    unwrapped, on the training device, in eval mode. ``progress=None`` shows a bar in a
    terminal or notebook only.
    """
    run_dir = Path(run_dir) if run_dir is not None else None
    accelerator = _make_accelerator(config)
    seed_everything(config.seed)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    if not params:
        raise ValueError(
            "the model has no trainable parameters (requires_grad=True); nothing to fit"
        )
    scales = model.lr_scales() if hasattr(model, "lr_scales") else {}
    by_group: dict[tuple[bool, float], list[nn.Parameter]] = {}
    for name, p in named:
        by_group.setdefault((p.ndim < 2, float(scales.get(name, 1.0))), []).append(p)
    groups = [
        {"params": by_group[k], "weight_decay": 0.0 if k[0] else config.weight_decay, "lr_scale": k[1]}
        for k in sorted(by_group, key=lambda k: (k[0], -k[1]))
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, betas=config.betas)
    start, history, resumed_from = 0, [], None
    sums: dict[str, Tensor] = {}
    count = 0
    ckpt = latest_checkpoint(run_dir) if run_dir is not None else None
    if ckpt is not None:
        state = _load_checkpoint(ckpt, model, optimizer, config)
        start, history, resumed_from = state["step"], state["history"], state["step"]
        sums = {
            k: torch.tensor(v, device=accelerator.device)
            for k, v in state["pending"]["sums"].items()
        }
        count = state["pending"]["count"]
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    if ckpt is not None and state["scaler"] is not None and accelerator.scaler is not None:
        accelerator.scaler.load_state_dict(state["scaler"])
    wrapped.train()
    compute = (
        loss_fn
        if loss_fn is not None
        else (lambda m, b: m(**b) if isinstance(b, Mapping) else m(b))
    )
    batches = _batches(data, config, accelerator, start)
    bar = _bar(
        total=config.steps,
        initial=start,
        desc=desc,
        disable=not (_show_progress(progress) and accelerator.is_main_process),
        dynamic_ncols=True,
    )
    try:
        for step in range(start, config.steps):
            batch = next(batches)
            seed_everything(_step_seed(config.seed, step, accelerator.process_index + 1))
            lr = config.lr_at(step)
            for group in optimizer.param_groups:
                group["lr"] = lr * group.get("lr_scale", 1.0)
            loss, logs = _split_loss(compute(wrapped, batch))
            accelerator.backward(loss)
            if config.grad_clip is not None:
                accelerator.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            for name, value in {"loss": loss.detach().float(), **logs}.items():
                sums[name] = sums.get(name, 0.0) + value
            count += 1
            done = step + 1
            bar.update(1)
            if done % config.log_every == 0 or done == config.steps:
                names = sorted(sums)
                means = accelerator.reduce(torch.stack([sums[k] for k in names]) / count, "mean")
                entry = {
                    "step": done,
                    **{k: float(v) for k, v in zip(names, means.tolist(), strict=True)},
                    "lr": lr,
                }
                if not math.isfinite(entry["loss"]):
                    raise FloatingPointError(
                        f"loss is {entry['loss']} at step {done}; lower TrainConfig.lr or set grad_clip"
                    )
                history.append(entry)
                bar.set_postfix(loss=f"{entry['loss']:.4g}")
                sums, count = {}, 0
            if run_dir is not None and (done % config.ckpt_every == 0 or done == config.steps):
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    pending = {"sums": {k: float(v) for k, v in sums.items()}, "count": count}
                    _save_checkpoint(
                        run_dir,
                        done,
                        accelerator.unwrap_model(wrapped),
                        optimizer,
                        accelerator,
                        config,
                        history,
                        pending,
                    )
                accelerator.wait_for_everyone()
    finally:
        bar.close()
    model = accelerator.unwrap_model(wrapped, keep_fp32_wrapper=False)  # drop the autocast hook
    model.eval()
    return TrainResult(
        model=model, history=history, step=config.steps, run_dir=run_dir, resumed_from=resumed_from
    )


def train_or_load(
    method: str,
    factory: Callable[..., nn.Module],
    model_config: Mapping[str, Any],
    data: Data,
    config: TrainConfig,
    *,
    loss_fn: LossFn | None = None,
    profile: str | None = None,
    key: Any = None,
    progress: bool | None = None,
    retrain: bool = False,
) -> TrainResult:
    """Load the cached model if it exists, else train it (resuming an interrupted run) and cache it.

    The cache folder is :func:`cached_path` of ``method``, ``profile``, ``config.seed`` and a hash of
    ``model_config``, ``config`` and ``key`` (anything else that changes the weights: data settings,
    loss weights). ``factory(**model_config)`` builds the model, seeded by ``config.seed``.
    """
    try:
        json.dumps(dict(model_config))
    except TypeError as err:
        raise TypeError(
            f"model_config must be JSON-able (it is saved as config.json): {err}; "
            "pass plain numbers, strings, lists and dicts"
        ) from err
    path = model_path(method, model_config, config, key=key, profile=profile)
    state = _process_state()
    if retrain and state.is_main_process and path.exists():
        shutil.rmtree(path)
    state.wait_for_everyone()
    if is_cached(path):
        model = load_pretrained(
            factory, path, device=state.device if state.num_processes > 1 else None
        )
        model.eval()
        history = json.loads((path / HISTORY_NAME).read_text())
        return TrainResult(
            model=model, history=history, step=config.steps, run_dir=path, loaded=True
        )
    seed_everything(config.seed)
    result = fit(
        factory(**model_config),
        data,
        config,
        loss_fn=loss_fn,
        run_dir=path,
        progress=progress,
        desc=method,
    )
    if state.is_main_process:
        _write_json(path / TRAIN_CONFIG_NAME, config.to_dict())
        _write_json(path / HISTORY_NAME, result.history)
        save_pretrained(result.model, model_config, path)
        shutil.rmtree(path / _CKPT_DIR, ignore_errors=True)
    state.wait_for_everyone()
    return result
