"""Write a synthetic dataset folder whole or not at all (``facekit synth``).

Images, ``labels.csv`` and ``card.md`` are written into a hidden temporary sibling folder that is
renamed into place at the end, so a reader, an interrupted run or a crash sees the old folder or
the complete new one, never images without labels. A lock file beside the target stops a second
run into the same folder (two runs used to interleave their images under one ``labels.csv``).
``overwrite`` replaces the whole folder, never merges, and only a folder that holds a dataset
(``labels.csv`` and ``card.md``) may be replaced, so a mistyped path cannot delete a user's files.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DATASET_FILES = ("labels.csv", "card.md")


class DatasetBusyError(RuntimeError):
    """Another run is writing the same folder (its lock file exists)."""


def lock_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.lock")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold ``.<name>.lock`` beside ``out`` (created exclusively, holding our pid); a lock left by
    a process that no longer runs is taken over."""
    lock = lock_path(out)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                raise DatasetBusyError(f"{out} is being written by another run (pid {pid}, lock {lock}); "
                                       "wait for it or choose another folder") from None
            lock.unlink(missing_ok=True)  # stale: its writer is gone
    else:
        raise DatasetBusyError(f"{out}: could not take the lock {lock}; remove it if no run is writing there")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def replace_problem(out: Path, overwrite: bool) -> str | None:
    """Why ``out`` may not be (re)written, or ``None``: it must be new, empty, or with
    ``overwrite`` a dataset folder."""
    if not out.is_dir():
        return None
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return None
    if not overwrite:
        return f"{out} is not empty; pass --overwrite to replace the whole folder (nothing was written)"
    if not all((out / name).is_file() for name in DATASET_FILES):
        shown = ", ".join(entries[:3]) + (" ..." if len(entries) > 3 else "")
        return (f"{out} holds files that are not a facekit dataset ({shown}); --overwrite replaces only a folder "
                "with labels.csv and card.md, so it was left alone; choose a new folder")
    return None


def write_dataset(out: Path, ds: Any, n: int, batch_size: int, *, overwrite: bool,
                  description: str | None = None) -> None:
    """Render ``n`` faces of ``ds`` (a :class:`~facekit.synth.datasets.FaceDataset`) into ``out``
    with their labels and data card; see the module docstring for the guarantees. Raises
    :class:`DatasetBusyError`, or ``FileExistsError`` when ``out`` changed so that it may not be
    replaced while we rendered; on any error or Ctrl-C ``out`` is as it was."""
    from facekit.cards import card_text, describe
    from facekit.io import atomic_write
    from facekit.viz import png_bytes

    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    with locked(out):
        problem = replace_problem(out, overwrite)
        if problem:
            raise FileExistsError(problem)
        tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            rows: list[dict[str, object]] = []
            width = len(str(max(n - 1, 0)))
            for start in range(0, n, batch_size):
                idx = list(range(start, min(n, start + batch_size)))
                params, extra = ds.params(idx)
                images = ds.render_params(params).cpu()
                labels = params.labels()
                for j, i in enumerate(idx):
                    name = f"face_{i:0{width}d}.png"
                    atomic_write(tmp / name, png_bytes(images[j]))
                    row: dict[str, object] = {"file": name, "person": int(extra["person"][j])}
                    if "emotion" in extra:
                        row["emotion"] = int(extra["emotion"][j])
                    if "intensity" in extra:
                        row["intensity"] = round(float(extra["intensity"][j]), 4)
                    row.update({k: round(float(v[j]), 4) for k, v in labels.items()})
                    rows.append(row)
                print(f"{len(rows)}/{n} faces", file=sys.stderr)
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
            atomic_write(tmp / "labels.csv", buf.getvalue())
            cols, split_table = describe(ds)
            au_cols = [k for k in cols if k.startswith("AU")]
            atomic_write(tmp / "card.md", card_text(out.name, description or f"faces written by `facekit synth` ({n} images)",
                                                    ds, ds.config(), cols, au_cols, split_table, f"face_{0:0{width}d}.png"))
            _swap_in(tmp, out, overwrite)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(tmp: Path, out: Path, overwrite: bool) -> None:
    """Rename the finished folder into place; an old dataset is moved aside first and deleted
    only once the new one is there."""
    problem = replace_problem(out, overwrite)  # the lock keeps other facekit runs out, not the user
    if problem:
        raise FileExistsError(problem + " (it changed while we rendered; the new images were discarded)")
    old = None
    if out.is_dir():
        if any(out.iterdir()):
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
        else:
            out.rmdir()
    try:
        os.replace(tmp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["DatasetBusyError", "lock_path", "replace_problem", "write_dataset"]
