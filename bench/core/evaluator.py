"""Evaluators — metrics and explainers — share one shape: requirements, parameters, declared scores."""

from __future__ import annotations

import os
import pickle
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from ganbench.core.errors import ConfigError, GanbenchError
from ganbench.core.evaluation import Evaluation
from ganbench.core.params import Range, check_ranges, resolve_params
from ganbench.core.registry import METRICS, evaluator_registry
from ganbench.core.scores import Score


class Evaluator:
    """Base class of metrics and explainers.

    Subclasses set ``name`` (by the registry decorator), ``version``, ``requires``
    (architecture capabilities), ``requires_dataset`` (dataset features: ``labels``,
    ``masks``, ``factors``), ``defaults`` with their ``ranges``, ``scores`` and ``figures``,
    and implement ``evaluate``, which computes and returns: the harness checks the parameters
    before any trial runs, and writes the reports and figures an :class:`Evaluation` holds.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    requires: ClassVar[frozenset[str]] = frozenset()
    requires_dataset: ClassVar[frozenset[str]] = frozenset()
    defaults: ClassVar[dict[str, Any]] = {}
    # the values a parameter may take (ganbench.core.params.Range), checked when a matrix is
    # read; rules across parameters go in ``check_params``
    ranges: ClassVar[dict[str, Range]] = {}
    scores: ClassVar[tuple[Score, ...]] = ()
    # the PNG files its evaluation returns (shell patterns, ``{name}`` for its name), which
    # the board shows in its gallery
    figures: ClassVar[tuple[str, ...]] = ()
    # the leaderboard table an evaluator's scores go to: "quality" (metrics), "explainability"
    # (explainers that any architecture can be scored by) or "intrinsic" (explanations an
    # architecture offers by design); None: inferred by :func:`evaluator_family`
    family: ClassVar[str | None] = None
    # what an explainability evaluator explains: "generator" (what G learned: its units, its
    # latent directions), or "discriminator" (an attribution method explaining D's logit: the
    # board ranks these methods against each other, not the architectures)
    explains: ClassVar[str] = "generator"
    # a quality metric's leaderboard table (ganbench.core.scores.QUALITY_GROUPS), for the scores
    # that declare no ``group`` of their own
    group: ClassVar[str] = ""

    def __init__(self, **params: Any) -> None:
        where = f"evaluator {self.name!r}"
        self.params = resolve_params(self.defaults, params, where)
        self.validate(self.params, where)

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> None:
        """Raise ValueError when ``params`` (resolved) cannot be run: the declared ``ranges``;
        an evaluator with rules across parameters extends this (calling ``super()``)."""
        check_ranges(cls.ranges, params)

    @classmethod
    def validate(cls, params: dict[str, Any], where: str) -> None:
        """:meth:`check_params` as a one-line ConfigError naming ``where`` (the config table)."""
        try:
            cls.check_params(params)
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    @classmethod
    def not_applicable_reason(
        cls, capabilities: frozenset[str], dataset_features: frozenset[str], who: str
    ) -> str | None:
        """Why this evaluator cannot score ``who`` (an architecture or reference), or None if it can."""
        missing = sorted(cls.requires - capabilities)
        if missing:
            return f"{cls.name} needs capability {', '.join(missing)}, which {who} does not provide"
        missing = sorted(cls.requires_dataset - dataset_features)
        if missing:
            return (
                f"{cls.name} needs dataset feature {', '.join(missing)}, which this dataset lacks"
            )
        return None

    @classmethod
    def key_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The parameters as a trial key holds them. Override where a parameter names a local
        file of weights: the key should name the weights (their sha256), not where they sit
        on one machine. The evaluator itself still runs with ``params``."""
        return params

    @classmethod
    def group_of(cls, score: Score) -> str:
        """The leaderboard table of a quality score: its own ``group``, else the evaluator's."""
        return score.group or cls.group

    @classmethod
    def score(cls, name: str) -> Score:
        for s in cls.scores:
            if s.name == name:
                return s
        raise KeyError(f"{cls.name} declares no score {name!r}")

    def evaluate(self, ctx: EvalContext) -> Evaluation | dict[str, float]:
        """The declared scores, with the reports and figures to write (an :class:`Evaluation`),
        or the scores alone as a dict."""
        raise NotImplementedError


FAMILIES = ("quality", "explainability", "intrinsic")

# Feature extractions actually run (cache misses), by feature space: what the one-pass
# guarantee of :meth:`EvalContext.features` is tested against.
FEATURE_PASSES: Counter = Counter()
FEATURE_SPACES = ("pixels", "domain")


def evaluator_family(name: str) -> str:
    """Which leaderboard table ``name``'s scores belong to.

    Metrics are "quality". An explainer is "intrinsic" when it reads a capability other than
    ``layers`` (SAGAN's attention, InfoGAN's codes: explanations one architecture offers by
    design), else "explainability"; an evaluator may say so itself with ``family``.
    """
    cls = evaluator_registry(name).get(name)
    if cls.family is not None:
        if cls.family not in FAMILIES:
            raise GanbenchError(
                f"evaluator {name!r} declares family {cls.family!r} (allowed: {', '.join(FAMILIES)})"
            )
        return cls.family
    if name in METRICS:
        return "quality"
    return "intrinsic" if cls.requires - {"layers"} else "explainability"


@dataclass
class EvalContext:
    """What an evaluation trial hands an evaluator.

    ``model`` is the trained architecture in eval mode, or None when the samples are a
    reference drawn from the real training split. ``fakes(n)`` and ``reals(n)`` return
    tensors in [-1, 1] on ``device``, drawn reproducibly from the trial seed.
    """

    model: Any
    dataset: Any
    device: torch.device
    seed: int
    artifact_dir: Path
    quiet: bool = True
    domain_dir: Path | None = None
    domain_sha256: str | None = None  # the weights the trial's key names (checked on load)
    # where features are cached for every evaluation of the same samples (the same model or
    # reference, seed, domain network and device); None: in memory only
    feature_dir: Path | None = None
    _cache: dict[tuple, Any] = field(default_factory=dict)

    def domain_network(self):
        """The dataset's domain network on ``device``, in eval mode (evaluators that read it
        declare ``"domain"`` in ``requires_dataset``: the pinned network, or the one a domain
        trial trained first)."""
        if "domain" not in self._cache:
            if self.domain_dir is None:
                raise GanbenchError(
                    "this evaluation has no domain network: declare 'domain' in requires_dataset"
                )
            self._cache["domain"] = self.dataset.load_domain_network(
                self.domain_dir, self.device, self.domain_sha256
            )
        return self._cache["domain"]

    def segmenter(self):
        """The dataset's segmenter (given the domain network when the evaluation has one)."""
        if "segmenter" not in self._cache:
            net = self.domain_network() if self.domain_dir is not None else None
            self._cache["segmenter"] = self.dataset.segmenter(net)
        return self._cache["segmenter"]

    def rng(self, stream: int = 0) -> torch.Generator:
        """A CPU torch.Generator seeded from the trial seed and a stream number."""
        return torch.Generator().manual_seed(self.seed * 1_000_003 + stream)

    def reals(self, n: int | None = None, split: str = "test") -> torch.Tensor:
        """Up to ``n`` real images of ``split`` (all of them when n is None or larger)."""
        key = ("real", split, n)
        if key not in self._cache:
            images = self.dataset.split(split).images
            if n is not None and n < len(images):
                idx = torch.randperm(len(images), generator=self.rng(1))[:n]
                images = images[idx]
            self._cache[key] = images.to(self.device)
        return self._cache[key]

    def _images(self, which: str, n: int | None) -> torch.Tensor:
        if which == "fake":
            if n is None:
                raise ValueError("features of generated images need a count n")
            return self.fakes(n)
        if which in ("test", "train"):
            return self.reals(n, which)
        raise ValueError(f"features: which must be 'fake', 'test' or 'train', got {which!r}")

    @torch.no_grad()
    def features(
        self, space: str, which: str, n: int | None = None, batch_size: int = 512
    ) -> torch.Tensor:
        """Features of one sample set in one feature space, extracted once and then cached.

        ``which``: ``"fake"`` (``fakes(n)``), ``"test"`` or ``"train"`` (``reals(n, which)``);
        ``space``: ``"pixels"`` (the flattened images) or ``"domain"`` (the dataset's domain
        network's embedding). The first evaluator to ask extracts them and stores them in
        ``feature_dir`` (shared by every evaluation trial of the same samples, so the
        metrics of one model read one extraction); later ones, in this trial or another,
        read the file. Cached and fresh features are the same numbers: the samples are a
        function of the seed, and the key holds everything else they depend on.
        """
        if space not in FEATURE_SPACES:
            raise ValueError(f"features: space must be one of {FEATURE_SPACES}, got {space!r}")
        key = ("features", space, which, n)
        if key in self._cache:
            return self._cache[key]
        path = None
        if self.feature_dir is not None:
            path = self.feature_dir / f"{space}-{which}-{'all' if n is None else n}.pt"
            if path.is_file():
                try:
                    feats = torch.load(path, map_location=self.device, weights_only=True)
                except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError):  # torn: redo
                    feats = None
                if isinstance(feats, torch.Tensor):
                    self._cache[key] = feats
                    return feats
        images = self._images(which, n)
        if space == "pixels":
            feats = images.flatten(1)
        else:
            net = self.domain_network()
            feats = torch.cat(
                [
                    net.features(images[i : i + batch_size].to(self.device))
                    for i in range(0, len(images), batch_size)
                ]
            )
        FEATURE_PASSES[space] += 1
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(feats.detach().cpu(), tmp)
            os.replace(tmp, path)  # atomic: a parallel trial reads the old or the new file
        self._cache[key] = feats
        return feats

    @torch.no_grad()
    def fakes(self, n: int, batch_size: int = 256) -> torch.Tensor:
        """``n`` generated images (or, for the real-data reference, ``n`` training images)."""
        key = ("fake", n)
        if key not in self._cache:
            if self.model is None:
                pool = self.dataset.split("train").images
                idx = torch.randperm(len(pool), generator=self.rng(2))[: min(n, len(pool))]
                out = pool[idx].to(self.device)
            else:
                g = self.rng(2)
                parts = []
                for start in range(0, n, batch_size):
                    z = self.model.sample_latent(min(batch_size, n - start), generator=g)
                    parts.append(self.model.generate(z).clamp(-1, 1))
                out = torch.cat(parts)
            self._cache[key] = out
        return self._cache[key]
