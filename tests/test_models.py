"""DCGAN networks: shapes, parameter counts, initialisation, snapshots and generation."""

from __future__ import annotations

import pytest
import torch

from gan_lib.gan import models, sampling


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


# Expected counts follow from the layer sizes, e.g. at 32 px (G: 256-128-64 feature maps):
# G = 100*256*16 + 2*256 + 256*128*16 + 2*128 + 128*64*16 + 2*64 + 64*1*16 = 1,066,880
# D = 1*64*16 + 64*128*16 + 2*128 + 128*256*16 + 2*256 + 256*1*16 = 661,248
# At 64 px these are the PyTorch DCGAN example's networks with one image channel.
@pytest.mark.parametrize(("size", "n_G", "n_D"), [
    (32, 1_066_880, 661_248),
    (64, 3_574_656, 2_763_520),
    (128, 12_784_512, 11_162_368),
])
def test_shapes_and_parameter_counts(size, n_G, n_D):
    G, D = models.Generator(image_size=size), models.Discriminator(image_size=size)
    assert (models.count_parameters(G), models.count_parameters(D)) == (n_G, n_D)
    if size == 128:
        return  # the forward pass at 128 px adds nothing but time
    x = G(torch.randn(3, 100))
    assert x.shape == (3, 1, size, size)
    assert x.min() >= -1 and x.max() <= 1  # tanh
    assert D(x).shape == (3,)  # one logit per image


def test_small_widths_and_bad_size():
    G = models.Generator(z_dim=16, g_channels=8, image_size=32)
    assert G(torch.randn(2, 16)).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="image_size=48"):
        models.Generator(image_size=48)
    with pytest.raises(ValueError, match="image_size=48"):
        models.Discriminator(image_size=48)


def test_weights_init_is_dcgan():
    torch.manual_seed(0)
    D = models.Discriminator(image_size=64).apply(models.weights_init)
    conv = D.main[2].weight  # 64 -> 128 feature maps: 131,072 weights
    bn = D.main[3]
    assert abs(conv.mean().item()) < 1e-3 and abs(conv.std().item() - 0.02) < 1e-3
    assert abs(bn.weight.mean().item() - 1) < 0.01 and abs(bn.weight.std().item() - 0.02) < 0.01
    assert torch.all(bn.bias == 0)


def test_generate_does_not_depend_on_batch_size(tmp_path):
    torch.manual_seed(0)
    G = models.Generator(z_dim=16, g_channels=8, image_size=32).apply(models.weights_init)
    a = sampling.generate(G, 10, seed=3, batch_size=3)
    b = sampling.generate(G, 10, seed=3, batch_size=10)
    assert a.dtype == torch.uint8 and a.shape == (10, 1, 32, 32)
    assert torch.equal(a, b)
    assert torch.equal(sampling.generate(G, 4, seed=3), a[:4])  # latent i depends on (seed, i)
    assert not torch.equal(sampling.generate(G, 10, seed=4), a)
    assert G.training  # generate() restores the mode it found
    sampler = sampling.recalibrate_batchnorm(G, batches=4, batch_size=5, seed=1)
    a = sampling.generate(sampler, 10, seed=3, batch_size=3)
    assert torch.equal(a, sampling.generate(sampler, 10, seed=3, batch_size=10))
    sampling.save_snapshot(sampler, tmp_path / "G.pt", iteration=7,
                           sampling=sampling.sampling_record(4, 5, 1))
    assert torch.equal(sampling.generate(tmp_path / "G.pt", 10, seed=3), a)


def test_recalibrated_statistics_are_the_mean_over_batches():
    torch.manual_seed(0)
    G = models.Generator(z_dim=16, g_channels=8, image_size=32).apply(models.weights_init)
    out = sampling.recalibrate_batchnorm(G, batches=3, batch_size=6, seed=5)
    assert not out.training and G.main[1].num_batches_tracked == 0  # G itself untouched
    # by hand: the first BatchNorm's input for each batch, its per-batch mean and variance
    latents = torch.Generator().manual_seed(5)
    means, variances = [], []
    for _ in range(3):
        h = G.main[0](torch.randn(6, 16, generator=latents).reshape(6, 16, 1, 1))
        means.append(h.mean((0, 2, 3)))
        variances.append(h.var((0, 2, 3), unbiased=True))
    bn = out.main[1]
    assert torch.allclose(bn.running_mean, torch.stack(means).mean(0), atol=1e-6)
    assert torch.allclose(bn.running_var, torch.stack(variances).mean(0), rtol=1e-5)
    assert bn.momentum == G.main[1].momentum  # restored for whoever trains the copy


def test_snapshot_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="train"):
        sampling.load_generator(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable generator snapshot"):
        sampling.load_generator(tmp_path / "bad.pt")
    G = models.Generator(z_dim=8, g_channels=4, image_size=32)
    torch.save({"kwargs": G.kwargs, "state_dict": G.state_dict(), "iteration": 1},
               tmp_path / "old.pt")  # format 1: no sampling rule recorded
    with pytest.raises(ValueError, match="format None.*records how BatchNorm samples"):
        sampling.load_generator(tmp_path / "old.pt")


def test_to_uint8_maps_the_range():
    x = torch.tensor([-1.5, -1.0, 0.0, 1.0, 2.0])
    assert models.to_uint8(x).tolist() == [0, 0, 128, 255, 255]
