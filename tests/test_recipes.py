"""The training options beyond the report's DCGAN: each off by default (the DCGAN step is the
tutorial's, bit for bit) and each doing what it says when on."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gan_lib import config, data, device, storage
from gan_lib.gan import losses, models, sampling, train, trainable
from gan_lib.gan.augment import NO_AUGMENT
from tests.test_train import fake_dataset, tiny

FP32 = device.autocast_context("fp32", torch.device("cpu"))
RECIPE = dict(g_upsample="resize", d_norm="spectral", d_mbstd=True, loss="hinge", lr=1e-4,
              lr_d=4e-4, beta1=0.0, beta2=0.9, r1_gamma=0.1, r1_every=2,
              augment="translation,cutout", ema_decay=0.9)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    pass


@pytest.fixture
def fake_data(monkeypatch):
    monkeypatch.setattr(data, "load_dataset", lambda source="auto", split="train",
                        image_size=64, resize="crop": fake_dataset(source, split, image_size))


def step_inputs(cfg):
    g = torch.Generator().manual_seed(5)
    real = torch.rand(cfg.batch_size, 1, cfg.image_size, cfg.image_size, generator=g) * 2 - 1
    return real, torch.randn(cfg.batch_size, cfg.z_dim, generator=g)


def test_the_default_step_is_the_tutorials_bit_for_bit():
    """The report's DCGAN: train_step with default settings equals pytorch/examples' dcgan
    update written out here (BCE, D on real then fake, G's non-saturating loss, Adam 2e-4/0.5)."""
    cfg = tiny()
    ours = trainable.build_nets(cfg, torch.device("cpu"))
    G, D = copy.deepcopy(ours.G), copy.deepcopy(ours.D)
    opt_G = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    real, z = step_inputs(cfg)
    for step in range(3):
        train.train_step(ours, real, z, FP32, NO_AUGMENT, step)
        # the tutorial's step
        label = torch.ones(len(real))
        D.zero_grad()
        err_real = F.binary_cross_entropy_with_logits(D(real).float(), label)
        fake = G(z)
        err_fake = F.binary_cross_entropy_with_logits(D(fake.detach()).float(), label * 0)
        (err_real + err_fake).backward()
        opt_D.step()
        G.zero_grad()
        F.binary_cross_entropy_with_logits(D(fake).float(), label).backward(
            inputs=list(G.parameters()))
        opt_G.step()
    for mine, theirs in ((ours.G, G), (ours.D, D)):
        a, b = mine.state_dict(), theirs.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_defaults_are_the_dcgan():
    cfg = config.TrainConfig()
    built = trainable.build_nets(cfg, torch.device("cpu"))
    assert any(isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2) for m in built.G.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in built.D.modules())
    assert not any(isinstance(m, models.MinibatchStd) for m in built.D.modules())
    assert built.objective == losses.Objective("bce", 0.0, 16)
    assert built.opt_D.defaults["lr"] == 2e-4 and built.opt_D.defaults["betas"] == (0.5, 0.999)
    assert "upsample" not in models.unwrap(built.G).kwargs  # snapshots as they always were


def test_resize_convolution_generator_upsamples_without_transposed_convolutions(tmp_path):
    G = models.Generator(g_channels=8, image_size=32, upsample="resize").apply(models.weights_init)
    kinds = [type(m) for m in G.main]
    assert kinds.count(nn.Upsample) == 3  # 4 -> 8 -> 16 -> 32
    assert not any(isinstance(m, nn.ConvTranspose2d) and m.stride != (1, 1) for m in G.modules())
    assert all(m.kernel_size == (3, 3) for m in G.modules() if isinstance(m, nn.Conv2d))
    assert G(torch.randn(2, 100)).shape == (2, 1, 32, 32)
    # its snapshots rebuild the same network (the option is in the saved arguments)
    rule = sampling.sampling_record(1, 4, 0)
    sampling.save_snapshot(G, tmp_path / "G.pt", 1, rule)
    assert torch.equal(sampling.generate(tmp_path / "G.pt", 4), sampling.generate(G.eval(), 4))


def test_spectral_norm_discriminator_has_unit_spectral_norm_and_no_batchnorm():
    cfg = tiny(d_norm="spectral")
    D = trainable.build_nets(cfg, torch.device("cpu")).D
    assert not any(isinstance(m, nn.BatchNorm2d) for m in D.modules())
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    # the raw weights got the DCGAN init, and each forward's power iteration converges to
    # a normalised weight whose largest singular value is 1
    assert all(abs(m.parametrizations.weight.original.std().item() - 0.02) < 0.01 for m in convs)
    x = torch.randn(8, 1, 32, 32)
    for _ in range(30):
        D(x)
    D.eval()
    for m in convs:
        sigma = torch.linalg.matrix_norm(m.weight.flatten(1), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=0.05)


def test_minibatch_std_feature_lets_d_see_the_batch_spread():
    D = models.Discriminator(d_channels=8, image_size=32, mbstd=True).apply(models.weights_init)
    assert isinstance(D.main[-2], models.MinibatchStd) and D.main[-1].in_channels == 8 * 4 + 1
    D.eval()
    same = torch.zeros(4, 1, 32, 32)
    varied = same.clone()
    varied[1:] = torch.randn(3, 1, 32, 32)
    # image 0 is the same in both batches; only the others' spread reaches its logit
    assert D(same)[0] != D(varied)[0]
    plain = models.Discriminator(d_channels=8, image_size=32).apply(models.weights_init).eval()
    assert plain(same)[0] == plain(varied)[0]


def test_hinge_losses_follow_their_definition():
    real, fake = torch.tensor([2.0, 0.5, -1.0]), torch.tensor([-3.0, 0.0, 1.0])
    expected_d = (0 + 0.5 + 2.0) / 3 + (0 + 1.0 + 2.0) / 3
    assert losses.d_loss(real, fake, "hinge").item() == pytest.approx(expected_d)
    assert losses.g_loss(fake, "hinge").item() == pytest.approx(2.0 / 3)
    assert losses.d_loss(real, fake, "bce").item() == pytest.approx(
        -(torch.log(torch.sigmoid(real)).mean() + torch.log(1 - torch.sigmoid(fake)).mean()))


def test_hinge_run_logs_the_hinge_loss():
    cfg = tiny(loss="hinge")
    built = trainable.build_nets(cfg, torch.device("cpu"))
    real, z = step_inputs(cfg)
    D = copy.deepcopy(built.D)
    with torch.no_grad():
        want = losses.d_loss(D(real), D(built.G(z)), "hinge")
    got = train.train_step(built, real, z, FP32, NO_AUGMENT, 0)[0]
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_ttur_gives_d_its_own_learning_rate_and_betas():
    built = trainable.build_nets(tiny(lr=1e-4, beta1=0.0, beta2=0.9, lr_d=4e-4), torch.device("cpu"))
    assert (built.opt_G.defaults["lr"], built.opt_G.defaults["betas"]) == (1e-4, (0.0, 0.9))
    assert (built.opt_D.defaults["lr"], built.opt_D.defaults["betas"]) == (4e-4, (0.0, 0.9))
    built = trainable.build_nets(tiny(beta1_d=0.5, beta2_d=0.99), torch.device("cpu"))
    assert built.opt_D.defaults["betas"] == (0.5, 0.99) and built.opt_D.defaults["lr"] == 2e-4


@pytest.mark.parametrize("step, due", [(0, True), (1, False), (4, True)])
def test_r1_penalty_is_added_lazily_with_its_weight(step, due):
    gamma, every = 0.5, 4
    cfg = tiny(r1_gamma=gamma, r1_every=every)
    with_r1 = trainable.build_nets(cfg, torch.device("cpu"))
    plain = trainable.build_nets(tiny(), torch.device("cpu"))  # same seed: the same weights
    real, z = step_inputs(cfg)
    x = real.clone().requires_grad_(True)
    penalty = losses.r1_penalty(copy.deepcopy(with_r1.D)(x), x).item()
    a = train.train_step(with_r1, real, z, FP32, NO_AUGMENT, step)[0].item()
    b = train.train_step(plain, real, z, FP32, NO_AUGMENT, step)[0].item()
    extra = gamma / 2 * every * penalty if due else 0.0
    assert penalty > 0 and a - b == pytest.approx(extra, rel=1e-4, abs=1e-7)
    # and the penalty trains D: its weights move differently on a due step
    same = all(torch.equal(p, q) for p, q in zip(with_r1.D.parameters(), plain.D.parameters(),
                                                   strict=True))
    assert same != due


@pytest.mark.parametrize("key, value", [("g_upsample", "bilinear"), ("d_norm", "layer"),
                                        ("loss", "wasserstein"), ("r1_gamma", -1.0),
                                        ("r1_every", 0), ("lr_d", 0.0), ("beta1_d", 1.0)])
def test_bad_option_values_name_the_key(key, value):
    with pytest.raises(ValueError, match=key):
        tiny(**{key: value})


def test_a_recipe_run_trains_resumes_exactly_and_its_snapshots_load(home, fake_data):
    settings = dict(**RECIPE, iterations=6, snapshot_at=(3, 6), checkpoint_every=3)
    whole = train.train(tiny(name="recipe", **settings))
    part = train.train(tiny(name="part", **{**settings, "iterations": 3, "snapshot_at": (3,)}))
    train.train(tiny(name="part", **settings), resume=True)
    a, b = (storage.load_torch(r / "checkpoint.pt") for r in (whole, part))
    for net in ("G", "D"):
        assert all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    G = sampling.load_generator(whole / "snapshots" / "G_iter_000006.pt")
    assert isinstance(G.main[3], nn.Upsample)
    assert sampling.generate(G, 3).shape == (3, 1, 32, 32)


def test_the_recipe_profiles_are_the_dcgan_lengths_with_the_recipe():
    dcgan_defaults = {k: getattr(config.TrainConfig(), k) for k in config.SN_HINGE}
    for length in ("quick", "paper"):
        dcgan = config.make_train_config(length)
        recipe = config.make_train_config(f"sn-hinge-{length}")
        assert {k: getattr(dcgan, k) for k in config.SN_HINGE} == dcgan_defaults
        assert {k: getattr(recipe, k) for k in config.SN_HINGE} == config.SN_HINGE
        for key in ("iterations", "batch_size", "snapshot_at", "image_size"):
            assert getattr(recipe, key) == getattr(dcgan, key)
        assert config.make_score_config(f"sn-hinge-{length}") == config.make_score_config(length)


def test_acgan_adds_the_class_cross_entropy_to_both_updates():
    """conditional + ac_weight: D's loss gains w * CE(D's class guess on the real batch, its
    labels) and G's gains w * CE(D's guess on the fakes, the classes they were asked for)."""
    w = 0.7
    cfg = tiny(conditional=True, ac_weight=w)
    with_ac = trainable.build_nets(cfg, torch.device("cpu"), n_classes=2)
    plain = trainable.build_nets(tiny(conditional=True), torch.device("cpu"), n_classes=2)
    assert with_ac.D.classifier is not None and plain.D.classifier is None
    plain.D.load_state_dict({k: v for k, v in with_ac.D.state_dict().items()
                             if not k.startswith("classifier")})
    plain.G.load_state_dict(with_ac.G.state_dict())  # (the classifier's init moved G's draws)
    real, z = step_inputs(cfg)
    labels = torch.arange(len(real)) % 2
    D_before, G = copy.deepcopy(with_ac.D), copy.deepcopy(with_ac.G)
    with torch.no_grad():
        ce_real = losses.class_loss(D_before(real, labels, classify=True)[1], labels).item()
    a = train.train_step(with_ac, real, z, FP32, NO_AUGMENT, 0, labels)
    b = train.train_step(plain, real, z, FP32, NO_AUGMENT, 0, labels)
    assert (a[0] - b[0]).item() == pytest.approx(w * ce_real, rel=1e-4)
    D_after = copy.deepcopy(with_ac.D)  # G's loss is scored by the updated D
    with torch.no_grad():
        _, class_fake = D_after(G(z, labels), labels, classify=True)
        logit_fake = D_after(G(z, labels), labels)
        want_G = losses.g_loss(logit_fake, "bce") + w * losses.class_loss(class_fake, labels)
    assert a[1].item() == pytest.approx(want_G.item(), rel=1e-4)


def test_acgan_needs_a_conditional_run():
    with pytest.raises(ValueError, match="ac_weight.*conditional=True"):
        tiny(ac_weight=1.0)
    with pytest.raises(ValueError, match="no auxiliary classifier"):
        models.Discriminator(d_channels=8, image_size=32, n_classes=2)(
            torch.zeros(2, 1, 32, 32), torch.tensor([0, 1]), classify=True)


def test_a_recipe_run_is_put_beside_its_dcgan_twin(home):
    """The report's section: the twin is the same run with every option at the DCGAN's value,
    trained once and reused, both scored alike; the panels share latents."""
    from gan_lib.studies import recipe_comparison

    cfg = config.make_train_config("smoke", name="rc", source="phantom", iterations=4,
                                   snapshot_at=(2, 4), checkpoint_every=2, **config.SN_HINGE)
    twin = recipe_comparison.dcgan_twin(cfg)
    assert recipe_comparison.recipe_options(twin) == {}
    others = lambda c: {k: v for k, v in c.to_dict().items()  # noqa: E731
                        if k not in config.SN_HINGE and k != "name"}
    assert others(twin) == others(cfg) and twin.name == "rc-dcgan"
    run_dir = train.train(cfg)
    result = recipe_comparison.compare_with_dcgan(run_dir)
    beyond = {k: v for k, v in config.SN_HINGE.items() if v != getattr(config.TrainConfig(), k)}
    assert result["dcgan"] == "rc-dcgan" and result["options"] == beyond  # lr 2e-4 is the DCGAN's
    assert [r["iteration"] for r in result["rows"]] == [2, 4]
    scores = {name: storage.read_json(home / "runs" / name / "scores.json")
              for name in ("rc", "rc-dcgan")}
    for row in result["rows"]:
        for name, key in (("rc", "fid_recipe"), ("rc-dcgan", "fid_dcgan")):
            assert row[key] == next(r["value"] for r in scores[name]["scores"] if r["metric"]
                                    == "fid" and r["iteration"] == row["iteration"])
    table = recipe_comparison.comparison_table(result)
    assert list(table.columns[:3]) == ["iteration", "FID, DCGAN", "FID, recipe"]
    # the twin is reused, not trained again
    mtime = (home / "runs" / "rc-dcgan" / "checkpoint.pt").stat().st_mtime_ns
    recipe_comparison.compare_with_dcgan(run_dir)
    assert (home / "runs" / "rc-dcgan" / "checkpoint.pt").stat().st_mtime_ns == mtime
    panels = recipe_comparison.real_and_generated([home / "runs" / "rc-dcgan", run_dir], 4, 7)
    assert [p[1].shape for p in panels] == [(4, 1, 64, 64)] * 3
    assert not torch.equal(panels[1][1], panels[2][1])  # two generators, one set of latents
    # the DCGAN itself has no twin, and the report's table row says so
    assert recipe_comparison.compare_with_dcgan(home / "runs" / "rc-dcgan") is None
    assert recipe_comparison.describe_options(twin.to_dict()) == "none (the report's DCGAN)"
