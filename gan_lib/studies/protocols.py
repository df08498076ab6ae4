"""Why FIDs disagree: a run's snapshots scored under the common FID protocols, side by side.

FID is a protocol, not one number: which Inception layer, how pixels reach the network, how
images are resized and encoded, and how many there are all move it. :func:`score_protocols`
scores each snapshot of a run under every protocol of :data:`PROTOCOLS` (each defined by name
with its full recipe) beside a real-vs-real floor made the same way, and writes
``runs/<name>/protocols.json``. It reuses Table 1's cached features (gan_lib.features): the
narrower widths come out of the same forward pass as pool3 (``feature_extractor.WIDTHS``), a
smaller n is the first images of the same sets, and the pixel-scaling slips give near-constant
images, extracted once per distinct image. JPEG and PIL-bicubic need fresh extractions, so they
score the final snapshot only, at a quarter of the standard n pair (``small``), beside the standard
protocol at that same n pair. Every FID here is the package's one Fréchet engine
(``frechet.ReferenceStatistics``: equal to torch-fidelity's to 1e-6 relative, tested in
tests/test_metrics.py, without its 2048-d ``sqrtm``; the section computes about forty FIDs).

Example:
    >>> [p.name for p in PROTOCOLS][:4]
    ['standard', 'width768', 'width192', 'width64']
    >>> slip_unit(torch.tensor([[[[0, 128, 254, 255]]]], dtype=torch.uint8)).tolist()
    [[[[0, 0, 0, 1]]]]
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from .. import storage
from ..config import ScoreConfig
from ..gan import run_folder, run_lock
from ..metrics import features, provenance, scoring
from ..metrics.calibrate import calibration_batch
from ..metrics.feature_extractor import Extractor, load_extractor
from ..metrics.features import Recipe
from ..metrics.frechet import ReferenceStatistics
from ..metrics.inception_weights import EXTRACTOR
from .protocol_verdicts import ORIGINAL_FIDS, ORIGINAL_ITERATIONS, consistency, not_comparable

SMALL_FRACTION = 4  # fresh extractions use n_fake // 4 generated vs n_real // 4 real images


@dataclass(frozen=True)
class Protocol:
    """One way of computing "FID", by name: every step that differs from the standard."""

    name: str
    label: str  # the table's row label
    layer: str  # Inception feature layer: 2048 (pool3), 768, 192 or 64
    pixels: str = "uint8"  # uint8 | unit-float-as-uint8 | signed-float-as-uint8 (both sets)
    resize: str = "torch-fidelity"  # to 299 px: torch-fidelity (TF1 bilinear) | pil-bicubic
    fake_jpeg: int | None = None  # JPEG quality the generated images are saved at first
    n: str = "standard"  # n pair: standard (the profile's) | n1000 | small
    explain: str = ""

    @property
    def final_only(self) -> bool:
        """JPEG and resize protocols extract every image afresh: the final snapshot only."""
        return bool(self.fake_jpeg) or self.resize != "torch-fidelity"

    def recipes(self) -> dict[str, Recipe | None]:
        """The changes to the uint8 images of each side ('fake', 'real') before extraction."""
        pixels = {"uint8": [], "unit-float-as-uint8": [Recipe("unit-float-as-uint8", slip_unit)],
                  "signed-float-as-uint8": [Recipe("signed-float-as-uint8", slip_signed)]}
        common = pixels[self.pixels] + (
            [Recipe("pil-bicubic-299", pil_bicubic)] if self.resize == "pil-bicubic" else [])
        jpeg = [Recipe(f"jpeg-q{self.fake_jpeg}", lambda x, q=self.fake_jpeg: jpeg_round_trip(
            x, q))] if self.fake_jpeg else []
        return {"fake": _compose(jpeg + common), "real": _compose(common)}


PROTOCOLS = (
    Protocol("standard", "standard: 2048-d pool3, uint8 0..255", "2048", explain=(
        "The FID of Table 1: gray repeated to 3 channels, uint8 0..255, resized to 299 px by "
        "torch-fidelity (TF1-compatible bilinear), 2048-d pool3 features.")),
    *(Protocol(f"width{w}", f"{w}-d features", w, explain=(
        f"The same network and images, but the {w}-d features of an earlier layer "
        f"(torchmetrics' FrechetInceptionDistance(feature={w}) uses them). They give far smaller "
        "numbers here: a 64-, 192- or 768-d FID is not comparable with a 2048-d one."))
      for w in ("768", "192", "64")),
    Protocol("slip_unit", "[0, 1] floats cast to uint8", "2048", pixels="unit-float-as-uint8",
             explain=("A pixel-scaling slip: images scaled to [0, 1] floats reach an extractor "
                      "that expects uint8 0..255 and are cast without scaling back, so every "
                      "pixel becomes 0 except pure white (1). Both sets turn almost black.")),
    Protocol("slip_signed", "[-1, 1] floats cast to uint8", "2048",
             pixels="signed-float-as-uint8",
             explain=("The same slip with the generator's [-1, 1] range: values truncate to 0 "
                      "except exactly 1.0 (pure white) -> 1; negative values are taken as 0 "
                      "(C leaves that cast undefined; torch and NumPy on x86 wrap -1.0 to 255). "
                      "Cast this way it gives the same images as the [0, 1] slip.")),
    Protocol("n1000", "fewer generated images (at most 1,000)", "2048", n="n1000", explain=(
        "The standard protocol on the first 1,000 generated images (and as many held-out "
        "images for the floor). FID is biased upwards at small n, by an amount that depends on "
        "the images: values at different n are not comparable.")),
    Protocol("small", "standard, at the small n pair", "2048", n="small", explain=(
        "The standard protocol at the n pair of the three protocols below (a quarter of the "
        "standard n pair): compare them with this row, not with the standard one.")),
    *(Protocol(f"jpeg{q}", f"generated saved as JPEG q{q}", "2048", fake_jpeg=q, n="small",
               explain=(f"Generated images saved as 8-bit gray JPEG at quality {q} (PIL) and "
                        "decoded before scoring; real images keep the encoding they have. The "
                        "Kermany radiographs are JPEGs, generated images are not: this row "
                        "shows how much the encoding alone moves FID."))
      for q in (95, 75)),
    Protocol("pil_bicubic", "PIL bicubic resize to 299 px", "2048", resize="pil-bicubic",
             n="small", explain=(
                 "Both sets resized to 299 px by PIL's bicubic filter (8-bit) instead of "
                 "torch-fidelity's bilinear, which then has nothing left to resize. clean-fid's "
                 "authors showed that the resize filter alone moves FID.")),
)


# --- the recipes: uint8 [N, 1, H, W] -> uint8 [N, 1, H', W'] -------------------------------------


def slip_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> [0, 1] floats -> cast to uint8 without scaling back (255 -> 1, else 0)."""
    return (images.float() / 255).to(torch.uint8)


def slip_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> [-1, 1] floats -> cast to uint8, truncating, negatives at 0 (255 -> 1)."""
    return (images.float() / 127.5 - 1).clamp_min(0).to(torch.uint8)


def jpeg_round_trip(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image saved as an 8-bit gray JPEG at ``quality`` (PIL) and decoded again."""
    out = torch.empty_like(images)
    for i, img in enumerate(images[:, 0].numpy()):
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
        out[i, 0] = torch.from_numpy(np.array(Image.open(buf).convert("L")))
    return out


def pil_bicubic(images: torch.Tensor, size: int = 299) -> torch.Tensor:
    """Each image resized to ``size`` x ``size`` by PIL's bicubic filter (8-bit in and out)."""
    out = torch.empty(len(images), 1, size, size, dtype=torch.uint8)
    for i, img in enumerate(images[:, 0].numpy()):
        resized = Image.fromarray(img).resize((size, size), Image.Resampling.BICUBIC)
        out[i, 0] = torch.from_numpy(np.array(resized))
    return out


def _compose(steps: list[Recipe]) -> Recipe | None:
    """One recipe doing ``steps`` in order (None for no step)."""
    if len(steps) <= 1:
        return steps[0] if steps else None

    def apply(x: torch.Tensor) -> torch.Tensor:
        for step in steps:
            x = step.apply(x)
        return x
    return Recipe("+".join(s.name for s in steps), apply)


# --- scoring ---------------------------------------------------------------------------------------


def n_pairs(n_fake: int, n_ref: int) -> dict[str, tuple[int, int]]:
    """(n generated, n real) of each n group.

    >>> n_pairs(1024, 2048)
    {'standard': (1024, 2048), 'n1000': (1000, 2048), 'small': (256, 512)}
    """
    return {"standard": (n_fake, n_ref), "n1000": (min(1000, n_fake), n_ref),
            "small": (n_fake // SMALL_FRACTION, n_ref // SMALL_FRACTION)}


@run_lock.locked("protocols")
def score_protocols(run_dir: str | os.PathLike, score_cfg: ScoreConfig | None = None,
                    extractor: str = EXTRACTOR) -> dict[str, Any]:
    """Score every snapshot of a run under each of :data:`PROTOCOLS`; write and return
    ``run_dir/protocols.json``. ``score_cfg`` defaults to the run's profile (as Table 1's)."""
    t0 = time.perf_counter()
    run_dir = run_folder.run_path(run_dir)
    run_cfg = run_folder.load_run_config(run_dir)
    score_cfg = score_cfg or scoring.score_config(run=run_dir)
    snapshots = run_folder.list_snapshots(run_dir)
    ds = scoring.load_real(run_cfg, "train")
    net = load_extractor(score_cfg, extractor, calibration_batch(ds.images))
    sets = _ProtocolFeatures(net, ds, run_cfg["config"]["image_size"], score_cfg, snapshots)
    records = [rec for p in PROTOCOLS for rec in _score(sets, p)]
    ds = sets.ds
    result = {
        **provenance.header(run_dir, provenance.data_record(ds, "train"), snapshots[-1][1], net),
        "settings": score_cfg.to_dict(),
        "n_pairs": sets.pairs, "iterations": [it for it, _ in snapshots],
        "protocols": [{**asdict(p), "final_only": p.final_only, "recipes": {
            k: r.name if r else "none" for k, r in p.recipes().items()}} for p in PROTOCOLS],
        "original": {"fid": list(ORIGINAL_FIDS), "iterations": list(ORIGINAL_ITERATIONS),
                     "source": "the original course report's DCGAN on the "
                               "Kermany training images (quoted in README.md)"},
        "records": records,
        "consistency": [consistency(records, p.name, not_comparable(
            [it for it, _ in snapshots], bool(ds.is_synthetic))) for p in PROTOCOLS],
        "images_extracted": sets.extracted, "seconds": round(time.perf_counter() - t0, 2),
    }
    result = storage.portable(result)  # no folder of this machine in a result file
    storage.write_json(run_dir / "protocols.json", result)
    return result


class _ProtocolFeatures:
    """The feature sets the protocols compare, read from Table 1's caches or made once."""

    def __init__(self, net: Extractor, ds: Any, image_size: int, score_cfg: ScoreConfig,
                 snapshots: list[tuple[int, Any]]) -> None:
        self.net, self.ds, self.size, self.cfg, self.snapshots = net, ds, image_size, score_cfg, \
            snapshots
        self.ref = features.real_features(net, ds, score_cfg.n_real, image_size)
        self.pairs = n_pairs(score_cfg.n_fake, self.ref["n"])
        self.extracted = 0  # images extracted here (fresh sets; a cache hit adds nothing)
        self.base = {"extractor": net.describe(), "weights_sha256": net.weights["sha256"],
                     "data_source": ds.description, "data_fingerprint": ds.fingerprint}
        self._refs: dict[str, ReferenceStatistics] = {}
        self._fids: dict[tuple[str, str], float] = {}
        self._table_1: dict[Any, dict[str, torch.Tensor]] = {}  # Table 1's sets, read once

    def fake(self, p: Protocol, index: int) -> dict[str, Any]:
        """Features of snapshot ``index``'s first n generated images under ``p``."""
        n, recipe = self.pairs[p.n][0], p.recipes()["fake"]
        if recipe is None:  # Table 1's set: the first n of what scoring extracted
            if index not in self._table_1:
                final = index == len(self.snapshots) - 1
                total = max(n, scoring.generated_count(self.net, self.cfg, final))
                self._table_1[index] = features.fake_features(
                    self.net, self.snapshots[index][1], total, self.cfg.seed)["features"]
            return {"features": self._table_1[index][p.layer][:n], "distinct": None}
        return self._made(features.fake_features(self.net, self.snapshots[index][1], n,
                                                 self.cfg.seed, recipe), p.layer)

    def real(self, p: Protocol, held_out: bool) -> dict[str, Any] | None:
        """The reference set of ``p``'s n pair, or the held-out set standing in for the
        generated images (None where the split has no such images)."""
        n_fake, n_ref = self.pairs[p.n]
        offset = n_ref if held_out else 0  # held-out images follow the reference set's
        n = n_fake if held_out else n_ref
        if offset + n > len(self.ds.images):
            return None
        recipe = p.recipes()["real"]
        if recipe is not None:
            return self._made(features.real_features(self.net, self.ds, n, self.size, offset,
                                                     recipe), p.layer)
        if held_out and p.n != "small":  # Table 1's held-out floor set
            if "held out" not in self._table_1:
                self._table_1["held out"] = features.real_features(
                    self.net, self.ds, self.cfg.n_fake, self.size, offset=self.ref["n"])["features"]
            return {"features": self._table_1["held out"][p.layer][:n], "distinct": None}
        # the small pair's sets are both inside the reference set: images 0..n and n..n + n_fake
        return {"features": self.ref["features"][p.layer][offset:offset + n], "distinct": None}

    def fid(self, f1: torch.Tensor, f2: torch.Tensor) -> float:
        """FID of set ``f1`` against the reference set ``f2``; each pair is computed once (the
        slips' sets repeat), each reference prepared once."""
        k1, k2 = _digest(f1), _digest(f2)
        if k2 not in self._refs:
            self._refs[k2] = ReferenceStatistics(f2)
        if (k1, k2) not in self._fids:
            self._fids[k1, k2] = self._refs[k2].distance(f1)
        return self._fids[k1, k2]

    def _made(self, found: dict[str, Any], layer: str) -> dict[str, Any]:
        if found["cache"] == "built":
            self.extracted += found["n"] if found["distinct"] is None else found["distinct"]
        return {"features": found["features"][layer], "distinct": found["distinct"]}


def _digest(feats: torch.Tensor) -> str:
    return hashlib.sha256(feats.contiguous().numpy().tobytes()).hexdigest()


def _score(sets: _ProtocolFeatures, p: Protocol) -> list[dict[str, Any]]:
    """``p``'s records: the snapshots it scores (the final one only where every image is
    extracted afresh), then its floor, each with its n pair and how many images were distinct."""
    n_fake, n_real = sets.pairs[p.n]
    common = {**sets.base, "protocol": p.name, "layer": p.layer, "n_fake": n_fake,
              "n_real": n_real}
    if p.layer not in sets.net.module.get_requested_features_list():
        return [{**common, "kind": "generated", "iteration": None, "value": None,
                 "unavailable": f"{sets.net.name} gives no {p.layer}-d features"}]
    t0 = time.perf_counter()
    ref = sets.real(p, held_out=False)
    records = []
    for index, (iteration, path) in enumerate(sets.snapshots):
        if p.final_only and index < len(sets.snapshots) - 1:
            continue
        fake = sets.fake(p, index)
        records.append({**common, "kind": "generated", "iteration": iteration,
                        "snapshot": str(path), "value": sets.fid(fake["features"], ref["features"]),
                        "compared": f"generated (iteration {iteration}) vs real train reference",
                        "distinct_fake": fake["distinct"], "distinct_real": ref["distinct"],
                        "seconds": round(time.perf_counter() - t0, 2)})
        t0 = time.perf_counter()
    held = sets.real(p, held_out=True)
    floor = {**common, "kind": "floor", "iteration": None, "snapshot": None,
             "compared": "real train, held out vs real train reference"}
    if held is None:  # Table 1's fallback: the reference set's two disjoint halves
        half = len(ref["features"]) // 2
        return records + [{**floor, "n_fake": half, "n_real": half, "same_n": False,
                           "value": sets.fid(ref["features"][half:2 * half],
                                             ref["features"][:half]),
                           "compared": "real train: half A vs half B (disjoint)",
                           "note": f"the training split has {len(sets.ds.images)} images, fewer "
                                   f"than {n_real} + {n_fake} disjoint ones, so two disjoint "
                                   f"halves of the reference set are compared ({half} vs "
                                   f"{half}; FID is higher at smaller n)",
                           "distinct_fake": None, "distinct_real": ref["distinct"],
                           "seconds": round(time.perf_counter() - t0, 2)}]
    return records + [{**floor, "value": sets.fid(held["features"], ref["features"]),
                       "distinct_fake": held["distinct"], "distinct_real": ref["distinct"],
                       "seconds": round(time.perf_counter() - t0, 2)}]
