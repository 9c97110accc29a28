"""A federated model with vendor-personalised parameters, as one reconstructor.

The checkpoint holds the shared weights (with the across-vendor fallback in the personalised
parameters) and, per vendor, its copy of those parameters. Each scan is reconstructed with
the copy of the vendor its metadata text names; an unknown or unseen vendor gets the fallback.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from cardiomm.data.metadata import vendor_from_text
from cardiomm.model.interface import ReconstructionInput
from cardiomm.model.reconstructor import NetworkReconstructor
from cardiomm.text import TextEncoder

# Where a checkpoint's ``extra`` keeps the vendor copies: {vendor: {key: tensor}}.
VENDOR_PARTS_KEY = "vendor_parts"


class VendorPartsReconstructor:
    """Swaps in the scan vendor's parameters before reconstructing.

    Args:
        base: the network (holding the shared weights and the fallback) and its encoder.
        vendor_parts: per canonical vendor name, its personalised parameters.
    """

    def __init__(
        self, base: NetworkReconstructor, vendor_parts: Mapping[str, Mapping[str, torch.Tensor]]
    ) -> None:
        keys = {key for part in vendor_parts.values() for key in part}
        state = base.network.state_dict()
        unknown = sorted(keys - set(state))
        if unknown:
            raise ValueError(f"vendor parts name parameters the network lacks: {unknown[:3]}")
        self.base = base
        self.name = base.name
        self.vendor_parts = {vendor: dict(part) for vendor, part in vendor_parts.items()}
        self.fallback = {key: state[key].detach().clone() for key in sorted(keys)}
        self._loaded: str | None = None

    @property
    def network(self) -> torch.nn.Module:
        return self.base.network

    @property
    def text_encoder(self) -> TextEncoder | None:
        return self.base.text_encoder

    @property
    def vendors(self) -> list[str]:
        return sorted(self.vendor_parts)

    def part_for(self, metadata_text: str) -> str | None:
        """The vendor whose copy a scan gets (None: the fallback)."""
        vendor = vendor_from_text(metadata_text)
        return vendor if vendor in self.vendor_parts else None

    def reconstruct(self, inputs: ReconstructionInput) -> torch.Tensor:
        """float32 (B, ky, kx) magnitude images; a batch mixing vendors is split by vendor."""
        chosen = [self.part_for(text) for text in inputs.metadata_text]
        if len(set(chosen)) == 1:
            self._load(chosen[0])
            return self.base.reconstruct(inputs)
        output: torch.Tensor | None = None
        for vendor in dict.fromkeys(chosen):
            index = [position for position, name in enumerate(chosen) if name == vendor]
            self._load(vendor)
            images = self.base.reconstruct(_subset(inputs, index))
            if output is None:
                output = images.new_zeros((len(chosen), *images.shape[1:]))
            output[index] = images
        return output

    def restore_fallback(self) -> None:
        """Put the shared fallback back into the network (as it was given)."""
        self._loaded = "__vendor_copy__"  # force the load
        self._load(None)

    def _load(self, vendor: str | None) -> None:
        if vendor == self._loaded:
            return
        part = self.vendor_parts[vendor] if vendor is not None else self.fallback
        self.base.network.load_state_dict(part, strict=False)
        self._loaded = vendor


def _subset(inputs: ReconstructionInput, index: list[int]) -> ReconstructionInput:
    return ReconstructionInput(
        masked_kspace=inputs.masked_kspace[index],
        mask=inputs.mask[index],
        metadata_text=[inputs.metadata_text[position] for position in index],
        undersampling_text=[inputs.undersampling_text[position] for position in index],
    )
