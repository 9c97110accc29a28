"""The study's public backbone: a model pre-trained on data no site of the study holds, which
private fine-tuning starts from.

``study.public_backbone: {preset: small, steps: 600}`` trains the study's model centrally
on that synthetic preset (its own data set, generated on first use: no internal or
held-out site of the study is in it), leaving out its centres named like the study's
held-out ones (the same scanner types), with the study's model, text encoder, masks and
learning rate, once per study (``<study>/public-backbone/``, reused on resume).
Federations whose catalogue entry says ``public_backbone: true`` start from its weights
(``federation.initial_checkpoint``) and may train only a small part of them
(``train.trainable``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from simulations.study.composition import compose, experiment_overrides, hydra_value
from simulations.study.settings import StudySettings

BACKBONE_FOLDER = "public-backbone"
FINAL = Path("checkpoints") / "final.pt"
DEFINITION_FILE = "definition.json"


def public_backbone(config: DictConfig, settings: StudySettings, study_dir: Path) -> Path | None:
    """The backbone checkpoint (trained now, or by an earlier invocation with the same
    definition); None when no experiment of the study starts from it."""
    if settings.public_backbone is None or not any(
        spec.public_backbone for spec in settings.experiments
    ):
        return None
    from simulations.training import run_training

    preset, steps = settings.public_backbone
    folder = study_dir / BACKBONE_FOLDER
    overrides = backbone_overrides(config, preset, steps, folder, settings.site_threads)
    definition = {"preset": preset, "steps": steps, "overrides": overrides}
    recorded = folder / DEFINITION_FILE
    if (
        (folder / FINAL).is_file()
        and recorded.is_file()
        and json.loads(recorded.read_text()) == definition
    ):
        return folder / FINAL
    folder.mkdir(parents=True, exist_ok=True)
    run_training(compose("config", overrides), show_progress=False)
    recorded.write_text(json.dumps(definition, indent=2))  # after: a crash leaves no claim
    return folder / FINAL


def backbone_overrides(
    config: DictConfig, preset: str, steps: int, folder: Path, threads: int = 1
) -> list[str]:
    """Overrides of configs/config.yaml for the backbone: the study's model and training
    settings on the centres of the synthetic ``preset`` except those named like the study's
    held-out centres: the synthetic presets number the same scanner types alike (Center005
    is a GE 1.5T, Center006 a Siemens 0.55T in each), so the backbone sees neither the
    held-out vendor nor the held-out field strength."""
    root = Path(str(config.data.root)).expanduser().parent / f"synthetic-{preset}"
    from cardiomm.data.synthetic import get_preset

    public = {site.centre for site in get_preset(preset).sites}
    held_out = [str(centre) for centre in config.data.get("hold_out", []) if centre in public]
    fixed = [
        "data=synthetic",
        f"data.synthetic_preset={preset}",
        f"data.root={hydra_value(str(root))}",
        "data.manifest=null",
        f"data.hold_out={hydra_value(held_out)}",
        "data.hold_out_count=0",
        "data.sites=[]",
        f"train.max_steps={steps}",
        f"seed={int(config.seed)}",
        "checkpoint_every=0",
        f"train.num_threads={threads}",
        f"output_dir={hydra_value(str(folder))}",
        "method=public-backbone",
    ]
    return experiment_overrides(config, "config", [], fixed)


def backbone_override(checkpoint: Any) -> str:
    """The federation override that starts from ``checkpoint``."""
    return f"federation.initial_checkpoint={hydra_value(str(checkpoint))}"
