"""Runs written by earlier versions of gan_lib: the one place that knows what their files lack.

A setting added to :class:`~gan_lib.config.TrainConfig` after some runs were trained is absent
from their checkpoint's config (and a constructor argument added to the Generator from their
snapshots' ``kwargs``). Such a run must resume and sample as it was trained, so where the
setting acts its value is the one those runs used, not today's default:

- ``g_conditioning``: a conditional G took its class concatenated with z ("concat") before
  conditional BatchNorm existed; today's default is "batchnorm".
- ``ema_warmup``: an EMA run's decay was ``ema_decay`` from the first update.

Everything else that is missing reads as its default (e.g. ``augment`` was '' before it existed).
Files of an older *format* (checkpoint.FORMAT, sampling.SNAPSHOT_FORMAT) are refused with a
message, not migrated: they sample by another rule.

Example:
    >>> saved_config({"config": {"conditional": True}})["g_conditioning"]
    'concat'
    >>> generator_kwargs({"z_dim": 100, "n_classes": 2})["conditioning"]
    'concat'
"""

from __future__ import annotations

from typing import Any

from ..config import TrainConfig

# Settings added since some runs were written, whose default has changed since: the value those
# runs trained with, for the runs where the setting acts (in the others it reads as its default,
# so they still match today's profiles).
BEFORE_THEY_EXISTED = {
    # only a conditional G takes a class: it was concatenated with z
    "g_conditioning": ("concat", lambda saved: bool(saved.get("conditional"))),
    # only an EMA run has an EMA: its decay was ema_decay from the first update
    "ema_warmup": (False, lambda saved: saved.get("ema_decay", 0.0) > 0),
}


def saved_config(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's config, with settings added since it was written at the values it
    trained with: their defaults, or, where they act, :data:`BEFORE_THEY_EXISTED`.

    >>> saved_config({"config": {"lr": 1e-3}})["augment"]
    ''
    >>> saved_config({"config": {"conditional": False}})["g_conditioning"]  # as today's default
    'batchnorm'
    >>> saved_config({"config": {"ema_decay": 0.999}})["ema_warmup"]
    False
    """
    saved = ckpt.get("config", {})
    before = {k: value for k, (value, acts) in BEFORE_THEY_EXISTED.items() if acts(saved)}
    return {**TrainConfig().to_dict(), **before, **saved}


def generator_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A snapshot's Generator arguments, with ``conditioning`` where a conditional snapshot
    written before the option lacks it (it was "concat").

    >>> generator_kwargs({"z_dim": 100})  # unconditional: nothing to add
    {'z_dim': 100}
    """
    if kwargs.get("n_classes") and "conditioning" not in kwargs:
        return {**kwargs, "conditioning": BEFORE_THEY_EXISTED["g_conditioning"][0]}
    return dict(kwargs)


__all__ = ["BEFORE_THEY_EXISTED", "saved_config", "generator_kwargs"]
