"""DiffAugment: each op keeps shape, dtype and range, changes the images, passes gradients to
G, draws its randomness from (seed, step, call) only; an empty policy is the identity."""

from __future__ import annotations

import pytest
import torch

from gan_lib import config
from gan_lib.gan import augment, models, train
from gan_lib.gan.augment import Augment


def images(n=6, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g) * 2 - 1  # in [-1, 1]


@pytest.mark.parametrize("op", augment.OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_each_op_keeps_shape_dtype_and_range_and_changes_the_images(op, dtype):
    x = images().to(dtype)
    y = Augment(op, seed=0)(x, step=3, call=1)
    assert y.shape == x.shape and y.dtype == dtype
    assert y.min() >= -1 and y.max() <= 1
    changed = (y != x).flatten(1).any(1)
    assert changed.float().mean() > 0.5, f"{op} left most images as they were"


def test_translation_shifts_whole_images_and_fills_with_black():
    x = torch.zeros(64, 1, 16, 16)
    x[:, :, 6:10, 6:10] = 1.0  # a white square in the middle of a grey image
    y = Augment("translation", seed=0)(x, step=0, call=0)
    assert torch.equal((y == 1).flatten(1).sum(1), torch.full((64,), 16))  # square kept whole
    assert (y == -1).any()  # black came in from the border where an image moved
    assert ((y == -1).flatten(1).any(1)).float().mean() > 0.5


def test_cutout_zeroes_a_square_of_half_the_side():
    x = torch.ones(64, 1, 16, 16)
    y = Augment("cutout", seed=0)(x, step=0, call=0)
    zeroed = (y == 0).flatten(1).sum(1)
    assert zeroed.max() == 64 and zeroed.min() > 0  # 8 x 8 inside, clipped at the border


def test_randomness_depends_on_seed_step_and_call_only():
    x = images()
    aug = Augment("translation,cutout,brightness,contrast", seed=5)
    assert torch.equal(aug(x, 7, 0), Augment("translation,cutout,brightness,contrast",
                                             seed=5)(x, 7, 0))
    assert not torch.equal(aug(x, 7, 0), aug(x, 8, 0))
    assert not torch.equal(aug(x, 7, 0), aug(x, 7, 1))
    assert not torch.equal(aug(x, 7, 0), Augment("translation,cutout,brightness,contrast",
                                                 seed=6)(x, 7, 0))


def test_a_rank_transforms_its_slice_of_the_global_batch_as_one_process_would():
    x = images(n=12)
    policy = "translation,cutout,brightness,contrast"
    whole = Augment(policy, seed=3)(x, 5, 2)
    parts = [Augment(policy, seed=3, shard=(r, 3))(x[4 * r:4 * (r + 1)], 5, 2) for r in range(3)]
    assert torch.equal(torch.cat(parts), whole)
    assert not torch.equal(parts[1], Augment(policy, seed=3)(x[4:8], 5, 2))  # not rank 0's draws


def test_gradients_flow_through_every_op_to_the_generator():
    G = models.Generator(z_dim=8, g_channels=8, image_size=32)
    for op in augment.OPS:
        G.zero_grad()
        Augment(op, seed=0)(G(torch.randn(4, 8)), 0, 2).square().sum().backward()
        grads = [p.grad for p in G.parameters() if p.grad is not None]
        assert grads and any(g.abs().sum() > 0 for g in grads), op


def test_empty_policy_is_the_identity_and_unknown_ops_are_refused():
    x = images()
    assert Augment("", seed=0)(x, 1, 0) is x and not Augment("", seed=0)
    with pytest.raises(ValueError, match="flip.*translation"):
        augment.parse_policy("translation,flip")
    with pytest.raises(ValueError, match="augment='flip'"):
        config.make_train_config("smoke", augment="flip")


def test_a_training_step_sees_augmented_batches(one_thread):
    """The same step with and without augmentation gives other losses: D saw other images."""
    cfg = config.make_train_config("smoke", g_channels=8, d_channels=8, image_size=32,
                                   batch_size=8, precision="fp32", device="cpu")
    real, z = images(8), torch.randn(8, cfg.z_dim, generator=torch.Generator().manual_seed(1))
    results = {}
    for policy in ("", "translation,cutout"):
        torch.manual_seed(0)
        nets = train.build_nets(cfg, torch.device("cpu"))
        results[policy] = train.train_step(nets, real, z, torch.autocast("cpu", enabled=False),
                                           Augment(policy, cfg.seed), step=0)
    torch.manual_seed(0)
    plain = train.train_step(train.build_nets(cfg, torch.device("cpu")), real, z,
                             torch.autocast("cpu", enabled=False))
    assert torch.equal(results[""], plain)  # an empty policy changes nothing
    assert not torch.allclose(results["translation,cutout"], plain)
