"""One line of scores.json: :class:`ScoreRecord`, and the provenance every line carries.

scores.json is a provenance header (:mod:`gan_lib.metrics.provenance`), the settings, and
``"scores"``: a list of lines, one per metric value, each a :class:`ScoreRecord` written by
:meth:`ScoreRecord.to_json`. A line says what was compared (``kind``: a snapshot's generated
images, a real-vs-real floor, or real images alone for IS; ``compared`` in words), with how many
images (``n_fake``, ``n_real``), the value and its spread, the metric's own settings, and how
its features were made (:class:`LineProvenance`). A value that could not be computed is None
with the reason (``unavailable``) and, where there is one, what to do (``fix``).

:meth:`ScoreRecord.from_json` reads a line back, also one written by an earlier version (whose
lines lack ``iteration`` and ``snapshot`` where they were None, or ``seconds``).

Example:
    >>> prov = LineProvenance("inception-v3-compat", None, None, "none", "blobs", "f", "cpu",
    ...                       "fp32", "fp32, BatchNorm folded")
    >>> line = ScoreRecord("fid24", "fid", 3.5, None, prov, "floor", "real test vs real train",
    ...                    24, 48, same_n=True).to_json()
    >>> line["name"], line["same_n"], "note" in line, line["extraction"]
    ('fid24', True, False, 'fp32, BatchNorm folded')
    >>> ScoreRecord.from_json(line).to_json() == line
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

KINDS = ("generated", "floor", "real")


@dataclass(frozen=True)
class LineProvenance:
    """How a line's features were made: extractor, its weights, the data, device, arithmetic."""

    extractor: str  # Extractor.describe(): name, library, layer, variant
    weights: str | None  # the weights file's path (None: the extractor needs none)
    weights_sha256: str | None
    weights_origin: str  # where resolve_weights found them
    data_source: str  # the real images' description
    data_fingerprint: str
    device: str
    precision: str
    extraction: str  # Extractor.variant

    @classmethod
    def of(cls, net: Any, ds: Any) -> LineProvenance:
        """The provenance of lines scored with extractor ``net`` against data set ``ds``."""
        return cls(net.describe(), net.weights["path"], net.weights["sha256"],
                   net.weights["origin"], ds.description, ds.fingerprint, str(net.device),
                   net.precision, net.variant)


# Keys written only when set; every other field is written always (None when not applicable).
_WHEN_SET = ("sampling", "class_name", "same_n", "note", "unavailable", "fix")


@dataclass(frozen=True)
class ScoreRecord:
    """One metric value of scores.json with everything needed to read it."""

    name: str  # the metric with its sample count: fid5k, kid1024, is4096 (is_fid_kid.metric_name)
    metric: str  # a name registered in is_fid_kid.METRICS
    value: float | None  # None: unavailable (see ``unavailable``)
    std: float | None  # KID's std over subsets, IS's over splits; None for FID
    provenance: LineProvenance
    kind: str  # one of KINDS
    compared: str  # what was compared, in words
    n_fake: int | None  # generated (or held-out real) images; None for real-only IS
    n_real: int | None  # reference images; None for a generated set's IS
    iteration: int | None = None  # the snapshot's training iteration (kind "generated")
    snapshot: str | None = None  # the snapshot file (kind "generated")
    seconds: float = 0.0  # extraction and computation time of this value
    sampling: str | None = None  # the snapshot's sampling rule (kind "generated")
    class_name: str | None = None  # intra-class scores of a conditional run
    same_n: bool | None = None  # a floor at the snapshots' (n_fake, n_real) pair
    note: str | None = None  # why a floor's n pair differs
    unavailable: str | None = None  # why ``value`` is None
    fix: str | None = None  # what to do about it
    settings: dict[str, Any] = field(default_factory=dict)  # kid_subset_size, is_splits, ...

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"ScoreRecord.kind={self.kind!r}: expected one of {KINDS}")

    def to_json(self) -> dict[str, Any]:
        """The line as scores.json holds it: flat, provenance and settings at the top level."""
        line = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("provenance", "settings")}
        line = {k: v for k, v in line.items() if v is not None or k not in _WHEN_SET}
        return {**line, **self.settings, **dataclasses.asdict(self.provenance)}

    @classmethod
    def from_json(cls, line: dict[str, Any]) -> ScoreRecord:
        """A line of scores.json (this version's or an earlier one's) as a ScoreRecord."""
        names = {f.name for f in dataclasses.fields(cls)} - {"provenance", "settings"}
        prov_names = {f.name for f in dataclasses.fields(LineProvenance)}
        missing = sorted({"name", "metric", "value", "kind", "compared"} - set(line))
        if missing:
            raise ValueError(f"a scores.json line lacks {missing}: expected the keys of "
                             f"ScoreRecord ({sorted(names)}); is this a scores.json line?")
        known = {k: v for k, v in line.items() if k in names}
        prov = {k: line.get(k) for k in prov_names}
        settings = {k: v for k, v in line.items() if k not in names | prov_names}
        return cls(**{"std": None, "n_fake": None, "n_real": None, **known},
                   provenance=LineProvenance(**prov), settings=settings)


__all__ = ["KINDS", "LineProvenance", "ScoreRecord"]
