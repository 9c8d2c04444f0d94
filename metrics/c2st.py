"""Classifier two-sample test (Lopez-Paz & Oquab 2017): can a classifier tell real from fake?

The protocol (held out, early stopped):

* real (label 1) and generated (label 0) images are each shuffled and halved: the **test**
  half (⌊n/2⌋ per side) is touched once, at the end; the **training** half is split again
  into a **fit** part (the classifier's gradient steps) and a **validation** part
  (``val_fraction`` of it, both sides equally);
* a DCGAN-shaped discriminator (Radford et al. 2016, the classifier the suite's source
  study used) is fitted with BCE-with-logits and the DCGAN Adam settings for up to
  ``epochs`` epochs; after each epoch its BatchNorm averages are re-estimated on the fit
  part and its loss on the validation part is measured. Candidate 0 is the constant
  classifier p = 1/2 (loss ln 2): the classifier kept is the candidate of lowest
  validation loss (ties: the earlier), and training stops once ``patience`` epochs in a
  row failed to improve on it;
* that classifier is scored on the test half: its **accuracy** with the exact binomial
  test of "accuracy = 1/2" and a Clopper-Pearson interval (Lopez-Paz & Oquab's statistic),
  and its **held-out log loss** turned into ``c2st_jsd`` = 1 − BCE / ln 2 (bits).

Why the log loss. For any classifier D, E_P[log D] + E_Q[log(1 − D)] ≤ 2 JSD(P, Q) − log 4
(Goodfellow et al. 2014, Prop. 1 and Thm. 1), so on a balanced test set 1 − BCE / ln 2 is an
unbiased estimate of a lower bound on the Jensen–Shannon divergence in bits (0 … 1): 0 when
no classifier does better than chance, 1 only when it separates the two with certainty. The
accuracy saturates: once the classifier makes no test error (an untrained generator, but at
small budgets also a trained one) two generators tie at 1.0 however differently hard they
were to tell apart; the log loss still measures how confidently, after the same early-stopped
fit, the classifier tells them apart, so it keeps ordering them. Measured on the checkpoints
of one training at 0, 500, 1000 and 1500 steps on digits (smoke settings, two evaluation
seeds): strictly in order for DCGAN, SAGAN, InfoGAN, InfoGAN-IIC, COCO-GAN and IF-GAN, where
the accuracy tied most of them at 1.0; not for StyleGAN, whose every smoke-budget checkpoint
is told apart with certainty by a classifier of any width tried (8-32), so that their log
losses differ by the classifier's own noise (c2st_jsd 0.985-0.996).
Under H0 the selected classifier is often the constant one (accuracy exactly 1/2, JSD 0);
otherwise the estimate may fall slightly below 0 (a classifier worse than chance on new data).
``c2st_jsd_stderr`` is the standard error of the mean of the per-image test losses
(independent given the classifier): it covers the test images, not the classifier's training,
whose seed moves near-separable cases by up to a few of these errors.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from ganbench.core.evaluator import EvalContext, Evaluator
from ganbench.core.nets import DCGANDiscriminator, dcgan_init
from ganbench.core.params import Range
from ganbench.core.registry import register_metric
from ganbench.core.scores import (
    TESTS,
    VERY_NOISY,
    Score,
    count_score,
    interval_scores,
    p_value_score,
)

from ._stats import chance_test, paired_samples

LN2 = math.log(2.0)


def _splits(
    n: int, val_fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices into real ∪ fake (real first, n each) of the fit, validation and test parts,
    each balanced: per side ⌊n/2⌋ test images, and of the rest round(val_fraction · rest)
    (at least 1) validation images."""
    n_test = n // 2
    n_val = min(max(1, round((n - n_test) * val_fraction)), n - n_test - 1)
    real = torch.randperm(n, generator=generator)
    fake = n + torch.randperm(n, generator=generator)

    def part(a: int, b: int) -> torch.Tensor:
        return torch.cat([real[a:b], fake[a:b]])

    return part(n_test + n_val, n), part(n_test, n_test + n_val), part(0, n_test)


def _fit_early_stopped(
    images: torch.Tensor,
    labels: torch.Tensor,
    fit: torch.Tensor,
    val: torch.Tensor,
    generator: torch.Generator,
    *,
    width: int,
    epochs: int,
    patience: int,
    batch_size: int,
    lr: float,
) -> tuple[nn.Module | None, int, float]:
    """The DCGAN discriminator fitted on ``fit``, kept at the epoch of lowest loss on ``val``.

    Returns (classifier in eval mode or None for the constant p = 1/2, its epoch (0 for the
    constant), its validation loss)."""
    _, channels, height, _ = images.shape
    classifier = DCGANDiscriminator(width, channels, height)
    classifier.apply(dcgan_init)
    classifier.to(images.device)
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr, betas=(0.5, 0.999))
    loss_fn = nn.BCEWithLogitsLoss()
    best_state, best_epoch, best_loss = None, 0, LN2  # candidate 0: the constant classifier
    for epoch in range(1, epochs + 1):
        classifier.train()
        order = fit[torch.randperm(len(fit), generator=generator).to(fit.device)]
        for batch in order.split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(classifier(images[batch]), labels[batch]).backward()
            optimizer.step()
        # BatchNorm's running averages trail the weights: re-estimate them on the fit part,
        # in shuffled batches that mix real and fake as the training batches did
        order = fit[torch.randperm(len(fit), generator=generator).to(fit.device)]
        torch.optim.swa_utils.update_bn(images[order].split(batch_size), classifier)
        classifier.eval()
        with torch.no_grad():
            logits = torch.cat([classifier(images[b]) for b in val.split(256)])
            loss = float(loss_fn(logits.double(), labels[val].double()))
        if loss < best_loss:
            best_state, best_epoch, best_loss = copy.deepcopy(classifier.state_dict()), epoch, loss
        elif epoch - best_epoch >= patience:
            break
    if best_state is None:
        return None, 0, best_loss
    classifier.load_state_dict(best_state)
    return classifier.eval(), best_epoch, best_loss


def c2st(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    seed: int,
    width: int,
    epochs: int,
    batch_size: int,
    lr: float,
    patience: int = 10,
    val_fraction: float = 0.25,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Held-out accuracy and log-loss JSD bound of an early-stopped classifier (module doc).

    ``real`` and ``fake`` are (n, C, S, S) images, S a power of two >= 8. Everything random
    is seeded from ``seed``; the global RNG state is left as it was.
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"C2ST needs equally shaped samples, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    n, _, height, width_px = real.shape
    if height != width_px:
        raise ValueError(f"C2ST needs square images, got {height}x{width_px}")
    if n < 4:
        raise ValueError(f"C2ST needs at least 4 images per side, got {n}")
    device = real.device if device is None else torch.device(device)
    images = torch.cat([real, fake]).detach().to(device, torch.get_default_dtype())
    labels = torch.cat([torch.ones(n), torch.zeros(n)]).to(device, images.dtype)

    generator = torch.Generator().manual_seed(seed)
    fit, val, test = (part.to(device) for part in _splits(n, val_fraction, generator))
    # The weights are initialised on the CPU and training draws no random numbers, so only the
    # CPU generator is seeded (torch.manual_seed would reseed every GPU too) and then restored.
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.default_generator.manual_seed(seed)
        classifier, epoch, val_loss = _fit_early_stopped(
            images,
            labels,
            fit,
            val,
            generator,
            width=width,
            epochs=epochs,
            patience=patience,
            batch_size=batch_size,
            lr=lr,
        )
    return _held_out_scores(classifier, images, labels, test) | {
        "c2st_epoch": float(epoch),
        "c2st_n": float(n),
        "c2st_n_test": float(len(test)),
    }


def _held_out_scores(
    classifier: nn.Module | None, images: torch.Tensor, labels: torch.Tensor, test: torch.Tensor
) -> dict[str, float]:
    """The kept classifier (None: the constant p = 1/2) scored on the test half: the log-loss
    JSD bound and its standard error, the accuracy, its binomial p-value and interval."""
    with torch.no_grad():
        if classifier is None:
            logits = torch.zeros(len(test), dtype=torch.float64, device=images.device)
        else:
            logits = torch.cat([classifier(images[b]) for b in test.split(256)]).double()
    truth = labels[test].double()
    n_test = len(test)
    n_correct = int(((logits > 0).double() == truth).sum())
    losses = nn.functional.binary_cross_entropy_with_logits(logits, truth, reduction="none")
    p_value, ci_low, ci_high = chance_test(n_correct, n_test)
    return {
        "c2st_jsd": 1.0 - float(losses.mean()) / LN2,
        "c2st_jsd_stderr": float(losses.std()) / math.sqrt(n_test) / LN2,
        "c2st_accuracy": n_correct / n_test,
        "c2st_p_value": p_value,
        "c2st_ci_low": ci_low,
        "c2st_ci_high": ci_high,
    }


@register_metric("c2st")
class C2ST(Evaluator):
    """Classifier two-sample test between real test images and generated images, with a
    held-out test half and early stopping on a validation part of the training half."""

    group = TESTS

    version = "2"
    defaults = {
        "n": 500,
        "width": 32,
        "epochs": 30,
        "patience": 10,
        "val_fraction": 0.25,
        "batch_size": 64,
        "lr": 2e-4,
    }
    ranges = {
        "epochs": Range(low=1),
        "patience": Range(low=1),
        "val_fraction": Range(low=0, high=1, low_open=True, high_open=True),
    }
    scores = (
        Score(
            "c2st_jsd",
            "lower",
            "1 − held-out log loss / ln 2 of an early-stopped DCGAN-shaped classifier telling "
            "real from generated: a lower bound on their Jensen–Shannon divergence in bits; "
            "0 = indistinguishable, 1 = separated with certainty (keeps ordering models whose "
            "accuracy is 1.0)",
            ideal=0.0,
        ),
        Score(
            "c2st_jsd_stderr",
            "none",
            "standard error of c2st_jsd (the per-image test losses' spread)",
            primary=False,
        ),
        Score(
            "c2st_accuracy",
            "none",
            "held-out accuracy of the same classifier; 0.5 = indistinguishable, 1.0 = separable "
            "(saturates: ranked by c2st_jsd)",
            ideal=0.5,
        ),
        p_value_score(
            "c2st_p_value",
            "one-sided exact binomial p-value of H0: held-out accuracy is chance (1/2)",
        ),
        *interval_scores("c2st", of="the held-out accuracy"),
        Score(
            "c2st_epoch",
            "none",
            "epoch of the classifier kept (lowest validation loss; 0 = the constant p = 1/2)",
            primary=False,
            tolerance=VERY_NOISY,
        ),
        count_score("c2st_n", "images per side used (real and generated)"),
        count_score("c2st_n_test", "held-out images the accuracy is measured on"),
    )

    def evaluate(self, ctx: EvalContext) -> dict[str, float]:
        """C2ST on up to ``n`` real test images and as many generated ones."""
        p = self.params
        reals, fakes = paired_samples(ctx, p["n"])
        return c2st(
            reals,
            fakes,
            seed=ctx.seed,
            width=p["width"],
            epochs=p["epochs"],
            patience=p["patience"],
            val_fraction=p["val_fraction"],
            batch_size=p["batch_size"],
            lr=p["lr"],
        )
