"""Scan metadata: what CardioMM's metadata text says about a scan, parsed from paths and headers.

The 2025 CMRxRecon layout encodes the centre and scanner in folder names
(``Center001/Siemens_30T_Vida``) and the modality and view in the file stem (``cine_lax_3ch``).
Anything that cannot be read is ``None`` and renders as ``unknown`` in the text, so a scan
with missing metadata still gets a prompt instead of an error.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

UNKNOWN = "unknown"

# Canonical vendor spellings; keys are lower-case forms seen in folder names and headers.
_VENDOR_NAMES = {
    "siemens": "Siemens",
    "siemens healthineers": "Siemens",
    "siemens healthcare": "Siemens",
    "uih": "UIH",
    "united imaging": "UIH",
    "united imaging healthcare": "UIH",
    "ge": "GE",
    "ge medical systems": "GE",
    "ge healthcare": "GE",
    "philips": "Philips",
    "philips medical systems": "Philips",
    "philips healthcare": "Philips",
    "canon": "Canon",
    "toshiba": "Canon",
}

# File stem -> (modality, view). Mapping and black-blood series in CMRxRecon are short-axis.
# The order numbers the series kinds (series_kind_number, DICOM SeriesNumber): append new
# stems, so that a kind keeps its number.
_STEM_MODALITY_VIEW: dict[str, tuple[str, str | None]] = {
    "cine_sax": ("cine", "short-axis"),
    "cine_lax": ("cine", "long-axis"),
    "cine_lax_2ch": ("cine", "two-chamber"),
    "cine_lax_3ch": ("cine", "three-chamber"),
    "cine_lax_4ch": ("cine", "four-chamber"),
    "cine_lax_r2ch": ("cine", "right two-chamber"),
    "cine_lvot": ("cine", "LVOT"),
    "cine_rvot": ("cine", "RVOT"),
    "cine_ot": ("cine", "outflow tract"),
    "lge_sax": ("LGE", "short-axis"),
    "lge_lax": ("LGE", "long-axis"),
    "lge_lax_2ch": ("LGE", "two-chamber"),
    "lge_lax_3ch": ("LGE", "three-chamber"),
    "lge_lax_4ch": ("LGE", "four-chamber"),
    "t1map": ("T1 mapping", "short-axis"),
    "t1mappost": ("T1 mapping post-contrast", "short-axis"),
    "t2map": ("T2 mapping", "short-axis"),
    "t2smap": ("T2* mapping", "short-axis"),
    "t1rho": ("T1rho mapping", "short-axis"),
    "t1w": ("T1-weighted", None),
    "t2w": ("T2-weighted", None),
    "blackblood": ("black blood", None),
    "perfusion": ("perfusion", "short-axis"),
    "flow2d": ("flow", None),
}

# Series whose every frame is scored by the official evaluation (parametric mapping).
MAPPING_STEMS = frozenset({"t1map", "t1mappost", "t2map", "t2smap", "t1rho"})

# Modality folder of the 2025 layout -> modality, used when the stem is not recognised.
_MODALITY_FOLDERS = {
    "cine": "cine",
    "lge": "LGE",
    "mapping": "mapping",
    "t1rho": "T1rho mapping",
    "t1w": "T1-weighted",
    "t2w": "T2-weighted",
    "blackblood": "black blood",
    "perfusion": "perfusion",
    "flow2d": "flow",
}

_CENTRE_PATTERN = re.compile(r"^center\d+$", re.IGNORECASE)
_SCANNER_PATTERN = re.compile(
    r"^(?P<vendor>[A-Za-z]+)_(?P<field>\d+(?:\.\d+)?)T_(?P<model>.+)$", re.IGNORECASE
)
_SUFFIXES = re.compile(r"(_kus_.*|_mask_.*|_mask)$")


@dataclasses.dataclass(frozen=True)
class ScanMetadata:
    """What is known about one scan; ``None`` means unknown.

    Attributes:
        centre: site name, e.g. ``Center001`` (never part of the text: an unseen centre with a
            known vendor still gets a meaningful prompt).
        vendor: canonical vendor, e.g. ``Siemens``, ``UIH``, ``GE``, ``Philips``.
        field_strength: tesla, e.g. 3.0, 1.5, 0.55.
        scanner_model: e.g. ``Vida``, ``umr780``.
        modality: e.g. ``cine``, ``LGE``, ``T1 mapping``.
        view: e.g. ``short-axis``, ``four-chamber``.
        lifespan: ``Adult``, ``Pediatric`` or ``Fetal``.
    """

    centre: str | None = None
    vendor: str | None = None
    field_strength: float | None = None
    scanner_model: str | None = None
    modality: str | None = None
    view: str | None = None
    lifespan: str | None = None

    def to_text(self) -> str:
        """CardioMM's metadata text.

        Example: ``Adult cardiac MRI reconstruction. Vendor: 3.0T, Siemens, Vida.
        Modality: cine, short-axis.``
        """
        lifespan = self.lifespan or UNKNOWN
        field = format_field_strength(self.field_strength)
        vendor = self.vendor or UNKNOWN
        model = self.scanner_model or UNKNOWN
        modality = self.modality or UNKNOWN
        view = self.view or UNKNOWN
        return (
            f"{lifespan[0].upper()}{lifespan[1:]} cardiac MRI reconstruction. "
            f"Vendor: {field}, {vendor}, {model}. Modality: {modality}, {view}."
        )

    def without_scanner(self) -> ScanMetadata:
        """The same scan with vendor, field strength and scanner model unknown."""
        return dataclasses.replace(self, vendor=None, field_strength=None, scanner_model=None)

    def as_unknown(self) -> ScanMetadata:
        """The same scan with every text field unknown (the centre is kept for bookkeeping)."""
        return ScanMetadata(centre=self.centre)

    def to_dict(self) -> dict[str, str | float | None]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, object]) -> ScanMetadata:
        known = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})  # type: ignore[arg-type]


# The vendor as ScanMetadata.to_text writes it: "Vendor: <field>, <vendor>, <model>."
_TEXT_VENDOR = re.compile(r"Vendor: [^,]*, (?P<vendor>[^,]*), ")


def vendor_from_text(text: str) -> str | None:
    """The canonical vendor named in a metadata text from :meth:`ScanMetadata.to_text`
    (None when it says ``unknown`` or names none)."""
    match = _TEXT_VENDOR.search(text)
    if match is None or match["vendor"].strip() == UNKNOWN:
        return None
    return canonical_vendor(match["vendor"])


def format_field_strength(field_strength: float | None) -> str:
    """``3.0`` -> ``3.0T``, ``0.55`` -> ``0.55T``, ``None`` -> ``unknown``."""
    if field_strength is None:
        return UNKNOWN
    text = f"{field_strength:.2f}".rstrip("0")
    return f"{text}0T" if text.endswith(".") else f"{text}T"


def canonical_vendor(name: str | None) -> str | None:
    """Canonical vendor name from a folder or header spelling; unknown spellings kept as given."""
    if name is None or not name.strip():
        return None
    cleaned = name.strip()
    return _VENDOR_NAMES.get(cleaned.lower(), cleaned)


def parse_field_strength(text: str) -> float | None:
    """Field strength in tesla from a folder token: ``30`` -> 3.0, ``15`` -> 1.5,
    ``055`` -> 0.55, ``50`` -> 5.0, ``7`` -> 7.0, ``1.5`` -> 1.5."""
    token = text.strip().rstrip("Tt")
    if not token:
        return None
    if "." in token:
        try:
            return float(token)
        except ValueError:
            return None
    if not token.isdigit():
        return None
    # Folder names drop the decimal point after the first digit: 30T = 3.0T, 055T = 0.55T.
    return int(token) / 10 ** (len(token) - 1)


def parse_scanner_folder(folder: str) -> tuple[str | None, float | None, str | None]:
    """``Siemens_30T_Vida`` -> (``Siemens``, 3.0, ``Vida``); unparsable -> (None, None, None)."""
    match = _SCANNER_PATTERN.match(folder)
    if match is None:
        return None, None, None
    return (
        canonical_vendor(match["vendor"]),
        parse_field_strength(match["field"]),
        match["model"],
    )


def series_stem(file_name: str) -> str:
    """The series stem of a CMRxRecon file name: ``cine_sax_kus_Uniform8.mat`` -> ``cine_sax``."""
    return _SUFFIXES.sub("", Path(file_name).stem)


def parse_series_stem(stem: str) -> tuple[str | None, str | None]:
    """``cine_lax_3ch`` -> (``cine``, ``three-chamber``); unknown stems -> (None, None)."""
    return _STEM_MODALITY_VIEW.get(stem.lower(), (None, None))


def series_kind_number(stem: str) -> int:
    """The stem's place among the known CMRxRecon series, from 1 (``cine_sax``); 0 for a stem
    not among them."""
    return _SERIES_KIND_NUMBERS.get(stem.lower(), 0)


_SERIES_KIND_NUMBERS = {stem: number for number, stem in enumerate(_STEM_MODALITY_VIEW, 1)}


def is_mapping_series(stem: str) -> bool:
    """Whether every frame of this series is scored (parametric mapping series)."""
    return stem.lower() in MAPPING_STEMS


def metadata_from_path(path: str | Path, lifespan: str | None = "Adult") -> ScanMetadata:
    """Metadata of a file in the CMRxRecon 2025 layout, from its folder names and stem.

    ``.../MultiCoil/Cine/TrainingSet/FullSample/Center001/Siemens_30T_Vida/P007/cine_sax.mat``
    gives centre ``Center001``, Siemens, 3.0T, Vida, cine, short-axis. Parts that are absent
    or unparsable stay unknown. CMRxRecon 2023-2025 data are adult scans, hence the default.
    """
    parts = Path(path).parts
    centre = next((part for part in parts if _CENTRE_PATTERN.match(part)), None)
    vendor = field_strength = scanner_model = None
    for part in parts:
        parsed = parse_scanner_folder(part)
        if parsed[0] is not None:
            vendor, field_strength, scanner_model = parsed
    modality, view = parse_series_stem(series_stem(parts[-1]))
    if modality is None:
        folder_modality = next(
            (
                _MODALITY_FOLDERS[part.lower()]
                for part in parts
                if part.lower() in _MODALITY_FOLDERS
            ),
            None,
        )
        modality = folder_modality
    return ScanMetadata(
        centre=centre,
        vendor=vendor,
        field_strength=field_strength,
        scanner_model=scanner_model,
        modality=modality,
        view=view,
        lifespan=lifespan,
    )
