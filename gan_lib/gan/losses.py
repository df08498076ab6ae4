"""The adversarial losses a run can train with, and the R1 penalty: what D and G minimise.

``bce`` is the report's DCGAN (Goodfellow et al. 2014, G's non-saturating form); ``hinge`` is
the loss of SNGAN / SAGAN / BigGAN (Lim & Ye 2017). Both take D's logits (fp32) and return
a scalar. :func:`r1_penalty` is Mescheder et al.'s (2018) gradient penalty on real images, the
regulariser that makes GAN training converge locally; StyleGAN2's lazy form applies it every
``r1_every`` D steps, scaled by ``r1_every`` so that its average weight is unchanged.

Example:
    >>> real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-2.0, 0.5])
    >>> round(d_loss(real, fake, "hinge").item(), 3), round(g_loss(fake, "hinge").item(), 3)
    (1.0, 0.75)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Objective:
    """What a run's two updates minimise: the loss and the R1 penalty's weight and period."""

    loss: str = "bce"
    r1_gamma: float = 0.0  # 0: no penalty (the DCGAN)
    r1_every: int = 16
    ac_weight: float = 0.0  # AC-GAN's class cross-entropy weight; 0: no auxiliary classifier

    def r1_due(self, step: int) -> bool:
        """Whether the D update of ``step`` (0-based) carries the lazy R1 penalty."""
        return self.r1_gamma > 0 and step % self.r1_every == 0


def d_loss(logit_real: torch.Tensor, logit_fake: torch.Tensor, loss: str) -> torch.Tensor:
    """D's loss on one real and one fake batch of logits.

    bce: -log D(x) - log(1 - D(G(z))), i.e. BCE with target 1 on real, 0 on fake;
    hinge: E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))] (D(.) a logit: no sigmoid).
    """
    if loss == "bce":
        ones = torch.ones_like(logit_real)
        return (F.binary_cross_entropy_with_logits(logit_real, ones)
                + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(ones)))
    if loss == "hinge":
        return F.relu(1 - logit_real).mean() + F.relu(1 + logit_fake).mean()
    raise ValueError(f"loss={loss!r}: expected 'bce' or 'hinge'")


def g_loss(logit_fake: torch.Tensor, loss: str) -> torch.Tensor:
    """G's loss on its fakes as scored by D.

    bce: -log D(G(z)), the non-saturating loss (log(1 - D(G(z))) would give G almost no
    gradient while D rejects its fakes); hinge: -E[D(G(z))].
    """
    if loss == "bce":
        return F.binary_cross_entropy_with_logits(logit_fake, torch.ones_like(logit_fake))
    if loss == "hinge":
        return -logit_fake.mean()
    raise ValueError(f"loss={loss!r}: expected 'bce' or 'hinge'")


def judge(D: torch.nn.Module, x: torch.Tensor, labels: torch.Tensor | None,
          classify: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """D's logits for ``x``, and its auxiliary class logits when ``classify`` (AC-GAN; else
    None), from one forward pass."""
    return D(x, labels, classify=True) if classify else (D(x, labels), None)


def class_loss(class_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """AC-GAN's auxiliary term: cross-entropy of the class logits against ``labels`` (fp32)."""
    return F.cross_entropy(class_logits.float(), labels)


def r1_penalty(logit_real: torch.Tensor, real_in: torch.Tensor) -> torch.Tensor:
    """E over the batch of ||d D(x) / d x||^2 for the images ``real_in`` (which required grad)
    that gave ``logit_real``; the graph is kept so that the penalty trains D
    (``torch.autograd.grad`` with ``create_graph=True``).

    >>> x = torch.ones(2, 1, 2, 2, requires_grad=True)
    >>> r1_penalty((3 * x).sum((1, 2, 3)), x).item()  # d/dx = 3 at 4 pixels: 4 * 9
    36.0
    """
    (grad,) = torch.autograd.grad(logit_real.float().sum(), real_in, create_graph=True)
    return grad.float().square().sum((1, 2, 3)).mean()


__all__ = ["Objective", "d_loss", "g_loss", "judge", "class_loss", "r1_penalty"]
