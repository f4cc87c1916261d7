"""The shared toolkit of the method packages (facekit.methods.common) and the cache key helpers."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import torch

from facekit.methods.common import PoolSampler, as_float, batched, profile_config_of, render_pool
from facekit.train import TrainConfig, load_cached, model_path, train_or_load


def test_pool_sampler_is_lazy_seeded_and_checks_its_pool():
    calls = []

    def make():
        calls.append(1)
        return {"x": torch.arange(10), "y": torch.arange(10) * 2}

    s = PoolSampler(make, 4, keys=("y",))
    assert calls == []  # nothing made before the first step
    torch.manual_seed(0)
    a = s(0)
    torch.manual_seed(0)
    assert set(a) == {"y"} and torch.equal(a["y"], s(1)["y"]) and len(a["y"]) == 4 and calls == [1]
    with pytest.raises(ValueError, match="the training pool has 1 rows; need at least 2"):
        PoolSampler({"x": torch.zeros(1)}, 4, min_rows=2, empty="the training pool")
    with pytest.raises(ValueError, match="batch_size=0"):
        PoolSampler({"x": torch.zeros(3)}, 0)


def test_batched_concatenates_tensors_and_dicts():
    x = torch.arange(10.0)[:, None]
    assert torch.equal(batched(lambda b: b * 2, x, batch_size=3), x * 2)
    out = batched(lambda a, b: {"s": a + b, "d": a - b}, x, x, batch_size=4, device="cpu")
    assert torch.equal(out["s"], 2 * x) and torch.equal(out["d"], torch.zeros_like(x))
    assert as_float(torch.full((1,), 255, dtype=torch.uint8)).item() == 1.0


def test_render_pool_chunks_stores_uint8_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    seen = []

    def chunk(idx):
        seen.append(len(idx))
        return {"image": torch.ones(len(idx), 3, 2, 2) * 0.5, "i": idx}

    pool = render_pool("t", {"v": 1}, 5, chunk, chunk=2)
    assert seen == [2, 2, 1] and pool["image"].dtype == torch.uint8 and torch.equal(pool["i"], torch.arange(5))
    render_pool("t", {"v": 1}, 5, chunk, chunk=2)
    assert seen == [2, 2, 1]  # read back, not rendered again


def test_render_pool_finish_sees_every_row_and_its_result_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    calls = []

    def finish(rows):
        calls.append(len(rows["i"]))
        return {"i": rows["i"], "total": rows["i"].sum().reshape(1)}

    pool = render_pool("t", {"v": 2}, 5, lambda idx: {"i": idx}, chunk=2, finish=finish)
    assert calls == [5] and int(pool["total"]) == 10
    assert int(render_pool("t", {"v": 2}, 5, lambda idx: {"i": idx}, chunk=2, finish=finish)["total"]) == 10
    assert calls == [5]  # the finished pool is what is cached


@dataclass
class _Inner:
    a: int = 1
    b: int = 2
    seed: int = 0


@dataclass
class _Outer:
    inner: _Inner = field(default_factory=_Inner)
    name: str = "x"


def test_profile_tables_replace_nested_configs_and_seed_them():
    table = {"smoke": {"inner": {"a": 5}}, "cpu": {}, "gpu": {"name": "g"}}
    cfg = profile_config_of(_Outer, table, "smoke", 3, ("inner",))
    assert cfg == _Outer(_Inner(a=5, seed=3))
    assert profile_config_of(_Outer, table, "gpu", 0, ("inner",)) == _Outer(name="g")
    with pytest.raises(ValueError, match="profile="):
        profile_config_of(_Outer, table, "huge", 0)


def test_load_cached_reads_what_train_or_load_wrote(tmp_path, monkeypatch):
    monkeypatch.setenv("FACEKIT_CACHE", str(tmp_path))
    tc = TrainConfig(steps=2, batch_size=2, lr=1e-3, seed=4)
    with pytest.raises(FileNotFoundError, match=r"no trained toy model.*run the toy notebook"):
        load_cached("toy", torch.nn.Linear, {"in_features": 2, "out_features": 1}, tc, key={"k": 1},
                    profile="smoke", what="toy model", hint="run the toy notebook")
    res = train_or_load("toy", torch.nn.Linear, {"in_features": 2, "out_features": 1},
                        lambda step: {"x": torch.randn(2, 2)}, tc, key={"k": 1}, profile="smoke", progress=False,
                        loss_fn=lambda m, b: m(b["x"]).pow(2).mean())
    assert res.run_dir == model_path("toy", {"in_features": 2, "out_features": 1}, tc, key={"k": 1}, profile="smoke")
    net = load_cached("toy", torch.nn.Linear, {"in_features": 2, "out_features": 1}, tc, key={"k": 1}, profile="smoke")
    assert torch.equal(net.weight, res.model.weight) and not net.training
