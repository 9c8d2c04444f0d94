"""Plain-text tables for the terminal: registry listings and store status."""

from __future__ import annotations

from tabulate import tabulate

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import Registry
from ganbench.run.store import Store


def _doc(cls: type) -> str:
    return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""


def _dataset_contents(cls: type) -> str:
    """Size, resolution, classes, masks, factors; for a local dataset without a root, its layout."""
    try:
        spec = cls().spec
    except GanbenchError:
        layout = getattr(cls, "layout", "")
        return f'local files: set root = "..." in [dataset.{cls.name}]; expects {layout}'.strip()
    size = f"{spec.image_size}x{spec.image_size}x{spec.channels}"
    return (
        f"{spec.train_size}+{spec.test_size} images, {size}, classes {spec.num_classes or '-'}, "
        f"masks {'yes' if spec.has_masks else 'no'}, "
        f"segmenter {'yes' if spec.has_segmenter else 'no'}, "
        f"factors {', '.join(spec.factors) or 'no'}"
    )


def list_table(family: str, registry: Registry) -> str:
    """One family's members (``ganbench list``): name, version, what it offers, what it is."""
    rows = []
    for name in registry.names():
        try:
            cls = registry.get(name)
        except Exception as exc:  # a broken plugin is listed with its error, not fatal
            rows.append([name, "", "", f"cannot load: {exc}"])
            continue
        if family == "architectures":
            extra = ", ".join(sorted(cls.capabilities)) or "-"
        elif family == "datasets":
            extra = _dataset_contents(cls)
        else:
            extra = ", ".join(s.name + s.arrow for s in cls.scores if s.primary)
        rows.append([name, cls.version, extra, _doc(cls)])
    header = {"architectures": "capabilities", "datasets": "contents"}.get(family, "scores")
    title = f"{family} ({len(rows)})"
    if not rows:
        return f"{title}: none registered yet"
    return (
        title
        + "\n"
        + tabulate(rows, headers=["name", "version", header, "what"], tablefmt="simple")
    )


def status_table(store: Store, show_all: bool = False) -> str:
    """Trials by kind and status (``ganbench show``), then the failed and running ones, or all."""
    counts = store.counts()
    kinds = sorted({k for k, _ in counts})
    statuses = ["finished", "n/a", "failed", "running", "pending"]
    rows = [[k] + [counts.get((k, s), 0) for s in statuses] for k in kinds]
    out = [f"store {store.path}", tabulate(rows, headers=["kind", *statuses], tablefmt="simple")]
    records = store.records()
    listed = [r for r in records if show_all or r.status in ("failed", "running")]
    if listed:
        rows = []
        for r in listed:
            lab = r.labels
            what = " ".join(
                str(x)
                for x in (
                    lab.get("architecture"),
                    lab.get("reference"),
                    lab.get("dataset"),
                    f"seed {lab.get('seed')}",
                    lab.get("evaluator") or "",
                )
                if x
            )
            rows.append([r.key[:12], r.kind, r.status, what, (r.error or "")[:100]])
        out.append(
            tabulate(
                rows,
                headers=["key", "kind", "status", "trial", "error / reason"],
                tablefmt="simple",
            )
        )
    return "\n\n".join(out)
