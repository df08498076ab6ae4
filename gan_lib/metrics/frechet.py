"""The one Fréchet distance of the package: every FID (Table 1, floors, audit, protocols).

FID = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2) (Heusel et al. 2017), computed from the
feature sets themselves through a small symmetric eigenproblem (:class:`ReferenceStatistics`)
instead of a 2048 x 2048 matrix square root. :func:`torch_fidelity_fid` is the library's own route
(scipy ``sqrtm`` on the statistics), kept as the yardstick the engine is tested against. It is
written here rather than taken from torch-fidelity or pytorch-fid because both compute the
2048-d ``sqrtm`` (seconds per FID on a CPU), where the audit and the protocols need dozens of
FIDs per snapshot.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> a, b = torch.randn(50, 8, generator=g), torch.randn(60, 8, generator=g) + 1
    >>> ours, theirs = frechet_distance(a, b), torch_fidelity_fid(a, b)
    >>> abs(ours - theirs) < 1e-6 * theirs
    True
"""

from __future__ import annotations

import math

import torch
from torch_fidelity import metric_fid


class ReferenceStatistics:
    """A fixed feature set prepared once (mean, covariance) for many Fréchet distances to it.

    FID = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2), exact, without a d x d matrix
    square root. With F the centred samples / sqrt(n - 1) (F^T F = S1; S1^(1/2) instead when
    n > d), the eigenvalues of S1 S2 are those of the small symmetric matrix F S2 F^T, so
    tr sqrt(S1 S2) is the sum of the square roots of its eigenvalues: an n x n ``eigvalsh``
    where a 2048-d ``sqrtm`` takes seconds on a CPU. This is what makes dozens of FIDs per
    snapshot affordable; it equals torch-fidelity's FID to 1e-6 relative (tests/test_frechet.py;
    benchmarks/extraction_precision.py checks it on real chest X-ray features too).
    """

    def __init__(self, feats: torch.Tensor):
        x = feats.double()
        self.n, self.mu = len(x), x.mean(0)
        centred = x - self.mu
        self.cov = centred.T @ centred / (self.n - 1)
        self.trace = self.cov.diagonal().sum()

    def distance(self, feats: torch.Tensor) -> float:
        """The Fréchet distance of ``feats`` [n, d] to this reference."""
        x = feats.double()
        mu = x.mean(0)
        factor = _cov_factor(x - mu)
        eig = torch.linalg.eigvalsh(factor @ self.cov @ factor.T)
        cross = eig.clamp_min(0).sqrt().sum()
        value = ((mu - self.mu) ** 2).sum() + (factor ** 2).sum() + self.trace - 2 * cross
        return max(0.0, float(value))  # identical sets give -1e-12, not < 0


def frechet_distance(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """FID of two feature sets [n, d], exact (see :class:`ReferenceStatistics`)."""
    return ReferenceStatistics(f2).distance(f1)


def _cov_factor(centred: torch.Tensor) -> torch.Tensor:
    """F with F^T F = the sample covariance of ``centred`` [n, d], of the smaller shape."""
    n, d = centred.shape
    if n <= d:
        return centred / math.sqrt(n - 1)
    vals, vecs = torch.linalg.eigh(centred.T @ centred / (n - 1))
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def fid_from_statistics(stats_1: dict, stats_2: dict) -> float:
    """FID of two {'mu', 'sigma'} statistics by torch-fidelity's sqrtm route, clamped at 0
    (identical sets give -1e-12, not < 0). For a pytorch-fid ``.npz`` made elsewhere, and as
    the yardstick of :class:`ReferenceStatistics`."""
    out = metric_fid.fid_statistics_to_metric(stats_1, stats_2, False)
    return max(0.0, float(out[metric_fid.KEY_METRIC_FID]))


def torch_fidelity_fid(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """torch-fidelity's FID of two feature sets (statistics, then scipy sqrtm), clamped at 0."""
    return fid_from_statistics(*(metric_fid.fid_features_to_statistics(f) for f in (f1, f2)))
