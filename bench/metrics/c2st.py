"""Classifier two-sample test (Lopez-Paz & Oquab 2017): can a classifier tell real from fake?"""

from __future__ import annotations

import torch
from scipy.stats import binomtest
from torch import nn

from ganbench.architectures.dcgan import DCGANDiscriminator, dcgan_init
from ganbench.evaluator import EvalContext, Evaluator
from ganbench.registry import register_metric
from ganbench.scores import EXACT, Score

from ._stats import paired_samples


def _train_test_indices(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Shuffled indices into real ∪ fake (real first, n each), split so both halves are balanced."""
    n_test = n // 2
    real_order = torch.randperm(n, generator=generator)
    fake_order = n + torch.randperm(n, generator=generator)
    train = torch.cat([real_order[n_test:], fake_order[n_test:]])
    test = torch.cat([real_order[:n_test], fake_order[:n_test]])
    return train, test


def _train_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    generator: torch.Generator,
    *,
    width: int,
    epochs: int,
    batch_size: int,
    lr: float,
) -> nn.Module:
    """A DCGAN discriminator fitted with BCE-with-logits and the DCGAN Adam settings."""
    _, channels, height, _ = images.shape
    classifier = DCGANDiscriminator(width, channels, height)
    classifier.apply(dcgan_init)
    classifier.to(images.device).train()
    optimizer = torch.optim.Adam(classifier.parameters(), lr=lr, betas=(0.5, 0.999))
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator).to(images.device)
        for batch in order.split(batch_size):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(classifier(images[batch]), labels[batch]).backward()
            optimizer.step()
    # Running BatchNorm averages trail the weights after few steps: re-estimate them at the end,
    # over shuffled batches that mix real and fake as the training batches did.
    order = torch.randperm(len(images), generator=generator).to(images.device)
    torch.optim.swa_utils.update_bn(images[order].split(batch_size), classifier)
    return classifier.eval()


def c2st(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    seed: int,
    width: int,
    epochs: int,
    batch_size: int,
    lr: float,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Held-out accuracy of a classifier trained on half of real ∪ fake, with its binomial test.

    ``real`` and ``fake`` are (n, C, S, S) images, S a power of two >= 8. Real is labelled 1,
    fake 0; each side is shuffled and halved, so train and test halves are both balanced.
    Everything random is seeded from ``seed``; the global RNG state is left as it was.
    """
    if real.shape != fake.shape:
        raise ValueError(
            f"C2ST needs equally shaped samples, got {tuple(real.shape)} and {tuple(fake.shape)}"
        )
    n, _, height, width_px = real.shape
    if height != width_px:
        raise ValueError(f"C2ST needs square images, got {height}x{width_px}")
    if n < 2:
        raise ValueError(f"C2ST needs at least 2 images per side, got {n}")
    device = real.device if device is None else torch.device(device)
    images = torch.cat([real, fake]).detach().to(device, torch.get_default_dtype())
    labels = torch.cat([torch.ones(n), torch.zeros(n)]).to(device)

    generator = torch.Generator().manual_seed(seed)
    train, test = _train_test_indices(n, generator)
    train, test = train.to(device), test.to(device)
    # The weights are initialised on the CPU and training draws no random numbers, so only the
    # CPU generator is seeded (torch.manual_seed would reseed every GPU too) and then restored.
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        torch.default_generator.manual_seed(seed)
        classifier = _train_classifier(
            images[train],
            labels[train],
            generator,
            width=width,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
        )
    with torch.no_grad():
        predicted_real = classifier(images[test]) > 0
    n_test = len(test)
    n_correct = int((predicted_real == labels[test].bool()).sum())
    # The interval must come from a two-sided test: proportion_ci follows the test's alternative.
    ci = binomtest(n_correct, n_test).proportion_ci(confidence_level=0.95, method="exact")
    p_value = binomtest(n_correct, n_test, p=0.5, alternative="greater").pvalue
    return {
        "c2st_accuracy": n_correct / n_test,
        "c2st_p_value": float(p_value),
        "c2st_ci_low": float(ci.low),
        "c2st_ci_high": float(ci.high),
        "c2st_n": float(n),
        "c2st_n_test": float(n_test),
    }


@register_metric("c2st")
class C2ST(Evaluator):
    """Classifier two-sample test between real test images and generated images."""

    version = "1"
    defaults = {"n": 500, "width": 32, "epochs": 15, "batch_size": 64, "lr": 2e-4}
    scores = (
        Score(
            "c2st_accuracy",
            "lower",
            "held-out accuracy of a DCGAN-shaped classifier telling real from generated; "
            "0.5 = indistinguishable, 1.0 = trivially separable",
            ideal=0.5,
        ),
        Score(
            "c2st_p_value",
            "none",
            "one-sided exact binomial p-value of H0: held-out accuracy is chance (1/2)",
        ),
        Score(
            "c2st_ci_low",
            "none",
            "lower end of the 95% Clopper-Pearson interval of the held-out accuracy",
            primary=False,
        ),
        Score(
            "c2st_ci_high",
            "none",
            "upper end of the 95% Clopper-Pearson interval of the held-out accuracy",
            primary=False,
        ),
        Score(
            "c2st_n",
            "none",
            "images per side used (real and generated)",
            primary=False,
            tolerance=EXACT,
        ),
        Score(
            "c2st_n_test",
            "none",
            "held-out images the accuracy is measured on",
            primary=False,
            tolerance=EXACT,
        ),
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
            batch_size=p["batch_size"],
            lr=p["lr"],
        )
