"""Load real photos from files, folders and arrays into one float RGB format.

Real folders hold anything: phone JPEGs stored sideways with an EXIF flag, 16-bit scans,
CMYK exports, palette GIFs, thumbnails, text files. Every input yields one
:class:`LoadedImage` record, so a teaching notebook can show *why* a photo was skipped
instead of dying on the first bad file. Needs only Pillow and numpy (no OpenCV).
"""

from __future__ import annotations

import errno
import os
import stat
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (
    ".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pbm", ".pnm", ".gif", ".bmp", ".tif", ".tiff", ".webp",
)
MIN_SIDE = 32  # smaller images cannot hold a face the detector (24 px window) can use
MAX_SIDE = 2048  # larger images are downscaled on load: faces need far fewer pixels
STATUSES = {
    "ok": "loaded",
    "missing": "the path does not exist",
    "broken_link": "the symbolic link points at nothing",
    "loop": "the link leads back into a folder already on the way (a loop)",
    "not_regular": "the entry is not a regular file",
    "no_images": "the folder holds no image files",
    "unreadable": "the file or folder could not be opened",
    "empty": "the file has 0 bytes",
    "not_image": "the file is not an image format Pillow recognises",
    "corrupt": "the image data is damaged or truncated",
    "too_small": f"the image is smaller than {MIN_SIDE} px on a side",
    "too_large": "the image exceeds Pillow's decompression-bomb limit",
    "bad_array": "the array is not an image",
}

Source = str | Path | np.ndarray | torch.Tensor | Image.Image


@dataclass
class LoadedImage:
    """One input and what became of it.

    ``source`` is the path as given (folders expand to their files) or ``"array[i]"`` for the
    i-th in-memory input; ``image`` is float32 ``H x W x 3`` in [0, 1], or ``None`` when
    ``status`` (a key of :data:`STATUSES`) is not ``"ok"``; ``reason`` says why in a sentence.
    """

    source: str
    image: np.ndarray | None
    status: str
    reason: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _fail(source: str, status: str, detail: str) -> LoadedImage:
    return LoadedImage(source, None, status, f"{STATUSES[status]}: {detail}")


def _to_rgb_float(img: Image.Image) -> np.ndarray:
    """Pillow image of any mode -> float32 H x W x 3 in [0, 1].

    16-bit and 32-bit grey keep their full range (Pillow's own ``convert("L")`` clips them);
    transparency is composited on white, as a viewer shows it.
    """
    mode = img.mode
    if mode.startswith("I;16") or mode in ("I", "F"):
        a = np.asarray(img, dtype=np.float32)
        if mode.startswith("I;16") or (mode == "I" and a.max(initial=0) > 255):
            a = a / 65535.0
        elif mode == "I":
            a = a / 255.0
        elif a.max(initial=0) > 1:  # float data of unknown range: stretch to it
            a = (a - a.min()) / max(float(a.max() - a.min()), 1e-12)
        a = np.clip(a, 0.0, 1.0)
        return np.repeat(a[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return rgb


def _downscale(a: np.ndarray, max_side: int) -> np.ndarray:
    h, w = a.shape[:2]
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    chans = [Image.fromarray(a[..., c], mode="F").resize(size, Image.Resampling.BOX) for c in range(3)]
    return np.stack([np.asarray(c) for c in chans], axis=2).astype(np.float32)


def _finish(source: str, a: np.ndarray, note: str, max_side: int) -> LoadedImage:
    h, w = a.shape[:2]
    if min(h, w) < MIN_SIDE:
        return _fail(source, "too_small", f"{w}x{h} px")
    if max(h, w) > max_side:
        a = _downscale(a, max_side)
        note += f"; downscaled to {a.shape[1]}x{a.shape[0]} px"
    return LoadedImage(source, np.ascontiguousarray(a, dtype=np.float32), "ok", note)


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}  # EXIF orientation -> the transpose that displays it upright


def _reduce(img: Image.Image, k: int) -> Image.Image:
    """``img`` shrunk by the integer factor ``k`` in its own mode where Pillow can (palette, 1-bit
    and 16-bit images are first widened to a mode ``reduce`` averages correctly), so no float copy
    of the full image is ever made: the float copy is 4-16x the bytes of the file's pixels."""
    mode = img.mode
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if mode == "PA" or "transparency" in img.info else "RGB")
    elif mode == "1":
        img = img.convert("L")
    elif mode.startswith("I;16"):
        return img.convert("I").reduce(k).convert("I;16")  # keep the 16-bit scale of the values
    return img.reduce(k)


def _entry_problem(p: Path) -> LoadedImage | None:
    """Why the path cannot be read as a file (missing, broken link, loop, not entered, not a
    regular file, empty, unreadable), or ``None``. Nothing is opened, so a FIFO cannot hang us."""
    source = str(p)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        if os.path.islink(p):
            return _fail(source, "broken_link", f"{source!r} -> {os.readlink(p)!r}")
        return _fail(source, "missing", f"{source!r}")
    except PermissionError as e:
        return _fail(source, "unreadable", f"{source!r} ({e.strerror}: a folder above it cannot be entered)")
    except OSError as e:
        if e.errno == errno.ELOOP:
            return _fail(source, "loop", f"{source!r} (symbolic links point at each other)")
        return _fail(source, "unreadable", f"{source!r} ({e.strerror})")
    if stat.S_ISDIR(st.st_mode):
        real, above = Path(os.path.realpath(p)), Path(os.path.realpath(p.parent))
        if os.path.islink(p) and (real == above or real in above.parents):
            return _fail(source, "loop", f"{source!r} -> {os.readlink(p)!r}")
        if not os.access(p, os.R_OK | os.X_OK):
            return _fail(source, "unreadable", f"{source!r} (a folder that cannot be listed or entered)")
        return _fail(source, "not_regular", f"{source!r} is a folder")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a file")
        return _fail(source, "not_regular", f"{source!r} is {kind}")
    if st.st_size == 0:
        return _fail(source, "empty", f"{source!r}")
    if not os.access(p, os.R_OK):
        return _fail(source, "unreadable", f"{source!r} (permission denied)")
    return None


def load_file(path: str | Path, max_side: int = MAX_SIDE) -> LoadedImage:
    """Load one image file; never raises for a bad file (see ``status`` / ``reason``)."""
    source = str(path)
    p = Path(path)
    problem = _entry_problem(p)
    if problem is not None:
        return problem
    try:
        with warnings.catch_warnings():
            # we downscale big images ourselves; the warning would only alarm
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                fmt, size, mode = img.format or "?", img.size, img.mode
                if fmt == "JPEG" and max(size) > 2 * max_side:
                    img.draft(mode, (max_side, max_side))  # decode at a reduced scale: fast
                img.load()
                orientation = img.getexif().get(0x0112, 1)
                k = max(img.size) // max_side
                if k >= 2:
                    img = _reduce(img, k)  # shrink before the float copy and the rotation
                if orientation in _TRANSPOSE:
                    img = img.transpose(_TRANSPOSE[orientation])
                a = _to_rgb_float(img)
    except FileNotFoundError:
        return _fail(source, "missing", f"{source!r}")
    except (IsADirectoryError, PermissionError) as e:
        return _fail(source, "unreadable", f"{source!r} ({e.strerror})")
    except UnidentifiedImageError:
        return _fail(source, "not_image", f"{source!r}")
    except Image.DecompressionBombError as e:
        return _fail(source, "too_large", f"{source!r} ({e})")
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        return _fail(source, "corrupt", f"{source!r} ({e})")
    return _finish(source, a, f"{fmt} {size[0]}x{size[1]} {mode}", max_side)


def load_array(x: np.ndarray | torch.Tensor | Image.Image, source: str = "array", max_side: int = MAX_SIDE) -> LoadedImage:
    """Load one in-memory image: numpy ``H x W``, ``H x W x {1,3,4}``, torch ``{1,3} x H x W``
    (torch's channel-first order), or a PIL image. Integer arrays are scaled by their dtype's
    range; float arrays must already lie in [0, 1]."""
    if isinstance(x, Image.Image):
        return _finish(source, _to_rgb_float(ImageOps.exif_transpose(x) or x), f"PIL {x.mode}", max_side)
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        if t.ndim == 3 and t.shape[0] in (1, 3, 4):
            t = t.permute(1, 2, 0)
        elif t.ndim != 2:
            return _fail(source, "bad_array", f"torch shape {tuple(x.shape)}; valid: H x W or C x H x W with C in 1, 3, 4")
        a = t.numpy()
    else:
        a = np.asarray(x)
    shape = a.shape
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        return _fail(source, "bad_array", f"shape {shape}; valid: H x W or H x W x C with C in 1, 3, 4")
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        lo, hi = int(a.min(initial=0)), int(a.max(initial=0))
        # uint16 is 16-bit data; other integer types (numpy's default int64) usually hold 0..255
        full = 65535 if a.dtype == np.uint16 or hi > 255 else 255
        if lo < 0 or hi > 65535:
            return _fail(source, "bad_array", f"integer values must be in 0..255 (or 0..65535), got {lo}..{hi}")
        a = a.astype(np.float32) / full
    elif np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
        if not np.isfinite(a).all() or a.min(initial=0) < 0 or a.max(initial=0) > 1:
            return _fail(source, "bad_array", f"float values must be finite and in [0, 1], got [{a.min():.3g}, {a.max():.3g}]")
    else:
        return _fail(source, "bad_array", f"dtype {a.dtype}; valid: bool, integer or float")
    if a.shape[2] == 4:  # RGBA on white, like files
        a = a[..., :3] * a[..., 3:] + (1.0 - a[..., 3:])
    elif a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return _finish(source, a, f"array {'x'.join(map(str, shape))} {x.dtype}", max_side)


def walk(folder: str | Path) -> list[Path]:
    """Every entry under ``folder``, recursive and sorted, except hidden ones (``.x``,
    ``.ipynb_checkpoints``, macOS ``._x.jpg``), which are never photos. Entries that cannot be
    read as files stay in the list so each gets its row from :func:`load_file`: broken links,
    links that loop back, FIFOs and other non-files, and folders that cannot be listed or
    entered (the folder itself is the entry)."""
    root = Path(folder)
    out: list[Path] = []

    def visit(d: Path, seen: frozenset[tuple[int, int]]) -> None:
        try:
            with os.scandir(d) as it:
                names = sorted(e.name for e in it)
        except OSError:
            out.append(d)
            return
        for name in names:
            if name.startswith("."):
                continue
            p = d / name
            if not os.path.isdir(p):
                out.append(p)
                continue
            try:
                st = os.stat(p)
            except OSError:
                out.append(p)
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen or not os.access(p, os.R_OK | os.X_OK):
                out.append(p)
                continue
            visit(p, seen | {key})

    try:
        st = os.stat(root)
        visit(root, frozenset({(st.st_dev, st.st_ino)}))
    except OSError:
        out.append(root)
    return sorted(out)


def image_files(folder: str | Path) -> list[Path]:
    """The entries of :func:`walk` with an image suffix (broken links and the like included,
    so each gets its row)."""
    return [p for p in walk(folder) if p.suffix.lower() in IMAGE_EXTENSIONS]


def check_path(item: str | Path) -> None:
    """An empty path is a mistake (an unset shell variable), never "the current folder"."""
    if isinstance(item, str) and not item.strip():
        raise ValueError(f"path {str(item)!r} is empty; pass a file or folder (an unset variable?)")


def expands(item: str | Path) -> bool:
    """Whether a path is a folder to walk (not one that cannot be entered or loops back)."""
    problem = _entry_problem(Path(item))
    return problem is not None and problem.status == "not_regular" and os.path.isdir(item)


def _is_batch(x: object) -> bool:
    return (isinstance(x, np.ndarray) and x.ndim == 4) or (isinstance(x, torch.Tensor) and x.ndim == 4)


def iter_images(sources: Source | Sequence[Source], max_side: int = MAX_SIDE) -> Iterator[LoadedImage]:
    """Yield one record per image, lazily, so a large folder is never all in memory.

    ``sources`` is a path (file or folder), an array, a 4-D batch (numpy ``N x H x W x C`` or
    torch ``N x C x H x W``), a PIL image, or a list of these. Arrays are named ``array[i]``
    by their position among the in-memory inputs.
    """
    items: Iterable[Source]
    if isinstance(sources, str | Path | np.ndarray | torch.Tensor | Image.Image):
        items = [sources]
    else:
        items = sources
    k = 0
    for item in items:
        if isinstance(item, str | Path):
            check_path(item)
            if expands(item):
                files = image_files(item)
                if not files:
                    yield _fail(str(item), "no_images", f"{str(item)!r} (looked for {', '.join(IMAGE_EXTENSIONS)})")
                for f in files:
                    yield load_file(f, max_side)
            else:
                yield load_file(item, max_side)
        elif isinstance(item, np.ndarray | torch.Tensor | Image.Image):
            for one in (item if _is_batch(item) else [item]):
                yield load_array(one, f"array[{k}]", max_side)
                k += 1
        else:
            yield LoadedImage(f"item[{k}]", None, "bad_array", f"{STATUSES['bad_array']}: type {type(item).__name__}; valid: path, numpy array, torch tensor or PIL image")
            k += 1


def load_images(sources: Source | Sequence[Source], max_side: int = MAX_SIDE) -> list[LoadedImage]:
    """All records of :func:`iter_images` as a list (fine for a few hundred photos)."""
    return list(iter_images(sources, max_side))
