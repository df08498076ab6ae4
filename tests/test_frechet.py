"""The one Fréchet engine equals torch-fidelity's and pytorch-fid's FID on the same features."""

from __future__ import annotations

import pytest
import torch
from pytorch_fid.fid_score import calculate_frechet_distance

from gan_lib import metrics
from gan_lib.metrics import frechet


def features(n: int, d: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    """Features with a decaying spectrum, like Inception pool3's (a few large directions)."""
    g = torch.Generator().manual_seed(seed)
    scales = torch.logspace(0, -3, d, dtype=torch.float64)
    mixing = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]
    return (torch.randn(n, d, generator=g, dtype=torch.float64) * scales) @ mixing + shift


@pytest.mark.parametrize("n1, n2, d", [(40, 60, 128), (300, 200, 64), (256, 1024, 512)])
def test_the_engine_equals_torch_fidelity_and_pytorch_fid(n1, n2, d):
    # n < d (singular covariances, the quick profile's 1,024 vs 2,048 in 2048-d) and n > d
    a, b = features(n1, d, 1), features(n2, d, 2, shift=0.05) * 1.3
    ours = frechet.frechet_distance(a, b)
    assert ours == pytest.approx(frechet.torch_fidelity_fid(a, b), rel=1e-6)
    s1, s2 = metrics.statistics(a), metrics.statistics(b)
    assert ours == pytest.approx(calculate_frechet_distance(s1["mu"], s1["sigma"], s2["mu"],
                                                            s2["sigma"]), rel=1e-6)
    reference = frechet.ReferenceStatistics(b)  # prepared once, used for several sets
    assert reference.distance(a) == ours
    assert frechet.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_scoring_uses_the_engine(monkeypatch):
    calls = []
    real_distance = frechet.ReferenceStatistics.distance
    monkeypatch.setattr(frechet.ReferenceStatistics, "distance",
                        lambda self, f: calls.append(len(f)) or real_distance(self, f))
    net = type("Net", (), {"layers": {"fid": "2048"}})()
    cfg = type("Cfg", (), {"metrics": ("fid",)})()
    a, b = features(30, 16, 3), features(40, 16, 4)
    out = metrics.compare(net, {"2048": a}, {"2048": b}, cfg, metrics=("fid",))
    assert calls == [30] and out["fid"] == pytest.approx(frechet.torch_fidelity_fid(a, b), rel=1e-6)


def nuclear_norm_fid(f1: torch.Tensor, f2: torch.Tensor) -> float:
    """A third, independent exact route: with A, B the centred sets / sqrt(n - 1), the nonzero
    eigenvalues of S1 S2 are the squared singular values of B A^T, so tr sqrt(S1 S2) is the sum
    of its singular values (an SVD in float64: no square root of a near-singular matrix)."""
    a = (f1.double() - f1.double().mean(0)) / (len(f1) - 1) ** 0.5
    b = (f2.double() - f2.double().mean(0)) / (len(f2) - 1) ** 0.5
    mean_term = ((f1.double().mean(0) - f2.double().mean(0)) ** 2).sum()
    traces = (a ** 2).sum() + (b ** 2).sum()
    return float(mean_term + traces - 2 * torch.linalg.svdvals(b @ a.T).sum())


def test_at_a_small_fid_the_engine_agrees_with_an_exact_route_closer_than_sqrtm_does():
    """Two samples of one distribution with a decaying spectrum (as Inception features have):
    the FID is small, so it is a difference of large traces, and every route's rounding shows.
    The engine must equal the SVD route to 1e-9 relative; scipy's sqrtm (torch-fidelity's
    route) is the yardstick of the package but is itself only good to ~1e-6 there (measured on
    real chest X-ray features: benchmarks/extraction_precision.json, frechet_engine)."""
    g = torch.Generator().manual_seed(0)
    d = 256
    scale = torch.logspace(0, -4, d, dtype=torch.float64)
    f1 = (torch.randn(1024, d, generator=g, dtype=torch.float64) * scale).float()
    f2 = (torch.randn(2048, d, generator=g, dtype=torch.float64) * scale).float()
    exact, ours = nuclear_norm_fid(f1, f2), frechet.frechet_distance(f1, f2)
    assert exact < 1 and abs(ours - exact) <= 1e-9 * exact
    assert abs(frechet.torch_fidelity_fid(f1, f2) - exact) <= 1e-5 * exact
