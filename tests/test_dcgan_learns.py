"""After the smoke budget, DCGAN's samples are much harder to tell from real digits than when untrained."""

from __future__ import annotations

import pytest

from ganbench.run.config_load import apply_overrides, load_config
from ganbench.run.runner import run_matrix
from ganbench.run.store import Store


@pytest.mark.slow  # about 200 s on 2 cores: `make test-all` (the quick matrix shows the same at 500 steps)
def test_dcgan_at_the_smoke_budget_beats_the_same_network_untrained(tmp_path, record_property):
    # the smoke config's training, scored by the two metrics this test reads (not every explainer)
    only = ["arch=dcgan", "dataset=digits", "evaluator=c2st,mmd"]
    cfg = apply_overrides(load_config("smoke"), seeds=[0], only=only)
    cfg.references = ["untrained"]
    store = Store(tmp_path / "s.sqlite")
    summary = run_matrix(cfg, store, device="cpu", quiet=True)
    assert not summary.failed, summary.failed
    scores = {}
    for r in store.records():
        if r.kind == "evaluate":
            scores[(r.labels["reference"], r.labels["evaluator"])] = r.scores
    trained_c2st = scores[("trained", "c2st")]["c2st_accuracy"]
    untrained_c2st = scores[("untrained", "c2st")]["c2st_accuracy"]
    trained_mmd = scores[("trained", "mmd")]["mmd2"]
    untrained_mmd = scores[("untrained", "mmd")]["mmd2"]
    for name, value in [
        ("c2st trained", trained_c2st),
        ("c2st untrained", untrained_c2st),
        ("mmd2 trained", trained_mmd),
        ("mmd2 untrained", untrained_mmd),
    ]:
        record_property(name, value)
        print(f"{name}: {value:.4f}")
    assert untrained_c2st > 0.95  # an untrained generator is trivially separable
    # clearly lower: the trained network's 95% interval lies wholly below the untrained one's
    assert (
        scores[("trained", "c2st")]["c2st_ci_high"] < scores[("untrained", "c2st")]["c2st_ci_low"]
    )
    assert trained_c2st < untrained_c2st - 0.05
    assert trained_mmd < 0.1 * untrained_mmd
