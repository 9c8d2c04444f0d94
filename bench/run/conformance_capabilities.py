"""The capability checks of the conformance suite (:mod:`ganbench.run.conformance`): one per
capability an architecture may declare (attention, codes, styles, coordinates,
filter_groups), run only on the architectures that declare it."""

from __future__ import annotations

import torch

from ganbench.run.conformance_checks import SPECS, expect, small


def check_attention(name: str) -> str:
    for spec in SPECS:
        arch = small(name, spec).eval()
        maps = arch.attention_maps(arch.sample_latent(2, torch.Generator().manual_seed(0)))
        expect(
            isinstance(maps, dict) and set(maps) >= {"generator", "discriminator"},
            f"attention_maps keys {sorted(maps) if isinstance(maps, dict) else type(maps)}",
        )
        for where in ("generator", "discriminator"):
            m = maps[where]
            expect(
                torch.is_tensor(m) and m.dim() == 5 and m.shape[0] == 2,
                f"{where} maps of shape {tuple(getattr(m, 'shape', ()))}, not (B, Hq, Wq, Hk, Wk)",
            )
            expect(bool(torch.isfinite(m).all()), f"{where} attention is not finite")
            sums = m.flatten(3).sum(-1)
            expect(bool((m >= 0).all()), f"{where} attention has negative weights")
            expect(
                torch.allclose(sums, torch.ones_like(sums), atol=1e-4),
                f"{where} attention weights sum to {float(sums.min()):.3g}..{float(sums.max()):.3g}, not 1",
            )
    return "attention_maps: distributions over keys for every query, in G and D, at both sizes"


def check_codes(name: str) -> str:
    arch = small(name).eval()
    spec = arch.code_spec()
    expect(
        spec.latent_dim == arch.latent_dim,
        f"code_spec() adds up to {spec.latent_dim} latent dims, latent_dim is {arch.latent_dim}",
    )
    z = arch.sample_latent(4, torch.Generator().manual_seed(0), category=1)
    again = arch.sample_latent(4, torch.Generator().manual_seed(0), category=1)
    expect(tuple(z.shape) == (4, arch.latent_dim), f"sample_latent gave shape {tuple(z.shape)}")
    expect(torch.equal(z, again), "sample_latent(n, generator) is not reproducible")
    _, cat, _ = arch.split_latent(z)
    expect(bool((cat == 1).all()), "sample_latent(category=1) did not fix the categorical code")
    with torch.no_grad():
        logits, cont = arch.predict_codes(arch.generate(z))
    expect(
        tuple(logits.shape) == (4, spec.categories), f"Q's logits of shape {tuple(logits.shape)}"
    )
    expect(
        tuple(cont.shape) == (4, spec.continuous),
        f"Q's continuous codes of shape {tuple(cont.shape)}",
    )
    expect(
        bool(torch.isfinite(logits).all() and torch.isfinite(cont).all()),
        "predict_codes gave non-finite values",
    )
    return f"code_spec {spec.categories} categories + {spec.continuous} continuous; codes fixable; Q reads them"


def check_styles(name: str) -> str:
    arch = small(name).eval()
    want = (2, arch.channels, arch.image_size, arch.image_size)
    with torch.no_grad():
        z = arch.sample_latent(2, torch.Generator().manual_seed(0))
        w = arch.mapping(z)
        expect(w.dim() == 2 and w.shape[0] == 2, f"mapping(z) gave w of shape {tuple(w.shape)}")
        images = arch.generate_from_w(w)
        num_ws = getattr(arch, "num_ws", None)
        if num_ws is not None and hasattr(arch, "synthesis"):
            ws = w.unsqueeze(1).expand(-1, num_ws, -1)
            from_ws = arch.synthesis(ws)
            expect(
                torch.allclose(from_ws, images, atol=1e-5),
                "synthesis(ws) with w in every layer differs from generate_from_w(w)",
            )
        styles = arch.styles(w)
    expect(tuple(images.shape) == want, f"generate_from_w gave {tuple(images.shape)}, not {want}")
    expect(
        bool(torch.isfinite(images).all()) and float(images.abs().max()) <= 1,
        "generate_from_w gave values outside [-1, 1]",
    )
    expect(isinstance(styles, dict) and bool(styles), "styles(w) gave no per-layer styles")
    bad = sorted(k for k, v in styles.items() if not (torch.is_tensor(v) and v.shape[0] == 2))
    expect(not bad, f"styles without a batch dimension: {', '.join(bad[:3])}")
    ws_note = f"synthesis from {num_ws} ws, " if num_ws is not None else ""
    return (
        f"mapping -> w {tuple(w.shape[1:])}, {ws_note}images from w, {len(styles)} per-layer styles"
    )


def check_coordinates(name: str) -> str:
    arch = small(name).eval()
    coords = arch.micro_coordinates()
    expect(
        torch.is_tensor(coords) and coords.dim() == 2 and len(coords) > 0,
        f"micro_coordinates() of shape {tuple(getattr(coords, 'shape', ()))}, not (P, 2)",
    )
    with torch.no_grad():
        z = arch.sample_latent(2, torch.Generator().manual_seed(0))
        patches = [arch.generate_patch(z, c) for c in coords]
    shapes = {tuple(p.shape) for p in patches}
    expect(len(shapes) == 1, f"patches of different shapes: {sorted(shapes)}")
    n, c, h, w = patches[0].shape
    expect(
        (n, c) == (2, arch.channels) and h == w,
        f"generate_patch gave {tuple(patches[0].shape)}, not (2, {arch.channels}, s, s)",
    )
    expect(
        all(bool(torch.isfinite(p).all()) and float(p.abs().max()) <= 1 for p in patches),
        "generate_patch gave values outside [-1, 1]",
    )
    if not hasattr(arch, "generate_full"):
        return f"{len(coords)} micro patches of {h}x{w} (no generate_full to compare with)"
    side = int(round(len(coords) ** 0.5))
    expect(side * side == len(coords), f"{len(coords)} micro coordinates do not make a square grid")
    with torch.no_grad():
        full = arch.generate_full(z)
    rows = [torch.cat(patches[r * side : (r + 1) * side], dim=3) for r in range(side)]
    stitched = torch.cat(rows, dim=2)
    expect(
        stitched.shape == full.shape,
        f"stitched patches {tuple(stitched.shape)} vs image {tuple(full.shape)}",
    )
    gap = float((stitched - full).abs().max())
    # patch by patch vs. one batched draw: equal up to floating-point reassociation
    expect(gap <= 1e-4, f"the full image differs from its stitched micro patches by {gap:.3g}")
    return f"{len(coords)} micro patches, drawn one coordinate at a time, stitch into the full image (max gap {gap:.1g})"


def check_filter_groups(name: str) -> str:
    arch = small(name).eval()
    part = arch.partition()
    expect(
        torch.is_tensor(part)
        and part.dim() == 1
        and len(part) > 0
        and not part.is_floating_point(),
        f"partition() gave {tuple(getattr(part, 'shape', ()))}, not (M,) integer group ids",
    )
    groups = arch.params.get("groups", int(part.max()) + 1)
    expect(
        int(part.min()) >= 0 and int(part.max()) < groups,
        f"partition() ids span {int(part.min())}..{int(part.max())}, not [0, {groups})",
    )
    with torch.no_grad():
        z1 = arch.sample_latent(2, torch.Generator().manual_seed(0))
        z2 = arch.sample_latent(2, torch.Generator().manual_seed(1))
        if hasattr(arch, "filter_maps"):  # the partition must name every filter of the layer
            m = arch.filter_maps(z1).shape[1]
            expect(len(part) == m, f"partition() covers {len(part)} filters of the layer's {m}")
        a, b = arch.swap_concept(z1, z2, int(part[0]))
        want = tuple(arch.generate(z1).shape)
    expect(
        tuple(a.shape) == tuple(b.shape) == want,
        f"swap_concept images of shapes {tuple(a.shape)}, {tuple(b.shape)}, not {want}",
    )
    expect(
        float(a.abs().max()) <= 1 and float(b.abs().max()) <= 1,
        "swap_concept gave values outside [-1, 1]",
    )
    return (
        f"partition of all {len(part)} filters into {len(part.unique())} groups; concept swap works"
    )
