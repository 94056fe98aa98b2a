import pytest

from pinsage.config import (
    PipelineConfig,
    SamplerConfig,
    TrainConfig,
    load_config,
    load_section,
)
from pinsage.errors import ConfigError


def test_unknown_key_names_nearest(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sampler:\n  num_walk: 5\n")
    with pytest.raises(
        ConfigError, match=r"unknown key 'num_walk'; did you mean 'num_walks'"
    ):
        load_config(path)


@pytest.mark.parametrize(
    "raw,match",
    [
        ({"num_walks": "ten"}, "expected int, got str"),
        ({"num_walks": True}, "expected int, got bool"),
        ({"restart": 1.5}, r"restart must be in \[0, 1\]"),
        ({"top_k": 0}, "top_k must be >= 1"),
        ({"infer_top_k": 0}, "infer_top_k must be >= 1"),
    ],
)
def test_bad_values(raw, match):
    with pytest.raises(ConfigError, match=match):
        load_section(SamplerConfig, raw, "sampler")


def test_bad_train_choice_names_the_choices():
    with pytest.raises(ConfigError, match=r"train.neighborhoods must be one of"):
        load_section(TrainConfig, {"neighborhoods": "walks"}, "train")


def test_inference_sampler_overrides_only_what_is_set():
    cfg = SamplerConfig(
        num_walks=50, top_k=20, seed=4, infer_num_walks=None, infer_top_k=None
    )
    assert cfg.for_inference() == cfg
    wide = SamplerConfig(
        num_walks=50, top_k=20, seed=4, infer_num_walks=None, infer_top_k=400
    )
    assert (wide.for_inference().num_walks, wide.for_inference().top_k) == (50, 400)
    # The defaults widen both at inference (a user pools its history).
    default = SamplerConfig().for_inference()
    assert (default.num_walks, default.top_k) == (500, 200)
    assert wide.for_inference().seed == 4


def test_int_accepted_for_float_and_nested(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("sampler:\n  restart: 1\nsynth:\n  num_items: 500\n")
    cfg = load_config(path)
    assert cfg.sampler.restart == 1.0 and cfg.synth.num_items == 500
    assert cfg == PipelineConfig(sampler=SamplerConfig(restart=1.0), synth=cfg.synth)


def test_bad_yaml_and_missing(tmp_path):
    (tmp_path / "bad.yaml").write_text("sampler: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "list.yaml").write_text("sampler: [1, 2]\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(tmp_path / "list.yaml")


@pytest.mark.parametrize("name", ["demo", "gowalla", "movielens", "synthetic-large"])
def test_shipped_configs_load(name):
    from pathlib import Path

    cfg = load_config(Path(__file__).parents[1] / f"configs/{name}.yaml")
    assert cfg.sampler.num_layers >= 1


def test_a_value_error_names_the_file(tmp_path):
    from pinsage.config import load_config
    from pinsage.errors import ConfigError

    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: -1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}.train: ") and "train.lr" in str(
        info.value
    )


def test_a_moved_key_still_loads_with_a_warning(tmp_path, caplog):
    path = tmp_path / "old.yaml"
    path.write_text("train: {num_workers: 0, epochs: 2, torch_threads: 3}\n")
    cfg = load_config(path)
    assert (cfg.execution.producers, cfg.execution.torch_threads) == (0, 3)
    assert cfg.train.epochs == 2
    assert "'train.num_workers' is now 'execution.producers'" in caplog.text
    path.write_text("train: {producers: 0}\nexecution: {producers: 1}\n")
    with pytest.raises(
        ConfigError, match="both 'train.producers' and 'execution.producers'"
    ):
        load_config(path)


def test_the_execution_section_rejects_what_cannot_run(tmp_path):
    path = tmp_path / "bad.yaml"
    for bad, key in [
        ("{device: gpu}", "execution.device"),
        ("{workers: 0}", "execution.workers"),
        ("{producer: fork}", "execution.producer"),
    ]:
        path.write_text(f"execution: {bad}\n")
        with pytest.raises(ConfigError, match=key):
            load_config(path)
