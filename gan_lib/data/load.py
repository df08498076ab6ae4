"""Chest X-ray data: Kermany folders, PneumoniaMNIST .npz files and the synthetic phantom.

``load_dataset(source, split, image_size, resize)`` turns any of them into 1-channel uint8
tensors [N, 1, S, S] with labels 0 NORMAL / 1 PNEUMONIA. Preprocessing is the same for every
source: gray (RGB is converted, 16-bit is scaled by its own min..max range), then made square
by the resize policy (``crop``: shorter side to S keeping the aspect ratio, centre S x S, the
default; ``squash``; ``pad``: see ``imagefile``). Decoded images are cached in
``config.CACHE_DIR/datasets`` keyed by a cheap listing hash (paths, sizes, mtimes) and the
policy, so the second load is a single ``torch.load``. Nothing is ever written into the user's
data folder.

``fingerprint`` hashes the decoded content (pixels, labels, size, preprocessing version and,
for a policy other than ``crop``, its name): it does not change when the same images are copied
or regenerated, so caches keyed by it (e.g. the real-set FID statistics) stay valid, and sets
made by different policies never share one. ``crop`` hashes as before the option existed, so
runs and caches made before it keep their keys.

Example:
    >>> import tempfile
    >>> from gan_lib.data.phantom import make_phantom
    >>> root = make_phantom(Path(tempfile.mkdtemp()) / "ph", n_train=8, n_test=4, n_val=4)
    >>> ds = load_dataset(str(root), split="val", image_size=32)
    >>> ds.images.shape, ds.class_names, ds.source == str(root.resolve())
    (torch.Size([4, 1, 32, 32]), ['NORMAL', 'PNEUMONIA'], True)
"""

from __future__ import annotations

import hashlib
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from .. import config, storage
from . import imagefile, phantom, pneumoniamnist
from .folder_layout import CLASS_NAMES, LAYOUT, SPLITS, list_folder
from .imagefile import RESIZE_POLICIES, UnreadableImage, decode_image, square_tensor

PREPROCESS_VERSION = "prep-v1"  # bump when decoding/resizing changes: caches are then rebuilt


@dataclass
class ChestXrayData:
    """One split of a data source, decoded and preprocessed."""

    images: torch.Tensor  # uint8 [N, 1, S, S]
    labels: torch.Tensor  # int64 [N], 0 NORMAL, 1 PNEUMONIA
    class_names: list[str]
    description: str  # for people, stamped on captions ("synthetic phantom data ..." if so)
    source: str  # the load_dataset() argument that reloads exactly this data: "phantom", a
    # folder or an .npz path (never "auto": the source auto chose)
    kind: str  # "kermany" | "pneumoniamnist" | "phantom"
    split: str
    fingerprint: str  # hex hash of pixels + labels + preprocessing
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    is_synthetic: bool = False
    raw_sizes: torch.Tensor | None = None  # int64 [N, 2]: (width, height) of the original files
    raw_modes: list[str] | None = None  # PIL mode of each original file ("L", "RGB", "I;16", ...)
    resize: str = "crop"  # how each image was made square: one of imagefile.RESIZE_POLICIES

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:
        return (f"ChestXrayData({self.kind}, split={self.split!r}, n={len(self)}, "
                f"size={self.image_size}, fingerprint={self.fingerprint!r})")


def load_dataset(source: str = "auto", split: str = "train", image_size: int = 64,
                 resize: str = "crop") -> ChestXrayData:
    """Load one split of ``source`` as uint8 [N, 1, image_size, image_size] plus labels.

    source: "auto" | "phantom" | "pneumoniamnist" | a Kermany-layout folder | a .npz file.
    resize: how a non-square image becomes square: "crop" | "squash" | "pad" (``imagefile``).

    >>> ds = load_dataset("phantom", "test", 32)  # doctest: +SKIP
    >>> print(summarize(ds).splitlines()[0])  # doctest: +SKIP
    source:      synthetic phantom data (gan_lib.phantom, seed 0)
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: expected one of {SPLITS}")
    if not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size={image_size!r}: expected an integer >= 8, e.g. 64")
    if resize not in RESIZE_POLICIES:
        raise ValueError(f"resize={resize!r}: expected one of {RESIZE_POLICIES}")
    source = str(source)
    if source == "auto":
        source, reason = resolve_auto(image_size)
        print(f"data source (auto): {source} -- {reason}")
    if source == "phantom":
        root = phantom.make_phantom(config.PHANTOM_DIR, size=max(128, image_size))
        return _load_folder(root, split, image_size, "phantom", resize)
    if source == "pneumoniamnist":
        return _load_npz(pneumoniamnist.find_pneumoniamnist(image_size, download=True), split,
                         image_size, resize)
    try:
        path = Path(source).expanduser().resolve()
    except (RuntimeError, OSError) as err:  # Python 3.11 says "Symlink loop" as a RuntimeError
        raise FileNotFoundError(f"data source {source!r} cannot be resolved ({err}): a symbolic "
                                "link that points back at itself, or a path this user cannot "
                                f"read. Expected a folder laid out as {LAYOUT}") from None
    if path.suffix.lower() == ".npz":
        if not path.is_file():
            raise FileNotFoundError(f"PneumoniaMNIST file {path} does not exist: expected a .npz "
                                    f"with keys {split}_images/{split}_labels ({pneumoniamnist.URL})")
        return _load_npz(path, split, image_size, resize)
    if path.is_dir():
        return _load_folder(path, split, image_size, str(path), resize)
    problem = "is a file, not a folder or .npz" if path.exists() else "does not exist"
    raise FileNotFoundError(
        f"data source {source!r}: {path} {problem}. Expected 'auto', 'phantom', 'pneumoniamnist', "
        f"a PneumoniaMNIST .npz file, or a folder laid out as {LAYOUT}")


# Which real images form a set: one seeded permutation per split. Scoring takes its reference,
# floor and held-out sets from its front (metrics/features.py), calibration its batch.
SUBSET_SEED = 0


def subset_order(n: int) -> torch.Tensor:
    """The seeded permutation of a split's ``n`` images that real sets are taken from.

    >>> subset_order(5).tolist() == subset_order(5).tolist()
    True
    """
    return torch.randperm(n, generator=torch.Generator().manual_seed(SUBSET_SEED))


def resolve_auto(image_size: int = 64) -> tuple[str, str]:
    """(source, reason) for "auto": local Kermany folder, local or downloaded PneumoniaMNIST,
    else the synthetic phantom."""
    folder = config.RAW_DIR / "chest_xray"
    if folder.is_dir():
        return str(folder), f"found the Kermany folder {folder}"
    local = pneumoniamnist.find_pneumoniamnist(image_size, download=False, required=False)
    if local is not None:
        return str(local), f"no {folder}; found the PneumoniaMNIST file {local}"
    try:
        path = pneumoniamnist.find_pneumoniamnist(image_size, download=True)
        return str(path), f"no {folder} and no local PneumoniaMNIST; downloaded {path}"
    except FileNotFoundError:
        roots = ", ".join(str(r) for r in pneumoniamnist.search_roots())
        return "phantom", (f"no {folder}, no pneumoniamnist*.npz in {roots}, and no download "
                           "possible: using SYNTHETIC phantom data, not real X-rays")


# ---------------------------------------------------------------------------------------------
# Kermany folders (and the phantom, which is written in the same layout: folder_layout.py)
# ---------------------------------------------------------------------------------------------
def _prep_tag(resize: str) -> str:
    """What the cache keys and the fingerprint hash about preprocessing: ``crop`` as before
    the policy existed (old caches and fingerprints stay valid), others by name."""
    return PREPROCESS_VERSION if resize == "crop" else f"{PREPROCESS_VERSION}|resize={resize}"


def _load_folder(root: Path, split: str, image_size: int, source: str,
                 resize: str = "crop") -> ChestXrayData:
    files = list_folder(root, split)
    listing = "\n".join(f"{p.relative_to(root)}\t{(st := p.stat()).st_size}\t{st.st_mtime_ns}"
                        for p, _ in files)
    seed = _phantom_seed(root)
    kind = "kermany" if seed is None else "phantom"
    key = _hash(f"{kind}|{split}|{image_size}|{_prep_tag(resize)}\n{listing}")
    cache_file = _cache_path(kind, split, image_size, key, resize)
    cached = _cache_get(cache_file)
    if cached is None:
        # A name that is not UTF-8 could not be written to a table, caption or JSON: such a
        # file is skipped and listed (under a printable name), like an unreadable one.
        named = [(p, k) for p, k in files if _printable(p) == str(p)]
        badly_named = [[_printable(p), "file name is not valid UTF-8: rename it to use it"]
                       for p, _ in files if _printable(p) != str(p)]
        cached = _decode_folder(root, named, image_size, badly_named, resize)
        _cache_put(cache_file, cached)
    if seed is None:
        description = f"Kermany chest X-ray folder {_short(root)}"
    else:
        description = f"synthetic phantom data (gan_lib.phantom, seed {seed})"
        if source != "phantom":
            description += f" at {_short(root)}"
    return _finish(cached, description, source, kind, split, f"{root}/{split}", resize)


def _phantom_seed(root: Path) -> int | None:
    """The seed in ``root/PHANTOM.txt`` when the folder is a phantom, else None."""
    marker = root / phantom.MARKER
    if not marker.is_file():
        return None
    for line in marker.read_text(encoding="utf-8").splitlines():
        if line.startswith("seed:"):
            return int(line.split(":", 1)[1])
    return -1


def _printable(path: Path) -> str:
    """``path`` as text: undecodable bytes of its name as \\x escapes (no lone surrogates)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _decode_folder(root: Path, files: list[tuple[Path, int]], image_size: int,
                   skipped_before: list[list[str]] = (), resize: str = "crop") -> dict:
    """Decode every file (threads: PIL releases the GIL while decoding; their memory together
    bounded by imagefile.DECODE_MEMORY); unreadable -> skipped (after ``skipped_before``, files
    skipped unopened)."""
    budget = imagefile.MemoryBudget(imagefile.DECODE_MEMORY)

    def work(path: Path):
        try:
            return decode_image(path, image_size, budget, resize)
        except UnreadableImage as err:
            return str(err)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(tqdm(pool.map(work, [p for p, _ in files]), total=len(files),
                            desc=f"decoding {_short(root)}", unit="img"))
    keep = [i for i, r in enumerate(results) if not isinstance(r, str)]
    skipped = [*skipped_before, *([str(files[i][0]), results[i]]
                                  for i, r in enumerate(results) if isinstance(r, str))]
    if not keep:
        raise ValueError(f"none of the {len(files) + len(skipped_before)} files under {root} "
                         f"could be read as an image (first: {skipped[0][0]}: {skipped[0][1]})")
    return _pack(np.stack([results[i][0] for i in keep]), np.array([files[i][1] for i in keep]),
                 image_size, skipped, [results[i][1] for i in keep], [results[i][2] for i in keep],
                 resize)


# ---------------------------------------------------------------------------------------------
# PneumoniaMNIST (.npz with keys <split>_images [N,H,W] uint8 and <split>_labels [N,1])
# ---------------------------------------------------------------------------------------------
def _load_npz(path: Path, split: str, image_size: int, resize: str = "crop") -> ChestXrayData:
    path = Path(path).resolve()
    st = path.stat()
    key = _hash(f"npz|{path}|{st.st_size}|{st.st_mtime_ns}|{split}|{image_size}|{_prep_tag(resize)}")
    cache_file = _cache_path("pneumoniamnist", split, image_size, key, resize)
    cached = _cache_get(cache_file)
    if cached is None:
        images, labels = pneumoniamnist.read_npz(path, split)
        n, h, w = images.shape
        t = torch.from_numpy(images)[:, None].float()  # [N, 1, H, W]
        if (h, w) != (image_size, image_size):
            t = square_tensor(t, image_size, resize)
        cached = _pack(t[:, 0].round().clamp(0, 255).to(torch.uint8).numpy(), labels, image_size,
                       [], [(w, h)] * n, ["L"] * n, resize)
        _cache_put(cache_file, cached)
    description = f"PneumoniaMNIST ({path.name}, MedMNIST v2)"
    return _finish(cached, description, str(path), "pneumoniamnist", split, str(path), resize)


# ---------------------------------------------------------------------------------------------
# Cache, packing, summaries
# ---------------------------------------------------------------------------------------------
def _pack(images: np.ndarray, labels: np.ndarray, image_size: int, skipped: list,
          raw_sizes: list, raw_modes: list[str], resize: str = "crop") -> dict:
    images_t = torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8))[:, None]
    labels_t = torch.as_tensor(labels, dtype=torch.int64)
    h = hashlib.sha256(f"{image_size}|{_prep_tag(resize)}|".encode())
    h.update(images_t.numpy().tobytes())
    h.update(labels_t.numpy().tobytes())
    return {"version": PREPROCESS_VERSION, "images": images_t, "labels": labels_t,
            "fingerprint": h.hexdigest()[:16], "skipped": skipped,
            "raw_sizes": torch.as_tensor(raw_sizes, dtype=torch.int64).reshape(-1, 2),
            "raw_modes": list(raw_modes)}


def _finish(c: dict, description: str, source: str, kind: str, split: str,
            where: str, resize: str = "crop") -> ChestXrayData:
    skipped = [(str(p), str(r)) for p, r in c["skipped"]]
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable file(s) in {where} "
                      f"(see .skipped for paths and reasons)", stacklevel=4)
    return ChestXrayData(images=c["images"], labels=c["labels"], class_names=list(CLASS_NAMES),
                         description=description, source=source, kind=kind, split=split,
                         fingerprint=c["fingerprint"], skipped=skipped,
                         is_synthetic=kind == "phantom", raw_sizes=c["raw_sizes"],
                         raw_modes=list(c["raw_modes"]), resize=resize)


def _cache_path(kind: str, split: str, image_size: int, key: str, resize: str = "crop") -> Path:
    policy = "" if resize == "crop" else f"{resize}_"  # crop: the name it had before the option
    return config.CACHE_DIR / "datasets" / f"{kind}_{split}_{image_size}px_{policy}{key[:16]}.pt"


def _cache_get(path: Path) -> dict | None:
    """The cached dict, or None when absent or unusable (then it is rebuilt and overwritten)."""
    if not path.is_file():
        return None
    try:
        c = storage.load_torch(path)
        n = len(c["labels"])
        ok = (c["version"] == PREPROCESS_VERSION and c["images"].dtype == torch.uint8
              and c["images"].ndim == 4 and len(c["images"]) == n == len(c["raw_sizes"])
              and len(c["raw_modes"]) == n and isinstance(c["fingerprint"], str))
        if ok:
            return c
        reason = "unexpected content"
    except Exception as err:  # any unreadable cache is simply rebuilt
        reason = f"{type(err).__name__}: {err}"
    warnings.warn(f"dataset cache {path} is unusable ({reason}); rebuilding it", stacklevel=4)
    return None


def _cache_put(path: Path, c: dict) -> None:
    storage.remove_stale_temps(path.parent)  # of a writer killed mid-write
    storage.save_torch(c, path)


def _hash(text: str) -> str:
    # surrogateescape: file names that are not UTF-8 hash as their bytes
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _short(path: Path) -> str:
    """``path`` as captions and shared files name it: no folder of this machine
    (``storage.portable_path``: relative to the repository, or the data root)."""
    return storage.portable_path(Path(path).resolve())


__all__ = ["ChestXrayData", "load_dataset", "resolve_auto", "list_folder", "decode_image",
           "UnreadableImage", "CLASS_NAMES", "LAYOUT", "PREPROCESS_VERSION"]
