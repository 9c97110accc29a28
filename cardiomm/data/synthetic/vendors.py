"""What each vendor's scanner and reconstruction chain do to the k-space it stores.

Vendors differ in more than units. Each difference below changes the stored k-space itself
(what a normalisation cannot remove), and each is tied to the ``Vendor`` field of the
metadata text, so a model that reads the text can learn it:

- **raw-data filter**: the reconstruction chain apodises k-space (a Fermi or Hann-type filter)
  before the data are exported, which smooths the image and colours the noise;
- **receive array**: how many element columns lie across the chest (element size) and how
  strongly neighbouring elements couple their noise;
- **cine flip angle**: the vendor's protocol default relative to the field strength's;
- **units**: the receive chain's scale (orders of magnitude apart).

Partial Fourier and partial echo are not modelled: their zeros would sit in the "fully
sampled" reference too, and an exam scored against such a reference penalises any method
that fills them.

The field strength's own effects (SNR, bSSFP banding from B0 off-resonance, B1+ shading,
TR and flip angle) live in :mod:`.sequences`, :mod:`.smooth_maps` and :mod:`.sites`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

FILTERS = ("none", "fermi", "hann")


@dataclasses.dataclass(frozen=True)
class VendorChain:
    """One vendor's acquisition and export chain.

    Attributes:
        vendor: ``Siemens``, ``UIH``, ``GE`` or ``Philips``.
        intensity_scale: receive-chain units of the stored k-space.
        filter: raw-data filter, one of :data:`FILTERS`.
        filter_width: Fermi: transition width as a fraction of k-max; Hann: the filter's
            weight (0 none, 1 a full Hann window).
        filter_radius: Fermi: radius (fraction of k-max) where the filter falls to one half.
        coil_columns: element columns across the chest (and under the back).
        coil_correlation: noise correlation of neighbouring elements.
        cine_flip_factor: cine flip angle relative to the field strength's default.
    """

    vendor: str
    intensity_scale: float
    filter: str = "none"
    filter_width: float = 0.0
    filter_radius: float = 1.0
    coil_columns: int = 4
    coil_correlation: float = 0.25
    cine_flip_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.filter not in FILTERS:
            raise ValueError(f"{self.vendor}: filter must be one of {FILTERS}, not {self.filter!r}")
        if self.filter == "hann" and not 0.0 <= self.filter_width <= 1.0:
            raise ValueError(f"{self.vendor}: a Hann filter's weight must lie in [0, 1]")

    def raw_filter(self, num_ky: int, num_kx: int) -> np.ndarray:
        """float32 (ky, kx) apodisation of centred k-space, 1 at the centre.

        The filter is radial in k-space normalised to each axis' k-max (the corners of
        k-space lie at radius sqrt(2)).
        """
        ky = (np.arange(num_ky) - num_ky // 2) / max(num_ky // 2, 1)
        kx = (np.arange(num_kx) - num_kx // 2) / max(num_kx // 2, 1)
        radius = np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
        if self.filter == "fermi":
            width = max(self.filter_width, 1e-3)
            values = 1.0 / (1.0 + np.exp((radius - self.filter_radius) / width))
            values = values / values.max()
        elif self.filter == "hann":
            hann = 0.5 * (1 + np.cos(np.pi * np.clip(radius / np.sqrt(2), 0.0, 1.0)))
            values = (1 - self.filter_width) + self.filter_width * hann
        else:
            values = np.ones_like(radius)
        return values.astype(np.float32)

    def describe(self) -> dict[str, object]:
        """JSON-ready description (sidecars, manifest)."""
        return dataclasses.asdict(self)


# Defaults chosen to resemble each vendor's clinical cine protocols and export chains; only
# their differences matter to the study (see docs/data.md's table of what differs).
VENDOR_CHAINS: dict[str, VendorChain] = {
    chain.vendor: chain
    for chain in (
        VendorChain(
            "Siemens",
            intensity_scale=1e-4,
            coil_columns=4,
            coil_correlation=0.25,
        ),
        VendorChain(
            "UIH",
            intensity_scale=1e-2,
            filter="hann",
            filter_width=0.3,
            coil_columns=3,
            coil_correlation=0.2,
            cine_flip_factor=1.1,
        ),
        VendorChain(
            "GE",
            intensity_scale=1e2,
            filter="fermi",
            filter_width=0.04,
            filter_radius=0.85,
            coil_columns=2,
            coil_correlation=0.4,
            cine_flip_factor=0.9,
        ),
        VendorChain(
            "Philips",
            intensity_scale=1.0,
            filter="hann",
            filter_width=0.6,
            coil_columns=4,
            coil_correlation=0.3,
            cine_flip_factor=0.85,
        ),
    )
}


def vendor_chain(vendor: str) -> VendorChain:
    """The chain of ``vendor``, or ValueError naming the vendors there are."""
    try:
        return VENDOR_CHAINS[vendor]
    except KeyError:
        raise ValueError(
            f"unknown vendor {vendor!r}; choose one of {', '.join(VENDOR_CHAINS)}"
        ) from None
