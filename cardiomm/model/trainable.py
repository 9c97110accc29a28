"""Which parameters a run trains: the whole network, or small groups of it (prompts,
adapters, data consistency) on top of a frozen backbone, e.g. for private fine-tuning,
where fewer trained coordinates mean less noise in all for the same epsilon.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from torch import nn

# Group -> whether a parameter (by its state-dict name) belongs to it.
TRAINABLE_GROUPS: dict[str, Callable[[str], bool]] = {
    "all": lambda name: True,
    # The prompt banks and the projections of the two texts into the network.
    "prompts": lambda name: (
        ".prompters." in name
        or name.startswith(("metadata_projection.", "undersampling_projection."))
    ),
    # The metadata adapters of every U-Net level.
    "adapters": lambda name: ".adapters." in name,
    # The learned data-consistency step of every cascade.
    "data_consistency": lambda name: ".data_consistency." in name,
}


def trainable_names(names: Iterable[str], groups: Iterable[str]) -> list[str]:
    """The state-dict ``names`` that belong to ``groups`` (:data:`TRAINABLE_GROUPS`).

    Raises:
        ValueError: an unknown group, or no group at all.
    """
    groups = tuple(groups)
    unknown = sorted(set(groups) - set(TRAINABLE_GROUPS))
    if unknown or not groups:
        raise ValueError(
            f"unknown trainable group(s) {', '.join(unknown) or '(none given)'}; choose from "
            f"{', '.join(TRAINABLE_GROUPS)}"
        )
    return [name for name in names if any(TRAINABLE_GROUPS[group](name) for group in groups)]


def select_trainable(network: nn.Module, groups: Iterable[str]) -> int:
    """Train only the parameters of ``groups`` (:data:`TRAINABLE_GROUPS`), freeze the rest.

    Returns:
        the number of trainable values.

    Raises:
        ValueError: an unknown group, or groups that hold no parameter of ``network``.
    """
    groups = tuple(groups)
    wanted = set(trainable_names((name for name, _ in network.named_parameters()), groups))
    count = 0
    for name, parameter in network.named_parameters():
        parameter.requires_grad_(name in wanted)
        count += parameter.numel() if name in wanted else 0
    if count == 0:
        raise ValueError(f"the network has no parameter in the trainable groups {list(groups)}")
    return count
