"""The audit's detectors on sets whose answer is known: PRDC invariants and a brute-force
reference, exact nearest neighbours, copying flagged for copies and not for new real images,
and FID_inf recovering a known Fréchet distance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_lib.metrics import frechet
from gan_lib.studies import audit


def gaussians(n, d=8, shift=0.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) + shift


def brute_prdc(real, fake, k):
    """Definitions of the two papers, written out with torch.cdist."""
    rr, ff, rf = torch.cdist(real, real), torch.cdist(fake, fake), torch.cdist(real, fake)
    r_radius = rr.kthvalue(k + 1, dim=1).values  # k-th neighbour, the point itself excluded
    f_radius = ff.kthvalue(k + 1, dim=1).values
    inside = rf < r_radius[:, None]  # [real, fake]: fake j inside real i's ball
    return {"precision": inside.any(0).double().mean().item(),
            "recall": (rf < f_radius[None, :]).any(1).double().mean().item(),
            "density": inside.sum(0).double().mean().item() / k,
            "coverage": (rf.min(1).values < r_radius).double().mean().item()}


def test_prdc_matches_the_definitions():
    real, fake = gaussians(120, seed=1), gaussians(90, shift=0.7, seed=2)
    ours = audit.prdc(real, fake)
    pr, dc = brute_prdc(real.double(), fake.double(), 3), brute_prdc(real.double(),
                                                                     fake.double(), 5)
    assert ours["precision"] == pytest.approx(pr["precision"])
    assert ours["recall"] == pytest.approx(pr["recall"])
    assert ours["density"] == pytest.approx(dc["density"])
    assert ours["coverage"] == pytest.approx(dc["coverage"])
    assert 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1


def test_prdc_invariants():
    real = gaussians(200, seed=3)
    assert audit.prdc(real, real.clone())["precision"] == 1.0
    assert audit.prdc(real, real.clone())["recall"] == 1.0
    far = audit.prdc(real, gaussians(200, shift=50.0, seed=4))
    assert far["precision"] == far["recall"] == far["density"] == far["coverage"] == 0.0
    # a generator that covers one of two real modes: high precision, recall about one half
    two_modes = torch.cat([gaussians(200, d=2, seed=5), gaussians(200, d=2, shift=30.0, seed=6)])
    one_mode = gaussians(200, d=2, seed=7)
    out = audit.prdc(two_modes, one_mode)
    assert out["precision"] > 0.9 and 0.4 < out["recall"] < 0.6
    with pytest.raises(ValueError, match="more than 5 images"):
        audit.prdc(real[:5], real[:5])


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_nearest_is_exact_and_chunk_independent(metric):
    q, ref = gaussians(37, d=12, seed=8), gaussians(50, d=12, seed=9)
    d, i = audit.nearest(q, ref, metric, chunk=7)
    d_all, i_all = audit.nearest(q, ref, metric, chunk=1000)
    assert torch.equal(i, i_all) and torch.allclose(d, d_all)
    if metric == "cosine":
        sim = torch.nn.functional.normalize(q, dim=1) @ torch.nn.functional.normalize(ref, dim=1).T
        brute_d, brute_i = (1 - sim).min(1)
    else:
        brute_d, brute_i = torch.cdist(q.double(), ref.double()).min(1)
        brute_d = brute_d / np.sqrt(12)
    assert torch.equal(i, brute_i) and torch.allclose(d.double(), brute_d.double(), atol=1e-5)
    imgs = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    assert torch.equal(audit.nearest(imgs, imgs, "l2")[1], torch.arange(4))
    assert audit.nearest(imgs, imgs, "l2")[0].max() < 1e-3  # rounding only
    with pytest.raises(ValueError, match="metric='dot'"):
        audit.nearest(q, ref, "dot")


@pytest.fixture(scope="module")
def population():
    """Training, held-out and fresh sets from one mixture of 4 Gaussians in 16-d."""
    def draw(n, seed):
        g = torch.Generator().manual_seed(seed)
        centres = torch.randn(4, 16, generator=torch.Generator().manual_seed(0)) * 6
        return centres[torch.randint(4, (n,), generator=g)] + torch.randn(n, 16, generator=g)
    return {"train": draw(1500, 1), "heldout": draw(400, 2), "fresh": draw(400, 3)}


def test_copying_is_flagged_for_copies_of_training_images(population):
    train, held = population["train"], population["heldout"]
    g = torch.Generator().manual_seed(4)
    for copies in (train[:400], train[:400] + 0.05 * torch.randn(400, 16, generator=g)):
        rate = audit.copy_rate(audit.nearest(copies, train, "l2")[0],
                               audit.nearest(held, train, "l2")[0])
        assert rate["copy_rate"] > 0.95 and rate["n_fake"] == 400 and rate["n_reference"] == 400
        ct = audit.data_copying_ct(train, held, copies, cells=4)
        assert ct["C_T"] < -5, ct


def test_copying_is_not_flagged_for_new_real_images(population):
    train, held, fresh = population["train"], population["heldout"], population["fresh"]
    rate = audit.copy_rate(audit.nearest(fresh, train, "l2")[0],
                           audit.nearest(held, train, "l2")[0])
    assert rate["copy_rate"] < 0.04  # about the 1% the threshold lets through
    ct = audit.data_copying_ct(train, held, fresh, cells=4)
    assert abs(ct["C_T"]) < 2.5 and ct["cells_used"] == 4, ct


def test_fid_inf_recovers_a_known_frechet_distance():
    """N(0, I) vs N(m, I) in 32-d with |m|^2 = 4: the Fréchet distance is exactly 4."""
    d = 32
    real = gaussians(20000, d=d, seed=10)
    shift = torch.zeros(d)
    shift[:4] = 1.0
    fake = gaussians(4000, d=d, shift=shift, seed=11)
    out = audit.fid_vs_n(fake, real, resamples=10)
    small, full = out["points"][0], out["points"][-1]
    assert small["n"] == 500 and full["n"] == 4000
    assert small["fid"] > full["fid"] > 4.0  # biased upwards, more at small n
    assert abs(out["fid_inf"] - 4.0) < abs(full["fid"] - 4.0)  # the fit removes bias
    assert out["fid_inf"] == pytest.approx(4.0, abs=0.15)
    lo, hi = out["interval_95"]
    # the full-size point is the same images in another order: equal up to float rounding
    assert full["fid"] == pytest.approx(out["fid"], rel=1e-9)
    assert lo < out["fid"] < hi and hi - lo < 0.5 and out["residual"] < 0.1


@pytest.mark.parametrize("d, n, mean_shift", [(32, 400, 0.5), (64, 500, 0.0)])
def test_fid_interval_is_as_wide_as_fids_spread_over_fresh_samples(d, n, mean_shift):
    """The interval at n must bracket the measured FID and be as wide as the FID's spread over
    fresh samples of n from the same distribution (reference fixed), also for a floor (same
    distribution, mean_shift 0) where a with-replacement bootstrap lies above the FID."""
    real = gaussians(4000, d=d, seed=20)
    shift = torch.zeros(d)
    shift[:3] = mean_shift
    reference = frechet.ReferenceStatistics(real)
    fresh = [reference.distance(gaussians(n, d=d, shift=shift, seed=100 + i)) for i in range(60)]
    widths = []
    for seed in range(3):
        out = audit.fid_vs_n(gaussians(n, d=d, shift=shift, seed=21 + seed), real, seed=seed)
        lo, hi = out["interval_95"]
        assert lo < out["fid"] < hi
        widths.append(hi - lo)
    true_width = 2 * 1.96 * np.std(fresh)
    assert 0.6 < np.mean(widths) / true_width < 1.7, (widths, true_width)
    fake = gaussians(n, d=d, shift=shift, seed=21)
    g = torch.Generator().manual_seed(0)
    boot = [reference.distance(fake[torch.randint(n, (n,), generator=g)]) for _ in range(20)]
    assert min(boot) > reference.distance(fake)  # why the bootstrap is not used: all above
