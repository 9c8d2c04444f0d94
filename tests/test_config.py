from __future__ import annotations

from pathlib import Path

import pytest

from ganbench.core.errors import ConfigError
from ganbench.run.config_load import apply_overrides, load_config, shipped_configs


def test_shipped_configs_load_and_validate():
    assert {"smoke", "standard"} <= set(shipped_configs())
    for name in shipped_configs():
        cfg = load_config(name)
        assert cfg.architectures and cfg.datasets and cfg.seeds


def test_smoke_config_names_dcgan_on_digits_with_c2st_and_mmd():
    cfg = load_config("smoke")
    assert "dcgan" in cfg.architectures and "digits" in cfg.datasets
    assert {"c2st", "mmd"} <= set(cfg.metrics)


def test_missing_config_names_the_shipped_ones():
    with pytest.raises(ConfigError, match=r"no config 'nosuchconfig'.*shipped: .*smoke"):
        load_config("nosuchconfig")


def test_missing_toml_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(str(tmp_path / "absent.toml"))


@pytest.mark.parametrize(
    "replace, extra, expected",
    [
        # 1. malformed TOML: file and position
        ({'name = "tiny"': 'name = "tiny'}, "", r"tiny\.toml: malformed TOML"),
        # 2. unknown top-level key, listing the allowed ones
        (
            {'name = "tiny"': 'name = "tiny"\ncolour = 3'},
            "",
            r"tiny\.toml: unknown key 'colour' \(allowed: name, ",
        ),
        # 3. unknown architecture with the closest match
        (
            {'architectures = ["dcgan"]': 'architectures = ["dcgn"]'},
            "",
            r"tiny\.toml: unknown architecture 'dcgn' in key 'architectures'; did you mean 'dcgan'\?",
        ),
        # 4. unknown parameter of an architecture
        (
            {"width = 8": "widht = 8"},
            "",
            r"tiny\.toml: \[architecture\.dcgan\]: unknown key 'widht' \(allowed: .*width",
        ),
        # 5. parameter of the wrong type
        ({"width = 8": 'width = "wide"'}, "", r"\[architecture\.dcgan\]: key 'width' must be int"),
        # 6. device not allowed
        (
            {'name = "tiny"': 'name = "tiny"\ndevice = "tpu"'},
            "",
            r"key 'device' must be one of auto, cpu, cuda, got 'tpu'",
        ),
        # 7. seeds of the wrong shape
        (
            {"seeds = [0]": "seeds = [-1]"},
            "",
            r"key 'seeds' must be a non-empty list of non-negative integers",
        ),
        # 8. a parameter table for something the matrix does not list
        (
            {},
            "[dataset.shapes]\nimage_size = 32\n",
            r"\[dataset\.shapes\] configures 'shapes', which the datasets list",
        ),
        # 9. unknown metric
        ({'metrics = ["c2st", "mmd"]': 'metrics = ["c2st", "fid2"]'}, "", r"unknown metric 'fid2'"),
        # 10. impossible budget
        ({"steps = 40": "steps = -5"}, "", r"\[train\] key 'steps' must be >= 0"),
        # 11. unknown training key
        ({"log_every = 10": "log_evry = 10"}, "", r"\[train\]: unknown key 'log_evry'"),
        # 12. wrong type of a top-level key
        ({'datasets = ["digits"]': 'datasets = "digits"'}, "", r"key 'datasets' must be a list"),
        # 13. an exclude entry naming an architecture the matrix does not list
        (
            {"references = []": 'references = []\nexclude = [{architecture = "sagan"}]'},
            "",
            r"'exclude' names architecture 'sagan', which the architectures list does not name",
        ),
        # 14. an exclude entry with a key other than architecture and dataset
        (
            {"references = []": "references = []\nexclude = [{seed = 0}]"},
            "",
            r"each 'exclude' entry must be a table with keys architecture and/or dataset",
        ),
        # 15. a per-architecture budget for an architecture the matrix does not list
        ({}, "[train.sagan]\nsteps = 10\n", r"\[train\.sagan\] sets the budget of 'sagan', which"),
        # 15b. a per-architecture budget for a dataset the matrix does not list
        (
            {},
            "[train.dcgan.shapes]\nsteps = 10\n",
            r"\[train\.dcgan\.shapes\] names 'shapes', which the datasets list does not name",
        ),
        # 15c. a per-dataset budget key that is not a budget (seeds are per architecture)
        (
            {},
            "[train.digits]\nseeds = [0]\n",
            r"\[train\.digits\]: unknown key 'seeds' \(allowed: steps, batch_size\)",
        ),
        # 16. a per-architecture budget key that is not a budget
        ({}, "[train.dcgan]\nlr = 0.1\n", r"\[train\.dcgan\]: unknown key 'lr' \(allowed: steps"),
        # 17. per-architecture seeds outside the matrix's seeds
        (
            {},
            "[train.dcgan]\nseeds = [3]\n",
            r"'seeds' must be a non-empty subset of the matrix seeds",
        ),
        # 18. a variant of an architecture that does not exist
        (
            {'architectures = ["dcgan"]': 'architectures = ["dcgan", "tiny-gan"]'},
            '[architecture.tiny-gan]\nvariant_of = "dcgn"\n',
            r"\[architecture\.tiny-gan\]: unknown architecture 'dcgn' in key variant_of; did you",
        ),
        # 19. a variant's parameter its architecture does not have
        (
            {'architectures = ["dcgan"]': 'architectures = ["dcgan", "tiny-gan"]'},
            '[architecture.tiny-gan]\nvariant_of = "dcgan"\nlambda1 = 0\n',
            r"\[architecture\.tiny-gan\]: unknown key 'lambda1'",
        ),
        # 20. a variant listed twice (each name is one row of the board)
        (
            {'architectures = ["dcgan"]': 'architectures = ["dcgan", "tiny-gan", "tiny-gan"]'},
            '[architecture.tiny-gan]\nvariant_of = "dcgan"\n',
            r"key 'architectures' lists a name twice",
        ),
    ],
)
def test_config_mistakes_name_file_key_and_what_is_allowed(tiny_config, replace, extra, expected):
    path = tiny_config(replace, extra)
    with pytest.raises(ConfigError, match=expected) as err:
        load_config(str(path))
    assert "\n" not in str(err.value)


def test_exclude_leaves_cells_out_of_the_cross(tiny_config):
    from ganbench.run.trials import expand

    path = tiny_config(
        {
            'architectures = ["dcgan"]': 'architectures = ["dcgan", "sagan"]',
            'datasets = ["digits"]': 'datasets = ["digits", "shapes"]',
            "references = []": 'references = []\nexclude = [{architecture = "sagan", dataset = "shapes"}]',
        }
    )
    cfg = load_config(str(path))
    cells = {
        (t.labels["architecture"], t.labels["dataset"])
        for t in expand(cfg, "cpu")
        if t.kind == "train"
    }
    assert cells == {("dcgan", "digits"), ("dcgan", "shapes"), ("sagan", "digits")}
    assert cfg.excluded("sagan", "shapes") and not cfg.excluded("sagan", "digits")


def test_an_architecture_can_have_its_own_steps_batch_and_seeds(tiny_config):
    from ganbench.run.trials import expand

    path = tiny_config(
        {
            "seeds = [0]": "seeds = [0, 1]",
            'architectures = ["dcgan"]': 'architectures = ["dcgan", "sagan"]',
        },
        "[train.sagan]\nsteps = 90\nbatch_size = 16\nseeds = [1]\n",
    )
    cfg = load_config(str(path))
    budgets = {
        (t.labels["architecture"], t.labels["seed"]): t.config["budget"]
        for t in expand(cfg, "cpu")
        if t.kind == "train" and t.labels["reference"] == "trained"
    }
    assert budgets == {
        ("dcgan", 0): {"steps": 40, "batch_size": cfg.train["batch_size"]},
        ("dcgan", 1): {"steps": 40, "batch_size": cfg.train["batch_size"]},
        ("sagan", 1): {"steps": 90, "batch_size": 16},
    }
    # an architecture without its own table keeps the trial keys it had before
    plain = load_config(str(tiny_config({"seeds = [0]": "seeds = [0, 1]"}, name="plain.toml")))
    assert {t.key for t in expand(plain, "cpu") if t.labels["architecture"] == "dcgan"} <= {
        t.key for t in expand(cfg, "cpu")
    }
    # `--seeds` narrows an architecture's own seeds too
    assert apply_overrides(cfg, [0], []).seeds_for("sagan") == []


def test_a_dataset_and_an_architecture_on_a_dataset_can_have_their_own_budget(tiny_config):
    from ganbench.board.sentences import budget_line
    from ganbench.run.trials import expand

    path = tiny_config(
        {
            'architectures = ["dcgan"]': 'architectures = ["dcgan", "sagan"]',
            'datasets = ["digits"]': 'datasets = ["digits", "shapes"]',
        },
        "[train.shapes]\nsteps = 120\nbatch_size = 16\n"
        "[train.sagan]\nsteps = 90\n"
        "[train.sagan.shapes]\nsteps = 200\n",
    )
    cfg = load_config(str(path))
    budgets = {
        (t.labels["architecture"], t.labels["dataset"]): t.config["budget"]
        for t in expand(cfg, "cpu")
        if t.kind == "train" and t.labels["reference"] == "trained"
    }
    batch = cfg.train["batch_size"]
    # [train] < [train.DATASET] < [train.ARCHITECTURE] < [train.ARCHITECTURE.DATASET]
    assert budgets == {
        ("dcgan", "digits"): {"steps": 40, "batch_size": batch},
        ("dcgan", "shapes"): {"steps": 120, "batch_size": 16},
        ("sagan", "digits"): {"steps": 90, "batch_size": batch},
        ("sagan", "shapes"): {"steps": 200, "batch_size": 16},
    }
    line = budget_line(cfg)
    assert f"budget 40 steps × batch {batch} (shapes: 120 steps × batch 16)" in line
    assert f"(sagan: 90 steps × batch {batch} on digits, 200 steps × batch 16 on shapes)" in line
    # digits trials keep the keys they had without the shapes tables
    plain = load_config(
        str(
            tiny_config(
                {
                    'architectures = ["dcgan"]': 'architectures = ["dcgan", "sagan"]',
                    'datasets = ["digits"]': 'datasets = ["digits", "shapes"]',
                },
                "[train.sagan]\nsteps = 90\n",
                name="plain.toml",
            )
        )
    )
    digits = {t.key for t in expand(plain, "cpu") if t.labels["dataset"] == "digits"}
    assert digits <= {t.key for t in expand(cfg, "cpu")}


def test_a_variant_is_an_architecture_of_its_own_built_by_the_registered_one(tiny_config):
    from ganbench.run.train import build
    from ganbench.run.trials import expand

    path = tiny_config(
        {'architectures = ["dcgan"]': 'architectures = ["dcgan", "dcgan-wide"]'},
        '[architecture.dcgan-wide]\nvariant_of = "dcgan"\nwidth = 16\n',
    )
    cfg = load_config(str(path))
    assert cfg.architectures == ["dcgan", "dcgan-wide"]
    assert cfg.architecture_params["dcgan-wide"]["width"] == 16
    assert cfg.architecture_params["dcgan-wide"]["latent_dim"] == 100  # dcgan's default
    trained = {t.labels["architecture"]: t for t in expand(cfg, "cpu") if t.kind == "train"}
    assert set(trained) == {"dcgan", "dcgan-wide"}
    assert trained["dcgan-wide"].config["architecture"]["name"] == "dcgan"
    assert trained["dcgan-wide"].key != trained["dcgan"].key
    _, arch = build(trained["dcgan-wide"].config)
    assert arch.name == "dcgan" and arch.params["width"] == 16


def test_only_narrows_the_matrix(tiny_config):
    cfg = load_config(str(tiny_config({"seeds = [0]": "seeds = [0, 1, 2]"})))
    cfg = apply_overrides(cfg, None, ["seed=1,2", "metric=mmd"])
    assert cfg.seeds == [1, 2] and cfg.metrics == ["mmd"]


@pytest.mark.parametrize(
    "only, expected",
    [
        ("arch=nosuch", r"architecture 'nosuch' is not in the matrix 'tiny' \(it has: dcgan\)"),
        ("seed=7", r"seed 7 is not in the matrix"),
        ("colour=red", r"expected KEY=VALUE with KEY one of"),
        ("dataset", r"expected KEY=VALUE"),
    ],
)
def test_only_with_unknown_values_fails_clearly(tiny_config, only, expected):
    cfg = load_config(str(tiny_config()))
    with pytest.raises(ConfigError, match=expected):
        apply_overrides(cfg, None, [only])


def test_infogan_study_config_loads_and_crosses_what_its_page_reports():
    cfg = load_config(str(Path(__file__).parents[1] / "docs" / "infogan-codes.toml"))
    assert cfg.name == "infogan-codes" and cfg.datasets == ["digits"]
    assert (
        cfg.explainers == ["codes"] and cfg.train["steps"] == load_config("standard").train["steps"]
    )
    assert set(cfg.architectures) == {"infogan", "infogan-iic", "infogan-iic-augment"}


def test_the_quick_look_covers_every_architecture_and_is_what_make_run_runs():
    """`make run` runs the quick matrix: every registered architecture and every variant the
    shipped matrices name, on digits, one seed, beside both controls, with an attribution
    method, dissection and directions."""
    from ganbench.core.registry import list_architectures

    quick = load_config("quick")
    assert quick.quick_look and not load_config("smoke").quick_look
    variants = {v for name in ("smoke", "standard") for v in load_config(name).variants}
    assert set(list_architectures()) | variants <= set(quick.architectures)
    assert quick.datasets == ["digits"] and quick.seeds == [0]
    assert set(quick.references) == {"untrained", "real"}
    assert {"knn_c2st", "mmd", "mmd_domain", "fidelity"} <= set(quick.metrics)
    assert {"deeplift", "dissection", "directions"} <= set(quick.explainers)
    makefile = (Path(__file__).parents[1] / "Makefile").read_text()
    assert "$(BIN)/ganbench run quick;" in makefile
