from __future__ import annotations

import sys
import textwrap

import pytest

from ganbench.core.errors import GanbenchError
from ganbench.core.registry import (
    ARCHITECTURES,
    Registry,
    UnknownNameError,
    create_architecture,
    create_dataset,
    list_architectures,
    list_datasets,
    list_explainers,
    list_metrics,
)


def test_builtins_are_listed_in_every_family():
    assert "dcgan" in list_architectures()
    assert "digits" in list_datasets()
    assert {"c2st", "mmd"} <= set(list_metrics())
    assert isinstance(list_explainers(), list)


def test_create_builds_a_registered_class_with_params():
    spec = create_dataset("digits").spec
    arch = create_architecture("dcgan", spec, width=8, latent_dim=10)
    assert arch.name == "dcgan" and arch.latent_dim == 10


def test_unknown_name_lists_known_names_and_the_closest_match():
    with pytest.raises(UnknownNameError) as err:
        ARCHITECTURES.get("dcgn")
    message = str(err.value)
    assert "unknown architecture 'dcgn'" in message
    assert "did you mean 'dcgan'?" in message
    assert "known: " in message and "dcgan" in message.split("known: ")[1]


def test_unknown_name_without_close_match_still_lists_known():
    with pytest.raises(UnknownNameError) as err:
        ARCHITECTURES.get("zzzzzz")
    assert "did you mean" not in str(err.value) and "known:" in str(err.value)


def test_registering_two_classes_under_one_name_is_an_error():
    reg = Registry("widget", "ganbench.explainers", "ganbench.test_widgets")

    @reg.register("a")
    class A:
        pass

    with pytest.raises(ValueError, match="registered twice"):

        @reg.register("a")
        class B:
            pass


def test_entry_points_are_listed_without_import_and_loaded_on_demand(tmp_path, monkeypatch):
    """A third-party package adds a row by installing an entry point; nothing imports until asked."""
    (tmp_path / "toyplug_ep.py").write_text(
        textwrap.dedent(
            """
            from ganbench.architectures.dcgan import DCGAN

            class ToyGAN(DCGAN):
                version = "0.1"
            """
        )
    )
    dist = tmp_path / "toyplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ganbench.architectures]\ntoygan = toyplug_ep:ToyGAN\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("architecture", "ganbench.architectures", "ganbench.architectures")
    assert "toygan" in reg.names()
    assert "toyplug_ep" not in sys.modules
    cls = reg.get("toygan")
    assert cls.__name__ == "ToyGAN" and cls.name == "toygan"
    assert "toyplug_ep" in sys.modules


def test_entry_point_to_a_non_class_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "badplug_ep.py").write_text("VALUE = 3\n")
    dist = tmp_path / "badplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: badplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ganbench.architectures]\nbadgan = badplug_ep:VALUE\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("architecture", "ganbench.architectures", "ganbench.architectures")
    with pytest.raises(GanbenchError, match="did not register"):
        reg.get("badgan")


def test_every_declared_control_names_a_score_of_the_same_evaluator():
    """``Score.control`` points the leaderboard at the chance-level column shown beside a score:
    a name that is not among the evaluator's own scores would leave that column empty."""
    from ganbench.core.registry import EXPLAINERS, METRICS

    checked = 0
    for registry in (METRICS, EXPLAINERS):
        for name in registry.names():
            cls = registry.get(name)
            declared = {s.name for s in cls.scores}
            assert len(declared) == len(cls.scores), f"{name}: a score is declared twice"
            for score in cls.scores:
                if score.control is not None:
                    assert score.control in declared, f"{name}.{score.name}: {score.control}"
                    assert score.control != score.name
                    checked += 1
    assert checked >= 5  # code_accuracy, the attribution scores, rca, ... declare controls
