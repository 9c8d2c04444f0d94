"""Vectorised LIME for image attributions, matching captum's ``Lime`` on the same samples.

LIME (Ribeiro, Singh & Guestrin 2016) explains one logit of one image by switching groups
of pixels ("features", here square patches) on and off at random, running the model on
each perturbed image, and fitting a weighted linear model of the logit on the 0/1 on/off
vector. The coefficient of a feature is its attribution; every pixel of the feature gets it.

This module is a library (it registers nothing). It offers:

- :func:`patch_feature_mask`: square patches as features, ids 0..F-1 row-major, the same id on
  every channel.
- :func:`sample_lime_masks`: the perturbations, (n_images, n_samples, n_features) 0/1, each
  feature kept with probability 1/2, independently (captum's ``default_perturb_func``).
  ``n_samples`` is the number of perturbed images per explained image, as captum's
  ``n_samples``: the original image is *not* added as an extra sample, and a row may come
  out all ones or all zeros, as in captum.
- :func:`lime_attributions`: the vectorised version.
- :func:`captum_lime_attributions`: the reference, captum's ``Lime`` fed the same samples.

What is vectorised (``lime_attributions`` against captum, which loops over samples in
Python, one image at a time):

- the perturbed images of all images and samples are built as one tensor per chunk
  (``where(mask on, input, baseline)``, by indexing the sample masks with the feature mask)
  and run through ``forward`` in batches of up to ``chunk`` images, under ``no_grad``;
- the similarity of every sample is computed at once without materialising any perturbed
  image: with per-feature sums ``xx_f = sum x^2``, ``xb_f = sum x*b``, ``bb_f = sum b^2``
  over the feature's pixels, the perturbed image ``p`` (mask ``m``) has
  ``<x, p> = sum_f xb_f + m . (xx - xb)`` and ``|p|^2 = sum_f bb_f + m . (xx - bb)``;
- all the weighted ridge regressions are solved in one batched ``torch.linalg.solve`` on
  (n, F+1, F+1) normal equations, in float64.

The kernel (captum's default ``get_exp_kernel_similarity_function("cosine", kernel_width)``):
``d = 1 - cos(x, p)`` between the flattened original and perturbed inputs, with the norms
clamped below at 1e-8 as ``torch.nn.CosineSimilarity`` does, and weight
``w = exp(-d^2 / (2 * kernel_width^2))``. Note the width is not scaled by the number of
features (unlike the ``lime`` package's default ``0.75 * sqrt(F)``).

The interpretable model: scikit-learn's ``Ridge(alpha)`` with ``sample_weight = w`` and an
intercept, as captum's ``SkLearnRidge(alpha=alpha)`` fits it (no standardisation of the
features; captum's ``norm_input`` is off). scikit-learn centres ``X`` and ``y`` at their
``w``-weighted means and solves ridge on the centred, ``sqrt(w)``-scaled data, which is
exactly minimising ``sum_s w_s (y_s - c - m_s . beta)^2 + alpha |beta|^2`` with the
intercept ``c`` unpenalised and the weights not normalised. With ``Z = [m, 1]``,
``W = diag(w)`` and ``P = diag(alpha, ..., alpha, 0)``, the solution is
``[beta; c] = (Z^T W Z + P)^{-1} Z^T W y``, which is what is solved here. Captum's default
interpretable model is ``SkLearnLasso(alpha=0.01)``; ridge is used instead because it has a
closed form. (With ``alpha=0`` the system is singular when a feature is on in every sample or
in none.) Everything after the forward passes runs in float64 on the inputs' device.

A change here that alters results must bump ``LimeExplainer.version`` (in
``attribution.py``): trial keys hold declared versions, not source hashes, and the golden
fingerprints catch a forgotten bump. (``chunk`` only changes speed: the default 1024
measured 1.3x faster than 4096 on 2 CPU cores, where buffers above glibc's mmap threshold
are mapped afresh on every call.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]

_EPS = 1e-8  # torch.nn.CosineSimilarity's default eps, applied to each norm


def patch_feature_mask(channels: int, size: int, patch: int) -> torch.Tensor:
    """(1, channels, size, size) long mask of square patch x patch features (same id on all
    channels), ids 0..F-1 row-major."""
    for name, value in (("channels", channels), ("size", size), ("patch", patch)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if size % patch:
        raise ValueError(f"patch {patch} does not divide image size {size}")
    per_side = size // patch
    ids = torch.arange(per_side * per_side).reshape(per_side, per_side)
    ids = ids.repeat_interleave(patch, 0).repeat_interleave(patch, 1)
    return ids.expand(1, channels, size, size).clone()


def sample_lime_masks(
    n_images: int, n_features: int, n_samples: int, generator: torch.Generator
) -> torch.Tensor:
    """(n_images, n_samples, n_features) 0/1 float: which features are kept in each
    perturbation, each on with prob 1/2 (captum's default perturbation distribution).
    Drawn on the CPU from `generator`."""
    for name, value in (
        ("n_images", n_images),
        ("n_features", n_features),
        ("n_samples", n_samples),
    ):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError("generator must be a CPU torch.Generator")
    probs = torch.full((n_images, n_samples, n_features), 0.5)
    return torch.bernoulli(probs, generator=generator)


def _check(
    inputs: torch.Tensor,
    baselines: torch.Tensor | float,
    feature_mask: torch.Tensor,
    masks: torch.Tensor,
    kernel_width: float,
    alpha: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate the shared arguments; return (inputs, baselines, feature_mask, masks) with the
    baselines expanded to the inputs' shape and everything on the inputs' device."""
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 4:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs)
        raise ValueError(f"inputs must be a (n, C, H, W) tensor, got {shape}")
    if not inputs.is_floating_point():
        raise ValueError(f"inputs must be floating point, got {inputs.dtype}")
    n, device = inputs.shape[0], inputs.device
    baselines = torch.as_tensor(baselines, dtype=inputs.dtype, device=device)
    try:
        baselines = torch.broadcast_to(baselines, inputs.shape)
    except RuntimeError:
        raise ValueError(
            f"baselines of shape {tuple(baselines.shape)} do not match inputs of shape "
            f"{tuple(inputs.shape)}"
        ) from None
    if not isinstance(masks, torch.Tensor) or masks.ndim != 3 or masks.shape[0] != n:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks)
        raise ValueError(f"masks must be (n_images={n}, n_samples, n_features), got {shape}")
    if masks.shape[1] < 1 or masks.shape[2] < 1:
        raise ValueError(f"masks must have at least one sample and feature, got {masks.shape}")
    if not bool(((masks == 0) | (masks == 1)).all()):
        raise ValueError("masks must be 0/1")
    n_features = masks.shape[2]
    if not isinstance(feature_mask, torch.Tensor) or feature_mask.dtype not in (
        torch.int64,
        torch.int32,
        torch.int16,
        torch.uint8,
    ):
        raise ValueError("feature_mask must be an integer (long) tensor")
    if feature_mask.ndim != 4 or feature_mask.shape[0] not in (1, n):
        raise ValueError(
            f"feature_mask must be (1 or {n}, C, H, W), got {tuple(feature_mask.shape)}"
        )
    if feature_mask.shape[1:] != inputs.shape[1:]:
        raise ValueError(
            f"feature_mask shape {tuple(feature_mask.shape)} does not match inputs' "
            f"{tuple(inputs.shape)}"
        )
    lo, hi = int(feature_mask.min()), int(feature_mask.max())
    if lo < 0 or hi >= n_features:
        raise ValueError(
            f"feature_mask ids must lie in [0, {n_features}) (masks' n_features), got {lo}..{hi}"
        )
    if not kernel_width > 0:
        raise ValueError(f"kernel_width must be > 0, got {kernel_width}")
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    return inputs, baselines, feature_mask.long().to(device), masks.to(device)


def lime_attributions(
    forward: Forward,
    inputs: torch.Tensor,
    baselines: torch.Tensor,
    feature_mask: torch.Tensor,
    masks: torch.Tensor,
    *,
    kernel_width: float = 1.0,
    alpha: float = 1.0,
    chunk: int = 1024,
) -> torch.Tensor:
    """Vectorised LIME. forward: callable (N,C,H,W)->(N,) logits. inputs (n,C,H,W); baselines
    same shape (the value of a feature when it is off); feature_mask (1 or n, C,H,W) long;
    masks (n, S, F) from sample_lime_masks.

    Builds the perturbed images of many images as one tensor (perturbed = inputs where mask
    on else baselines), runs forward in batched chunks of at most `chunk` images, computes
    captum's default similarity (exponential kernel on the cosine distance between original
    and perturbed input, captum's kernel_width convention) for all samples at once, and fits
    one weighted ridge regression per image in closed form (batched torch.linalg.solve on
    (n, F+1, F+1) systems), with an unpenalised intercept, as sklearn's Ridge with
    sample weights does. Returns (n, C, H, W) float32 attributions: each pixel gets its
    feature's coefficient (like captum)."""
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    inputs, baselines, feature_mask, masks = _check(
        inputs, baselines, feature_mask, masks, kernel_width, alpha
    )
    n = masks.shape[0]
    x = inputs.reshape(n, -1)
    b = baselines.reshape(n, -1)
    fm = feature_mask.reshape(feature_mask.shape[0], -1)  # (1 or n, P)
    outputs = _perturbed_outputs(forward, x, b, fm, masks.bool(), inputs.shape[1:], chunk)
    index = fm.expand(n, -1)
    weights = _similarities(x, b, index, masks, kernel_width)
    coefs = _weighted_ridge(masks, weights, outputs, alpha)  # (n, F)
    return coefs.gather(1, index).float().reshape(inputs.shape)


def _perturbed_outputs(
    forward: Forward,
    x: torch.Tensor,
    b: torch.Tensor,
    fm: torch.Tensor,
    on: torch.Tensor,
    shape: torch.Size,
    chunk: int,
) -> torch.Tensor:
    """The model's outputs (n * S,) float32 on every perturbation of the flattened inputs x
    (n, P) (pixels of features off set to the baselines b), chunk by chunk over the
    flattened (image, sample) rows; fm (1 or n, P) the feature of each pixel, on (n, S, F)."""
    n, n_samples, n_features = on.shape
    total = n * n_samples
    flat_on = on.reshape(total, n_features)
    outputs = torch.empty(total, dtype=torch.float32, device=x.device)
    with torch.no_grad():
        for start in range(0, total, chunk):
            stop = min(start + chunk, total)
            rows = flat_on[start:stop]
            perturbed = torch.empty(stop - start, x.shape[1], dtype=x.dtype, device=x.device)
            # one where() per image in the chunk, broadcasting its input and baseline
            for i in range(start // n_samples, (stop - 1) // n_samples + 1):
                lo = max(start, i * n_samples) - start
                hi = min(stop, (i + 1) * n_samples) - start
                index = fm[i if len(fm) > 1 else 0].expand(hi - lo, -1)
                pixel_on = torch.gather(rows[lo:hi], 1, index)  # (rows, P) bool; faster than []
                torch.where(pixel_on, x[i], b[i], out=perturbed[lo:hi])
            logits = forward(perturbed.reshape(stop - start, *shape))
            if not isinstance(logits, torch.Tensor) or logits.numel() != stop - start:
                got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits)
                raise ValueError(
                    f"forward must return one logit per image ({stop - start},), got {got}"
                )
            outputs[start:stop] = logits.reshape(-1).float()
    return outputs


def _similarities(
    x: torch.Tensor, b: torch.Tensor, index: torch.Tensor, masks: torch.Tensor, kernel_width: float
) -> torch.Tensor:
    """Captum's default similarity (n, S) of every perturbation to its input, in float64,
    from per-feature sums: no perturbed image is materialised (see the module doc)."""
    n, _, n_features = masks.shape
    m = masks.double()
    x64, b64 = x.double(), b.double()

    def per_feature(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(n, n_features, dtype=torch.float64, device=x.device).scatter_add_(
            1, index, values
        )

    xx, xb, bb = per_feature(x64 * x64), per_feature(x64 * b64), per_feature(b64 * b64)
    on_x_minus_b = torch.bmm(m, (xx - xb).unsqueeze(2)).squeeze(2)  # (n, S)
    on_xx_minus_bb = torch.bmm(m, (xx - bb).unsqueeze(2)).squeeze(2)
    dot = xb.sum(1, keepdim=True) + on_x_minus_b  # <x, p>
    norm_p = (bb.sum(1, keepdim=True) + on_xx_minus_bb).clamp_min(0).sqrt()  # |p|
    norm_x = xx.sum(1, keepdim=True).sqrt()
    cos = dot / (norm_x.clamp_min(_EPS) * norm_p.clamp_min(_EPS))
    return torch.exp(-((1 - cos) ** 2) / (2 * kernel_width**2))


def _weighted_ridge(
    masks: torch.Tensor, weights: torch.Tensor, outputs: torch.Tensor, alpha: float
) -> torch.Tensor:
    """The coefficients (n, F) of one weighted ridge regression per image of the outputs on
    the masks, with an unpenalised intercept: (Z^T W Z + P) theta = Z^T W y (module doc)."""
    n, n_samples, n_features = masks.shape
    m = masks.double()
    z = torch.cat([m, torch.ones(n, n_samples, 1, dtype=torch.float64, device=m.device)], 2)
    zw = z * weights.unsqueeze(2)
    gram = zw.transpose(1, 2) @ z
    diagonal = gram.diagonal(dim1=1, dim2=2)
    diagonal[:, :n_features] += alpha
    rhs = zw.transpose(1, 2) @ outputs.double().reshape(n, n_samples, 1)
    return torch.linalg.solve(gram, rhs)[:, :n_features, 0]


def captum_lime_attributions(
    forward: Forward,
    inputs: torch.Tensor,
    baselines: torch.Tensor,
    feature_mask: torch.Tensor,
    masks: torch.Tensor,
    *,
    kernel_width: float = 1.0,
    alpha: float = 1.0,
    perturbations_per_eval: int = 64,
) -> torch.Tensor:
    """The reference: captum.attr.Lime with the SAME samples (a perturb_func that yields the
    pre-drawn `masks` rows in order for each image), captum's default similarity kernel at
    `kernel_width` and captum's SkLearnRidge(alpha=alpha) as the interpretable model. Explains
    one image at a time as captum does. Returns (n,C,H,W)."""
    # captum is slow to import, and only this reference needs it
    from captum._utils.models.linear_model import SkLearnRidge
    from captum.attr import Lime
    from captum.attr._core.lime import get_exp_kernel_similarity_function

    if not isinstance(perturbations_per_eval, int) or perturbations_per_eval < 1:
        raise ValueError(
            f"perturbations_per_eval must be a positive int, got {perturbations_per_eval!r}"
        )
    inputs, baselines, feature_mask, masks = _check(
        inputs, baselines, feature_mask, masks, kernel_width, alpha
    )
    n, n_samples, _ = masks.shape
    similarity = get_exp_kernel_similarity_function("cosine", kernel_width)
    out = []
    for i in range(n):
        rows = masks[i].long()

        def perturb(original_inp, rows=rows, **kwargs):  # a generator: one row per call
            for row in rows:
                yield row.unsqueeze(0)

        lime = Lime(
            forward,
            interpretable_model=SkLearnRidge(alpha=alpha),
            similarity_func=similarity,
            perturb_func=perturb,
        )
        mask_i = feature_mask[i : i + 1] if feature_mask.shape[0] == n else feature_mask
        out.append(
            lime.attribute(
                inputs[i : i + 1],
                baselines=baselines[i : i + 1],
                feature_mask=mask_i,
                n_samples=n_samples,
                perturbations_per_eval=perturbations_per_eval,
            )
        )
    return torch.cat(out)
