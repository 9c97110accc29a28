"""The study's plan: folds, experiments from the catalogue, the training budget, and how each
experiment's config is composed from the study's (no training here)."""

import pytest

from cardiomm.cli import main
from cardiomm.config import load_config
from server.settings import FederationSettings
from simulations.study.composition import (
    experiment_overrides,
    hydra_value,
    load_study_config,
)
from simulations.study.experiments import root_config
from simulations.study.plan import (
    Fold,
    parse_catalogue,
    plan_folds,
    plan_study,
    select_experiments,
    training_budget,
)
from simulations.study.settings import StudySettings

CENTRES = ["Center001", "Center002", "Center003", "Center004"]


@pytest.fixture(scope="module")
def quick():
    return load_study_config([])


def test_held_out_fold_names_its_centres():
    (fold,) = plan_folds(CENTRES, "held-out", ["Center004", "Center003"])
    assert fold.held_out == ("Center003", "Center004")
    assert fold.internal == ("Center001", "Center002")
    assert fold.name == "held-out=Center003+Center004"
    assert fold.slug == "held-out-Center003-Center004"


def test_leave_one_out_holds_out_each_centre_in_turn():
    folds = plan_folds(CENTRES, "leave-one-out")
    assert [fold.held_out for fold in folds] == [(centre,) for centre in CENTRES]
    for fold in folds:
        assert set(fold.internal) == set(CENTRES) - set(fold.held_out)


def test_leave_one_out_can_be_limited_to_some_centres():
    folds = plan_folds(CENTRES, "leave-one-out", only=["Center004", "Center002"])
    assert [fold.held_out for fold in folds] == [("Center002",), ("Center004",)]


@pytest.mark.parametrize(
    ("mode", "held_out", "only", "message"),
    [
        ("held-out", [], [], r"needs held-out centres: set data.hold_out"),
        ("held-out", ["Center009"], [], r"data.hold_out names Center009, not in the data"),
        ("held-out", CENTRES, [], r"holds out every centre"),
        ("leave-one-out", [], ["Center007"], r"study.leave_one_out_centres names Center007"),
        ("k-fold", [], [], r"study.folds must be one of held-out, leave-one-out"),
    ],
)
def test_impossible_folds_are_refused(mode, held_out, only, message):
    with pytest.raises(ValueError, match=message):
        plan_folds(CENTRES, mode, held_out, only)


def test_a_single_centre_cannot_be_left_out():
    with pytest.raises(ValueError, match="none is left to train"):
        plan_folds(["Center001"], "leave-one-out")


def test_budget_every_experiment_spends_the_federations_total_steps():
    rounds, local_steps, sites = 4, 15, 3
    federated = training_budget("federated", sites, rounds, local_steps)
    local = training_budget("local", sites, rounds, local_steps)
    centralised = training_budget("centralised", sites, rounds, local_steps)
    # Each site trains rounds x local_steps, federated or alone.
    assert federated.steps_per_model == local.steps_per_model == rounds * local_steps
    assert (federated.rounds, federated.local_steps) == (rounds, local_steps)
    # The pooled model takes as many steps as all sites of the federation together.
    assert centralised.steps_per_model == sites * rounds * local_steps
    assert federated.total_steps == local.total_steps == centralised.total_steps == 180


def test_budget_refuses_an_empty_schedule():
    with pytest.raises(ValueError, match=r"study.rounds=0"):
        training_budget("federated", 3, 0, 10)
    with pytest.raises(ValueError, match="unknown experiment kind"):
        training_budget("ensemble", 3, 1, 10)


def test_plan_expands_every_experiment_of_every_fold_in_order(quick):
    settings = StudySettings.from_config(quick)
    folds = plan_folds(CENTRES, "leave-one-out", only=["Center003", "Center004"])
    planned = plan_study(folds, settings.experiments, 2, 5)
    names = [spec.name for spec in settings.experiments]
    assert [(item.fold.name, item.spec.name) for item in planned] == [
        (fold.name, name) for fold in folds for name in names
    ]
    assert {item.budget.total_steps for item in planned} == {3 * 2 * 5}
    assert planned[0].label == "held-out=Center003 / local-only / seed 0"
    assert planned[0].folder == "local-only/seed-0"


def test_every_experiment_runs_with_every_seed_seed_by_seed():
    specs = parse_catalogue({"a": {"kind": "local"}, "b": {"kind": "centralised"}})
    (fold,) = plan_folds(CENTRES, "held-out", held_out=["Center004"])
    planned = plan_study([fold], list(specs.values()), 2, 5, seeds=[7, 3])
    assert [(item.seed, item.spec.name) for item in planned] == [
        (7, "a"),
        (7, "b"),
        (3, "a"),
        (3, "b"),
    ]


def test_a_catalogue_entry_can_run_with_the_first_seeds_only():
    specs = parse_catalogue({"a": {"kind": "local"}, "b": {"kind": "centralised", "seeds": 1}})
    (fold,) = plan_folds(CENTRES, "held-out", held_out=["Center004"])
    planned = plan_study([fold], list(specs.values()), 2, 5, seeds=[0, 1, 2])
    assert [(item.seed, item.spec.name) for item in planned if item.spec.name == "b"] == [(0, "b")]
    assert [item.seed for item in planned if item.spec.name == "a"] == [0, 1, 2]


def test_repeated_seeds_are_refused():
    specs = parse_catalogue({"a": {"kind": "local"}})
    (fold,) = plan_folds(CENTRES, "held-out", held_out=["Center004"])
    with pytest.raises(ValueError, match="distinct seeds"):
        plan_study([fold], list(specs.values()), 2, 5, seeds=[1, 1])


def test_catalogue_entries_are_data():
    specs = parse_catalogue(
        {"fedyogi": {"kind": "federated", "overrides": ["strategy=fedyogi"], "description": "x"}}
    )
    assert specs["fedyogi"].overrides == ("strategy=fedyogi",)
    assert specs["fedyogi"].kind == "federated"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"kind": "ensemble"}, r"kind must be one of local, centralised, federated"),
        ({"kind": "reference"}, r"scored in every fold without an entry"),
        ({"kind": "federated", "overrides": "strategy=fedavg"}, r"overrides must be a list"),
        ({"kind": "federated", "seeds": 0}, r"seeds must be a whole number >= 1"),
        ("federated", r"must be a mapping with a kind"),
    ],
)
def test_bad_catalogue_entries_are_named(entry, message):
    with pytest.raises(ValueError, match=rf"study.catalogue.bad.*{message}|{message}"):
        parse_catalogue({"bad": entry})


def test_unknown_or_repeated_experiments_are_refused(quick):
    catalogue = parse_catalogue({"a": {"kind": "local"}, "b": {"kind": "centralised"}})
    assert [spec.name for spec in select_experiments(["b", "a"], catalogue)] == ["b", "a"]
    with pytest.raises(ValueError, match=r"names fedzzz, not in study.catalogue \(known: a, b\)"):
        select_experiments(["a", "fedzzz"], catalogue)
    with pytest.raises(ValueError, match="lists a twice"):
        select_experiments(["a", "a"], catalogue)
    with pytest.raises(ValueError, match=r"study\.experiments is empty"):
        select_experiments([], catalogue)


def test_quick_preset_runs_the_headline_experiments_once_on_the_study_set(quick):
    settings = StudySettings.from_config(quick)
    kinds = {spec.name: spec.kind for spec in settings.experiments}
    assert kinds == {
        "local-only": "local",
        "centralised": "centralised",
        "fedavg": "federated",
        "vendor_balanced": "federated",
        "metadata-ablation": "federated",
    }
    ablation = next(spec for spec in settings.experiments if spec.name == "metadata-ablation")
    assert "text=none" in ablation.overrides
    assert settings.seeds == (0,)
    assert quick.model.name == "small"
    assert quick.data.synthetic_preset == "study"
    assert list(quick.data.hold_out) == ["Center005", "Center006"]
    assert quick.masks.reference_matrix is None  # clinical-size matrices: masks as acquired


def test_standard_preset_runs_the_headline_experiments_with_three_seeds():
    settings = StudySettings.from_config(load_study_config(["experiment=standard"]))
    assert settings.seeds == (0, 1, 2)
    seeds = {spec.name: spec.seeds for spec in settings.experiments}
    for name in ("local-only", "centralised", "fedavg", "vendor_balanced", "metadata-ablation"):
        assert seeds[name] is None  # all three
    for name in ("fedprox", "fedadam", "fedyogi", "vendor_personalised"):
        assert seeds[name] == 1


def test_the_server_lr_preset_scores_no_held_out_centre_and_chooses_on_validation():
    settings = StudySettings.from_config(load_study_config(["experiment=server-lr"]))
    assert not settings.held_out_evaluation
    assert set(settings.selection_groups) == {"fedadam", "fedyogi"}
    names = {spec.name for spec in settings.experiments}
    for candidates in settings.selection_groups.values():
        assert set(candidates) <= names


def test_paper_preset_adds_the_dp_variants_and_the_paper_model():
    paper = load_study_config(["experiment=paper"])
    names = [spec.name for spec in StudySettings.from_config(paper).experiments]
    assert {"fedavg-dp", "vendor_balanced-dp", "metadata-ablation"} <= set(names)
    assert paper.model.name == "paper"
    assert paper.data.synthetic_preset == "paper"


def test_every_catalogue_entry_composes_a_valid_config(quick):
    """Each entry's overrides give the config its root expects (federation settings checked)."""
    settings = StudySettings.from_config(quick)
    catalogue = parse_catalogue(dict(quick.study.catalogue))
    assert set(spec.name for spec in settings.experiments) <= set(catalogue)
    for spec in catalogue.values():
        root = root_config(spec.kind)
        config = load_config(experiment_overrides(quick, root, spec.overrides), root)
        assert config.model.name == "small"
        assert config.train.learning_rate == quick.train.learning_rate
        assert config.masks.reference_matrix is None
        if root == "federation":
            federation = FederationSettings.from_config(config)
            expected = next(o for o in spec.overrides if o.startswith("strategy="))
            assert federation.strategy == expected.split("=", 1)[1]
    ablation = load_config(
        experiment_overrides(quick, "federation", catalogue["metadata-ablation"].overrides),
        "federation",
    )
    assert ablation.text.name == "none"
    dp = load_config(
        experiment_overrides(quick, "federation", catalogue["fedavg-dp"].overrides), "federation"
    )
    assert dp.privacy.dp_sgd.enabled


def test_experiments_inherit_what_the_study_changed():
    study = load_study_config(
        ["model=small", "train.batch_size=2", "seed=7", "text=minilm", "text.cache_dir=/tmp/x y"]
    )
    overrides = experiment_overrides(study, "federation", ["strategy=fedprox"], ["output_dir=/o"])
    assert overrides[:5] == [
        "data=synthetic",
        "masks=cmrxrecon2025",
        "model=small",
        "text=minilm",
        "train=default",
    ]
    assert overrides[-2:] == ["strategy=fedprox", "output_dir=/o"]
    config = load_config(overrides, "federation")
    assert (config.model.name, config.train.batch_size, config.seed) == ("small", 2, 7)
    assert config.train.seed == 7  # still the interpolation of seed, not a copied value
    assert config.text.cache_dir == "/tmp/x y"
    assert config.strategy.name == "fedprox"
    # The study's hold-out settings never travel: experiments read the fold's manifest.
    assert not any(item.startswith("++data.hold_out") for item in overrides)


def test_an_experiment_switching_a_group_drops_the_studys_values_of_it():
    study = load_study_config(["text=minilm", "text.cache_dir=/tmp/cache"])
    overrides = experiment_overrides(study, "federation", ["text=none"])
    assert "text=minilm" not in overrides
    assert not any(item.startswith("++text.") for item in overrides)
    assert load_config(overrides, "federation").text == {"name": "none"}


@pytest.mark.parametrize(
    "value",
    [
        "/plain/path-1/manifest.json",
        "held-out=Center003+Center004 / fedavg",
        "it's \\ odd",
        "C:\\dir\\",
        "${not.an.interpolation}",
        "1e3",
        "true",
        "null",
        "sqlite:////tmp/study/mlflow.db",
        7,
        2.5e-4,
        None,
        False,
        ["Center001", "held-out"],
        [],
    ],
)
def test_hydra_values_read_back_unchanged(value):
    config = load_config([f"++data.probe={hydra_value(value)}"])
    assert config.data.probe == value
    assert type(config.data.probe) is type(value) or isinstance(value, list)


def test_fold_is_hashable_for_manifest_lookup():
    assert {Fold(("A",), ("B",)): 1}[Fold(("A",), ("B",))] == 1


def test_simulate_is_a_cardiomm_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["simulate", "--help"])
    assert exit_info.value.code == 0
    assert "held-out-centre study" in capsys.readouterr().out


def test_simulate_no_clinical_turns_the_clinical_check_off(monkeypatch, tmp_path):
    from simulations.study import runner

    seen = {}

    def fake_run_study(config, show_progress, console):
        seen["enabled"] = config.study.clinical.enabled
        raise SystemExit(0)

    monkeypatch.setattr(runner, "run_study", fake_run_study)
    with pytest.raises(SystemExit):
        main(["simulate", "--no-clinical", "--no-progress", f"output_dir={tmp_path}"])
    assert seen == {"enabled": False}


def test_the_vendor_skew_preset_scores_per_vendor_and_composes_each_federation():
    study = load_study_config(["experiment=vendor-skew"])
    settings = StudySettings.from_config(study)
    assert settings.per_vendor and settings.seeds == (0, 1, 2)
    assert study.data.synthetic_preset == "vendor-skew"
    for spec in settings.experiments:
        fixed = [f"federation.num_rounds={settings.rounds}"]
        overrides = experiment_overrides(study, "federation", spec.overrides, fixed)
        config = load_config(overrides, "federation")
        FederationSettings.from_config(config)  # validated: a bad entry raises here
    fine_tuning = next(s for s in settings.experiments if s.name == "fedavg-vendor-ft")
    config = load_config(
        experiment_overrides(study, "federation", fine_tuning.overrides), "federation"
    )
    assert list(config.strategy.personalised) == ["*"]
    assert config.strategy.vendor_weighting == "examples"


def test_the_transport_preset_composes_each_federation_with_its_transport():
    study = load_study_config(["experiment=transport"])
    settings = StudySettings.from_config(study)
    precisions = {}
    for spec in settings.experiments:
        overrides = experiment_overrides(study, "federation", spec.overrides)
        federation = FederationSettings.from_config(load_config(overrides, "federation"))
        precisions[spec.name] = federation.transport.precision
    assert precisions["fedavg"] == "float32" and precisions["fedavg-fp16"] == "float16"
    assert precisions["fedavg-ft-bf16-trained-only"] == "bfloat16"


def test_the_standard_study_runs_on_the_two_millimetre_set():
    standard = load_study_config(["experiment=standard"])
    assert standard.data.synthetic_preset == "study-standard"


def test_the_model_design_preset_chooses_between_the_four_designs_on_validation_only():
    study = load_study_config(["experiment=model-design"])
    settings = StudySettings.from_config(study)
    assert not settings.held_out_evaluation
    designs = {}
    for spec in settings.experiments:
        overrides = experiment_overrides(study, "federation", spec.overrides)
        config = load_config(overrides, "federation")
        assert FederationSettings.from_config(config).strategy == "fedavg"
        designs[spec.name] = (config.model.temporal, config.model.calibration)
    assert designs == {
        "fedavg-2d-acs": ("none", "acs"),
        "fedavg-2d-espirit": ("none", "espirit-frames"),
        "fedavg-window-acs": ("window", "acs"),
        "fedavg-window-espirit": ("window", "espirit-frames"),
    }
    assert set(settings.selection_groups["model"]) == set(designs)
