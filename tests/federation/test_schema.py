"""Every default of the federation, strategy, tracking and privacy configuration is stated
once, in its typed schema (federation/schema.py, cardiomm/privacy/schema.py): the YAML presets
only override it, and no Python reader carries its own fallback for a key a schema types
(issue 28, item 2)."""

import ast
import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cardiomm.config import ConfigError, read_yaml_file
from cardiomm.privacy import (
    CentralDPSettings,
    DPSGDSettings,
    PrivacySettings,
    SecureAggregationSettings,
)
from cardiomm.privacy.schema import (
    CentralDPConfig,
    DPSGDConfig,
    PrivacyConfig,
    SecureAggregationConfig,
)
from cardiomm.train import TrainConfig
from cardiomm.train.schema import TrainSchema
from federation.config import compose_overrides
from federation.reply_checks import ReplyLimits
from federation.schema import (
    FederationConfig,
    RepliesConfig,
    StrategyConfig,
    TrackingConfig,
    TransportConfig,
    ValidationConfig,
    schema_defaults,
)
from federation.transport import TransportSettings
from server.checkpoints import check_same_recipe
from server.settings import FederationSettings
from simulations.classical_baselines import ClassicalSettings
from simulations.classical_schema import ClassicalConfig, classical_config
from simulations.study.schema import ClinicalConfig, StudyConfig, study_config
from strategies.settings import StrategySettings
from strategies.update_validation import ValidationSettings

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
# Section of a YAML file -> the schema that types it, per file that starts from the schema.
TYPED_SECTIONS = {
    **{path: {"": StrategyConfig} for path in sorted((CONFIGS / "strategy").glob("*.yaml"))},
    CONFIGS / "federation.yaml": {"federation": FederationConfig, "tracking": TrackingConfig},
    CONFIGS / "simulate.yaml": {
        "tracking": TrackingConfig,
        "study": StudyConfig,
        "classical": ClassicalConfig,
    },
    CONFIGS / "evaluate.yaml": {"classical": ClassicalConfig},
    **{path: {"": TrainSchema} for path in sorted((CONFIGS / "train").glob("*.yaml"))},
    **{path: {"study": StudyConfig} for path in sorted((CONFIGS / "experiment").glob("*.yaml"))},
    **{
        CONFIGS / "privacy" / f"{name}.yaml": {"": PrivacyConfig}
        for name in ("none", "dp_sgd", "central_dp")
    },
    # A global package: it switches secure aggregation on and turns off what cannot work with it.
    CONFIGS / "privacy" / "secagg.yaml": {"privacy": PrivacyConfig, "federation": FederationConfig},
}
SCHEMA_SECTIONS = (
    "federation.",
    "strategy.",
    "tracking.",
    "privacy.",
    "study.",
    "classical.",
    "train.",
)
# A reader may fall back on a schema's own field (a config without the section).
SCHEMA_CLASSES = {"TrainSchema", "PrivacyConfig", "StudyConfig", "ClassicalConfig"}
READER_PACKAGES = (
    "cardiomm",
    "federation",
    "strategies",
    "server",
    "client",
    "simulations",
    "benchmarks",
)
# Fallbacks that are not a schema default: what a config without the section means.
NOT_A_SCHEMA_DEFAULT = {
    # A site's DP-SGD calibration under `cardiomm train`, whose config has no federation
    # section: one local run is one round (a federated config always has the schema's key).
    "cardiomm/site_round/privacy.py reads federation.num_rounds",
}
# The four values code and YAML used to disagree on, as every composed run had them.
FORMER_DISAGREEMENTS = {
    "federation.cross_site.enabled": True,
    "federation.global_evaluation": True,
    "federation.timeout": 3600,
    "strategy.server_learning_rate": 0.01,
}


def _leaves(value, prefix=""):
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


def _restated(path, section, schema, root=ROOT):
    """The values of ``section`` in ``path`` that its schema, or the preset of the same group
    it starts from (``defaults: [quick, _self_]``), already gives."""
    content = read_yaml_file(path) or {}
    values = content.get(section, {}) if section else content
    defaults = dict(_leaves(schema_defaults(schema)))
    for parent in _parent_presets(path, content):
        parent_values = read_yaml_file(parent) or {}
        defaults.update(_leaves(parent_values.get(section, {}) if section else parent_values))
    return [
        f"{path.relative_to(root)}: {section + '.' if section else ''}{key}: {value!r}"
        for key, value in _leaves(values or {})
        if key in defaults and defaults[key] == value and type(defaults[key]) is type(value)
    ]


def _parent_presets(path, content):
    """The presets of ``path``'s own group that it starts from, nearest last."""
    parents = []
    for entry in content.get("defaults", []):
        if (
            isinstance(entry, str)
            and entry != "_self_"
            and (path.parent / f"{entry}.yaml").is_file()
        ):
            parent = path.parent / f"{entry}.yaml"
            parents += [*_parent_presets(parent, read_yaml_file(parent) or {}), parent]
    return parents


def test_every_preset_of_a_schema_group_is_checked():
    presets = {
        path
        for group in ("strategy", "privacy", "experiment", "train")
        for path in (CONFIGS / group).glob("*.yaml")
    }
    assert presets <= set(TYPED_SECTIONS)


def test_no_yaml_restates_a_schema_default():
    restated = [
        line
        for path, sections in TYPED_SECTIONS.items()
        for section, schema in sections.items()
        for line in _restated(path, section, schema)
    ]
    assert restated == []


def test_the_restatement_check_catches_a_restated_default(tmp_path):
    preset = tmp_path / "configs" / "restating.yaml"
    preset.parent.mkdir()
    preset.write_text("federation:\n  num_rounds: 3\n  timeout: 600\n")
    found = _restated(preset, "federation", FederationConfig, root=tmp_path)
    assert found == ["configs/restating.yaml: federation.num_rounds: 3"]


def test_the_restatement_check_catches_a_restated_privacy_default(tmp_path):
    preset = tmp_path / "configs" / "privacy" / "restating.yaml"
    preset.parent.mkdir(parents=True)
    preset.write_text("dp_sgd:\n  enabled: true\n  delta: 1.0e-5\n  unit: patient\n")
    found = _restated(preset, "", PrivacyConfig, root=tmp_path)
    assert found == ["configs/privacy/restating.yaml: dp_sgd.delta: 1e-05"]


def _literal_fallbacks(path, root=ROOT):
    """``select(config, "<schema'd key>", <default>)``-style reads in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    constants = _module_strings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or len(node.args) < 2:
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        key = _key_text(node.args[1], constants)
        default = node.args[2] if len(node.args) > 2 else _keyword(node, "default")
        own = default is not None and not _from_a_schema(default)
        if name in ("select", "config_value") and own and key.startswith(SCHEMA_SECTIONS):
            found.append(f"{path.relative_to(root)}:{node.lineno} reads {key}")
    return found


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _from_a_schema(default: ast.expr) -> bool:
    """Whether a fallback is a schema's field (``TrainSchema.device``), not a value of its own."""
    return (
        isinstance(default, ast.Attribute)
        and isinstance(default.value, ast.Name)
        and default.value.id in SCHEMA_CLASSES
    )


def _module_strings(tree: ast.Module) -> dict[str, str]:
    """The module's ``NAME = "..."`` constants (a key is often named once at the top)."""
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }


def _key_text(key: ast.expr, constants: dict[str, str]) -> str:
    """A key argument as written: a string, a module constant's string, or an f-string's text
    with ``{}`` for each field (``f"privacy.{name}.enabled"`` reads privacy.{}.enabled); ""
    for anything else."""
    if isinstance(key, ast.Constant):
        return str(key.value)
    if isinstance(key, ast.Name):
        return constants.get(key.id, "")
    if isinstance(key, ast.JoinedStr):
        return "".join(
            str(part.value) if isinstance(part, ast.Constant) else "{}" for part in key.values
        )
    return ""


def test_no_python_reader_carries_a_fallback_for_a_schema_key():
    found = [
        line
        for package in READER_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in _literal_fallbacks(path)
        if _without_line(line) not in NOT_A_SCHEMA_DEFAULT
    ]
    assert found == []


def _without_line(found: str) -> str:
    place, _, rest = found.partition(" ")
    return f"{place.rsplit(':', 1)[0]} {rest}"


def test_the_reader_check_catches_a_literal_fallback(tmp_path):
    reader = tmp_path / "reader.py"
    reader.write_text('x = select(config, "federation.timeout", None)\n')
    assert _literal_fallbacks(reader, root=tmp_path) == ["reader.py:1 reads federation.timeout"]


def test_the_reader_check_catches_a_fallback_under_a_composed_key(tmp_path):
    reader = tmp_path / "reader.py"
    reader.write_text(
        'on = OmegaConf.select(config, f"privacy.{name}.enabled", default=False)\n'
        'unit = config_value(config, "privacy.dp_sgd.unit", "slice")\n'
        'KEY = "privacy.secure_aggregation.enabled"\n'
        "secure = OmegaConf.select(config, KEY, default=False)\n"
    )
    assert _literal_fallbacks(reader, root=tmp_path) == [
        "reader.py:1 reads privacy.{}.enabled",
        "reader.py:2 reads privacy.dp_sgd.unit",
        "reader.py:4 reads privacy.secure_aggregation.enabled",
    ]


def test_a_fallback_on_the_schemas_own_field_is_not_a_second_default(tmp_path):
    reader = tmp_path / "reader.py"
    reader.write_text(
        'device = config_value(config, "train.device", TrainSchema.device)\n'
        'device = config_value(config, "train.device", "auto")\n'
    )
    assert _literal_fallbacks(reader, root=tmp_path) == ["reader.py:2 reads train.device"]


@pytest.mark.parametrize("key", sorted(FORMER_DISAGREEMENTS))
def test_a_former_disagreement_has_one_value_everywhere(key):
    section, _, rest = key.partition(".")
    schema = {"federation": FederationConfig, "strategy": StrategyConfig}[section]
    expected = FORMER_DISAGREEMENTS[key]
    assert dict(_leaves(schema_defaults(schema)))[rest] == expected
    value = compose_overrides("")
    for part in key.split("."):
        value = value[part]
    assert value == expected


def test_the_server_settings_take_the_former_disagreements_from_the_schema(tmp_path):
    settings = FederationSettings.from_config(compose_overrides(f"output_dir={tmp_path}"))
    assert settings.cross_site is True
    assert settings.global_evaluation is True
    assert settings.timeout == 3600.0
    assert settings.aggregation.server_learning_rate == 0.01
    assert StrategySettings().server_learning_rate == 0.01


@pytest.mark.parametrize(
    ("settings", "schema"),
    [
        (ReplyLimits, RepliesConfig),
        (ValidationSettings, ValidationConfig),
        (TransportSettings, TransportConfig),
    ],
)
def test_a_settings_object_defaults_to_its_schema(settings, schema):
    assert dataclasses.asdict(settings()) == schema_defaults(schema)


@pytest.mark.parametrize(
    ("settings", "schema"),
    [
        (DPSGDSettings, DPSGDConfig),
        (CentralDPSettings, CentralDPConfig),
        (SecureAggregationSettings, SecureAggregationConfig),
        (PrivacySettings, PrivacyConfig),
    ],
)
def test_the_privacy_settings_default_to_their_schema(settings, schema):
    assert dataclasses.asdict(settings()) == schema_defaults(schema)


def test_a_config_without_a_privacy_block_reads_the_schema_defaults():
    assert PrivacySettings.read(OmegaConf.create({"train": {}})) == PrivacySettings()
    assert PrivacySettings.read(None).label == "none"


def test_every_privacy_key_is_composed_from_the_schema():
    composed = OmegaConf.to_container(compose_overrides("").privacy)
    assert composed == schema_defaults(PrivacyConfig)


def test_a_privacy_value_of_the_wrong_type_is_refused_with_its_key():
    with pytest.raises(ConfigError, match=r"privacy\.dp_sgd\.delta: Value 'small'"):
        compose_overrides("privacy=dp_sgd privacy.dp_sgd.delta=small")


def test_the_strategy_settings_default_to_the_schema():
    defaults = schema_defaults(StrategyConfig)
    settings = dataclasses.asdict(StrategySettings())
    assert {key: settings[key] for key in defaults if key != "personalised"} == {
        key: value for key, value in defaults.items() if key != "personalised"
    }
    assert list(StrategySettings().personalised) == defaults["personalised"]


def test_a_value_of_the_wrong_type_is_refused_with_its_key():
    with pytest.raises(ConfigError, match=r"federation\.num_rounds: Value 'three'"):
        compose_overrides("federation.num_rounds=three")


def test_a_registered_strategy_may_still_add_its_own_key():
    assert compose_overrides("++strategy.server_step=0.25").strategy.server_step == 0.25


def test_a_checkpoint_from_before_the_schema_resumes_with_its_defaults(tmp_path):
    config = compose_overrides(f"output_dir={tmp_path}")
    saved = OmegaConf.to_container(config, resolve=True)
    del saved["strategy"]["personalise_from_round"]  # a key the code defaulted then
    check_same_recipe(OmegaConf.to_yaml(saved), config, tmp_path / "latest.pt")


def test_a_checkpoint_with_another_schema_value_is_still_another_recipe(tmp_path):
    config = compose_overrides(f"output_dir={tmp_path}")
    saved = OmegaConf.to_container(config, resolve=True)
    saved["strategy"]["personalise_from_round"] = 2
    with pytest.raises(ValueError, match=r"strategy\.personalise_from_round"):
        check_same_recipe(OmegaConf.to_yaml(saved), config, tmp_path / "latest.pt")


def test_zero_local_steps_is_still_refused_not_replaced(tmp_path):
    with pytest.raises(ValueError, match=r"federation\.local_steps must be >= 1"):
        FederationSettings.from_config(
            compose_overrides(f"output_dir={tmp_path} federation.local_steps=0")
        )


def test_null_local_steps_take_the_trainer_steps(tmp_path):
    config = compose_overrides(f"output_dir={tmp_path} federation.local_steps=null")
    assert FederationSettings.from_config(config).local_steps == config.train.max_steps


def test_the_restatement_check_counts_what_a_parent_preset_gives(tmp_path):
    group = tmp_path / "configs" / "experiment"
    group.mkdir(parents=True)
    (group / "base.yaml").write_text("study:\n  rounds: 6\n  zero_shot_every: 3\n")
    child = group / "child.yaml"
    child.write_text("defaults:\n  - base\n  - _self_\nstudy:\n  rounds: 6\n  zero_shot_every: 0\n")
    # zero_shot_every 0 is the schema's default but undoes the parent's 3: an override.
    found = _restated(child, "study", StudyConfig, root=tmp_path)
    assert found == ["configs/experiment/child.yaml: study.rounds: 6"]


def test_a_config_without_a_study_block_reads_the_schema_defaults():
    typed = study_config(OmegaConf.create({"seed": 0}))
    assert dataclasses.asdict(typed) == schema_defaults(StudyConfig)


def test_a_partial_study_block_keeps_the_other_defaults():
    typed = study_config(OmegaConf.create({"study": {"max_eval_items": 2}}))
    assert typed.max_eval_items == 2
    assert typed.clinical == ClinicalConfig()


def test_every_study_key_but_the_catalogue_is_composed_from_the_schema():
    from simulations.study.composition import load_study_config

    study = OmegaConf.to_container(load_study_config(["experiment=paper"]).study)
    defaults = schema_defaults(StudyConfig)
    assert set(study) == set(defaults)
    assert study["clinical"] == defaults["clinical"]
    assert study["max_eval_items"] == defaults["max_eval_items"]


def test_a_study_value_of_the_wrong_type_is_refused_with_its_key():
    from simulations.study.composition import load_study_config

    with pytest.raises(ConfigError, match=r"cannot set study\.rounds: Value 'many'"):
        load_study_config(["study.rounds=many"])


def test_the_classical_settings_default_to_their_schema():
    settings = ClassicalSettings()
    defaults = schema_defaults(ClassicalConfig)
    assert (settings.tune, settings.tuning_slices, settings.workers) == (
        defaults["tune"],
        defaults["tuning_slices"],
        defaults["workers"],
    )
    assert settings.cache is None and defaults["cache_dir"] is None


def test_a_config_without_a_classical_block_reads_the_schema_defaults():
    assert classical_config(OmegaConf.create({"seed": 0})) == ClassicalConfig()
    assert classical_config(OmegaConf.create({"classical": {"workers": 3}})).tuning_slices == 12


def test_the_trainer_defaults_to_its_schema():
    settings = TrainConfig().to_dict()
    defaults = schema_defaults(TrainSchema)
    assert {**settings, "trainable": list(settings["trainable"])} == defaults


def test_every_train_key_is_composed_from_the_schema(tmp_path):
    composed = OmegaConf.to_container(compose_overrides("seed=0").train, resolve=True)
    assert composed == schema_defaults(TrainSchema)


def test_a_checkpoint_from_before_the_train_schema_resumes(tmp_path):
    config = compose_overrides(f"output_dir={tmp_path}")
    saved = OmegaConf.to_container(config, resolve=True)
    del saved["train"]["warmup_steps"]  # configs/train/default.yaml did not state it then
    check_same_recipe(OmegaConf.to_yaml(saved), config, tmp_path / "latest.pt")
