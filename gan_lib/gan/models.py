"""DCGAN generator and discriminator (Radford et al. 2016) for 1-channel images.

Sizes are constructor arguments; the number of layers follows from ``image_size`` (32, 64, 128):
each stride-2 layer doubles (G) or halves (D) the side, between 4x4 and the image. At 64x64 with
the default widths these are the networks of the PyTorch DCGAN example with one image channel.

With ``n_classes`` > 0 both are class-conditional: G takes the class through conditional
BatchNorm (``conditioning="batchnorm"``, the default: a per-class gain and bias after each
BatchNorm) or as a learned embedding concatenated with z (``"concat"``, the classic conditional
DCGAN, which collapses within each class on these data sets: README.md; snapshots that predate
the option are concat, and :func:`gan_lib.gan.legacy.generator_kwargs` says so when they load);
D is a projection discriminator (Miyato & Koyama 2018), whose logit gains the inner
product of a class embedding with its last feature maps, averaged over positions. The class is
never an input channel. ``n_classes=0`` (the default) is the unconditional DCGAN, unchanged.

Example:
    >>> G, D = Generator(image_size=64), Discriminator(image_size=64)
    >>> count_parameters(G), count_parameters(D)
    (3574656, 2763520)
    >>> D(G(torch.randn(2, 100))).shape
    torch.Size([2])
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from ..config import D_NORMS, G_CONDITIONINGS, G_UPSAMPLINGS

CLASS_DIM = 50  # size of G's class embedding, concatenated with z


def _n_scales(image_size: int) -> int:
    """Stride-2 layers between 4x4 and image_size x image_size (64 -> 4)."""
    if image_size not in (32, 64, 128):
        raise ValueError(f"image_size={image_size}: expected 32, 64 or 128")
    return int(math.log2(image_size)) - 2


class ClassBatchNorm2d(nn.Module):
    """Conditional BatchNorm: normalise as BatchNorm does, then scale and shift per class.

    The gain and bias are rows of class embeddings (de Vries et al. 2017; the generator of
    Miyato & Koyama 2018), initialised as DCGAN initialises BatchNorm's: N(1, 0.02) and 0.
    """

    def __init__(self, channels: int, n_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Embedding(n_classes, channels)
        self.bias = nn.Embedding(n_classes, channels)
        nn.init.normal_(self.gain.weight, 1.0, 0.02)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (self.bn(x) * self.gain(y)[:, :, None, None]
                + self.bias(y)[:, :, None, None])


class Generator(nn.Module):
    """z [N, z_dim] (and class labels y [N] if conditional) -> image [N, nc, S, S] in [-1, 1].

    A conditional G takes its class one of two ways (``conditioning``): ``"concat"``, a learned
    50-d embedding concatenated with z; or ``"batchnorm"``, a per-class gain and bias after
    every BatchNorm (:class:`ClassBatchNorm2d`), z alone at the input.
    """

    def __init__(self, z_dim: int = 100, g_channels: int = 64, image_size: int = 64, nc: int = 1,
                 n_classes: int = 0, conditioning: str = "batchnorm",
                 upsample: str = "transposed"):
        super().__init__()
        if conditioning not in G_CONDITIONINGS:
            raise ValueError(f"conditioning={conditioning!r}: expected one of {G_CONDITIONINGS}")
        if upsample not in G_UPSAMPLINGS:
            raise ValueError(f"upsample={upsample!r}: expected one of {G_UPSAMPLINGS}")
        self.kwargs = dict(z_dim=z_dim, g_channels=g_channels, image_size=image_size, nc=nc)
        if n_classes:
            self.kwargs.update(n_classes=n_classes, conditioning=conditioning)
        if upsample != "transposed":  # the DCGAN's snapshots keep the arguments they always had
            self.kwargs.update(upsample=upsample)
        self.z_dim, self.n_classes = z_dim, n_classes
        concat = bool(n_classes) and conditioning == "concat"
        class_bn = bool(n_classes) and conditioning == "batchnorm"
        # a class's embedding starts like a latent: N(0, 1) (nn.Embedding's own init)
        self.embed = nn.Embedding(n_classes, CLASS_DIM) if concat else None

        def norm(ch: int) -> nn.Module:
            return ClassBatchNorm2d(ch, n_classes) if class_bn else nn.BatchNorm2d(ch)

        n = _n_scales(image_size)
        ch = g_channels * 2 ** (n - 1)  # 64 px: 512 feature maps at 4x4
        layers: list[nn.Module] = [
            # [N, z_dim (+ CLASS_DIM), 1, 1] -> [N, ch, 4, 4]
            nn.ConvTranspose2d(z_dim + (CLASS_DIM if concat else 0), ch, 4, 1, 0, bias=False),
            norm(ch),
            nn.ReLU(True),
        ]
        for _ in range(n - 1):
            # [N, ch, s, s] -> [N, ch/2, 2s, 2s]
            layers += [*_upsample(ch, ch // 2, upsample), norm(ch // 2), nn.ReLU(True)]
            ch //= 2
        # [N, g_channels, S/2, S/2] -> [N, nc, S, S]
        layers += [*_upsample(ch, nc, upsample), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        z = z.reshape(z.shape[0], self.z_dim)
        if not self.n_classes:
            if y is not None:
                raise ValueError("class labels given to an unconditional generator (n_classes=0)")
            return self.main(z[:, :, None, None])
        y = _labels(y, self.n_classes, len(z))
        if self.embed is not None:
            return self.main(torch.cat([z, self.embed(y)], 1)[:, :, None, None])
        x = z[:, :, None, None]
        for layer in self.main:
            x = layer(x, y) if isinstance(layer, ClassBatchNorm2d) else layer(x)
        return x


def _upsample(c_in: int, c_out: int, how: str) -> list[nn.Module]:
    """[N, c_in, s, s] -> [N, c_out, 2s, 2s]. "transposed": the DCGAN's 4x4 stride-2 transposed
    convolution, in which even and odd output pixels are made by different kernel taps, so any
    imbalance the weights learn shows as a checkerboard; "resize": nearest-neighbour x2, then a
    3x3 convolution that treats every output pixel alike (Odena, Dumoulin & Olah, Distill 2016)."""
    if how == "transposed":
        return [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)]
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)]


class MinibatchStd(nn.Module):
    """One more feature map: the standard deviation of each feature over a group of images,
    averaged over features and positions (Karras et al. 2018). D then sees how varied a batch
    is, so a G that collapses to a few images is easy to reject.

    [N, C, H, W] -> [N, C + 1, H, W]; groups of ``group_size`` images (or the largest divisor
    of N below it), so each image's extra map depends on its group only.

    >>> x = torch.ones(8, 3, 4, 4)
    >>> x[4:] = 3.0  # images i and i + 4 share a group and differ by 2: sd 1
    >>> MinibatchStd(group_size=2)(x)[:, 3].unique().tolist()
    [1.0]
    """

    def __init__(self, group_size: int = 4):
        super().__init__()
        self.group_size = group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        g = max(d for d in range(1, min(self.group_size, n) + 1) if n % d == 0)
        y = x.float().reshape(g, n // g, c, h, w)  # image i is in group i % (n // g)
        sd = (y.var(0, unbiased=False) + 1e-8).sqrt().mean((1, 2, 3))  # [n // g]
        sd = sd.to(x.dtype)[:, None, None, None].repeat(g, 1, h, w)  # [n, 1, h, w]
        return torch.cat([x, sd], 1)


class Discriminator(nn.Module):
    """image [N, nc, S, S] (and labels y [N] if conditional) -> logit [N] (BCE on logits)."""

    def __init__(self, d_channels: int = 64, image_size: int = 64, nc: int = 1,
                 n_classes: int = 0, norm: str = "batchnorm", mbstd: bool = False,
                 classifier: bool = False):
        super().__init__()
        if norm not in D_NORMS:
            raise ValueError(f"norm={norm!r}: expected one of {D_NORMS}")
        self.kwargs = dict(d_channels=d_channels, image_size=image_size, nc=nc)
        self.n_classes = n_classes
        n = _n_scales(image_size)
        # [N, nc, S, S] -> [N, d_channels, S/2, S/2]; no BatchNorm on the input layer (DCGAN)
        layers: list[nn.Module] = [
            nn.Conv2d(nc, d_channels, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        ch = d_channels
        for _ in range(n - 1):
            # [N, ch, s, s] -> [N, 2ch, s/2, s/2]
            layers += [
                nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False),
                *([nn.BatchNorm2d(ch * 2)] if norm == "batchnorm" else []),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            ch *= 2
        if mbstd:  # [N, ch, 4, 4] -> [N, ch + 1, 4, 4]
            layers.append(MinibatchStd())
        # [N, ch (+ 1), 4, 4] -> [N, 1, 1, 1]
        layers.append(nn.Conv2d(ch + int(mbstd), 1, 4, 1, 0, bias=False))
        self.main = nn.Sequential(*layers)
        self.features = len(layers) - 1 - int(mbstd)  # main[:features]: [N, ch, 4, 4]
        self.embed = None
        if n_classes:  # the projection's class embedding: small at first, as D's weights are
            self.embed = nn.Embedding(n_classes, ch)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        self.spectral = norm == "spectral"
        # AC-GAN's auxiliary classifier: class logits from the last features, averaged over
        # positions (as the projection reads them)
        self.classifier = nn.Linear(ch, n_classes) if classifier and n_classes else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                classify: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The logit [N]; with ``classify=True`` also the auxiliary classifier's class logits
        [N, n_classes] (AC-GAN), from the same forward pass."""
        if classify and self.classifier is None:
            raise ValueError("classify=True: this discriminator has no auxiliary classifier "
                             "(build it with n_classes > 0 and classifier=True)")
        if self.embed is None:
            if y is not None:
                raise ValueError("class labels given to an unconditional discriminator")
            return self.main(x).flatten()
        h = self.main[:self.features](x)  # [N, ch, 4, 4]
        pooled = h.mean((2, 3))  # [N, ch]
        projection = (self.embed(_labels(y, self.n_classes, len(x))) * pooled).sum(1)
        logit = self.main[self.features:](h).flatten() + projection
        return (logit, self.classifier(pooled)) if classify else logit

    def normalise_spectrally(self) -> Discriminator:
        """Spectral normalisation of every weight of D (norm="spectral"), torch's own
        parametrisation: each forward in training mode does one power iteration. Call after
        the weights are initialised (:func:`weights_init` initialises the raw weights either
        way). The projection's embedding is normalised too, as in Miyato & Koyama 2018."""
        if self.spectral:
            for m in self.modules():
                if isinstance(m, nn.Conv2d | nn.Embedding) and not parametrize.is_parametrized(m):
                    spectral_norm(m)
        return self


def _labels(y: torch.Tensor | None, n_classes: int, n: int) -> torch.Tensor:
    """Check the class labels a conditional network was given."""
    if y is None:
        raise ValueError(f"this network is class-conditional ({n_classes} classes): pass the "
                         "class labels y, int64 [N] in 0..n_classes-1")
    if y.shape != (n,) or y.dtype != torch.long:
        raise ValueError(f"class labels: expected int64 [{n}], got {y.dtype} {tuple(y.shape)}")
    return y


def weights_init(m: nn.Module) -> None:
    """DCGAN init: conv weights N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0. Use ``net.apply``."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        weight = (m.parametrizations.weight.original if parametrize.is_parametrized(m, "weight")
                  else m.weight)  # spectral normalisation: the raw weight it normalises
        nn.init.normal_(weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d) and m.affine:  # ClassBatchNorm2d inits its own
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> uint8 0..255 (the range Inception extractors expect)."""
    return ((x.float() + 1) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


def unwrap(net: nn.Module) -> nn.Module:
    """The plain module behind torch.compile's and DDP's wrappers."""
    net = getattr(net, "_orig_mod", net)
    return net.module if isinstance(net, nn.parallel.DistributedDataParallel) else net
