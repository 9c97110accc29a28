"""Site (centre + scanner) profiles and the dataset presets built from them.

A consortium is heterogeneous the way CMRxRecon 2025 is: vendors with their own units, raw
filters, coil arrays and protocol defaults (:mod:`.vendors`), field strengths from 0.55 T to
5 T with their SNR and artefacts, different matrices and fields of view, and very unequal
numbers of patients, one vendor holding most of the data. The study presets are at clinical
resolution (:func:`clinical_matrix`); ``tiny`` and ``small`` keep small matrices for tests.
Presets are plain dataclasses so a run's configuration is one name plus a seed;
:func:`get_preset` returns one by name.
"""

from __future__ import annotations

import dataclasses
import math

from cardiomm.data.synthetic.series import SERIES, SeriesSpec
from cardiomm.data.synthetic.vendors import VENDOR_CHAINS, VendorChain, vendor_chain


@dataclasses.dataclass(frozen=True)
class Protocol:
    """What every site of a preset acquires per series.

    Attributes:
        coils: coils after compression (10 in CMRxRecon).
        cine_frames: cine frames per RR interval.
        t1_frames: T1-map images (inversion times).
        t2_frames: T2-map images (T2-prep durations).
        mapping_slices: slices of T1 / T2 maps.
        weighted_slices: slices of T1w, T2w and black-blood series.
    """

    coils: int
    cine_frames: int
    t1_frames: int
    t2_frames: int
    mapping_slices: int
    weighted_slices: int


@dataclasses.dataclass(frozen=True)
class SiteProfile:
    """One centre with one scanner.

    Attributes:
        centre: ``Center001`` ...
        vendor, field_strength, model: scanner; the folder is ``{vendor}_{FF}T_{model}``.
        patients: number of patients.
        series: stems every patient has (see :data:`cardiomm.data.synthetic.series.SERIES`).
        raw_coils: receive channels before compression.
        snr: cine SNR (mean soft-tissue RSS signal / per-coil noise std).
        intensity_gain: site receive gain on top of the vendor's units.
        matrix: cine image matrix (phase encode, readout) before readout oversampling.
        fov_mm: cine field of view (phase encode, readout) in mm.
        sax_slices: cine / LGE short-axis stack slices.
        held_out: an external centre, suggested for zero-shot evaluation.
    """

    centre: str
    vendor: str
    field_strength: float
    model: str
    patients: int
    series: tuple[str, ...]
    raw_coils: int
    snr: float
    intensity_gain: float
    matrix: tuple[int, int]
    fov_mm: tuple[float, float]
    sax_slices: int
    held_out: bool = False

    def __post_init__(self) -> None:
        unknown = [stem for stem in self.series if stem not in SERIES]
        if unknown:
            raise ValueError(f"{self.centre}: unknown series {unknown}")
        if self.vendor not in VENDOR_CHAINS:
            raise ValueError(f"{self.centre}: unknown vendor {self.vendor!r}")

    @property
    def scanner_folder(self) -> str:
        """``Siemens_30T_Vida``, ``UIH_50T_uMRJupiter``, ``Siemens_055T_FreeMax`` ..."""
        return f"{self.vendor}_{field_folder_token(self.field_strength)}T_{self.model}"

    def identity(self) -> dict[str, object]:
        """Who the site is, as manifests and sidecars record it."""
        return {
            "centre": self.centre,
            "vendor": self.vendor,
            "field_strength": self.field_strength,
            "scanner_model": self.model,
            "scanner_folder": self.scanner_folder,
            "held_out": self.held_out,
        }

    @property
    def number(self) -> int:
        """The centre's number (``Center005`` -> 5): seeds its patients."""
        digits = "".join(character for character in self.centre if character.isdigit())
        return int(digits) if digits else 0

    @property
    def chain(self) -> VendorChain:
        """The vendor's acquisition and export chain."""
        return vendor_chain(self.vendor)

    @property
    def intensity_scale(self) -> float:
        return self.chain.intensity_scale * self.intensity_gain

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """Cine in-plane pixel spacing (phase encode, readout) in mm."""
        return self.fov_mm[0] / self.matrix[0], self.fov_mm[1] / self.matrix[1]

    def series_matrix(self, spec: SeriesSpec) -> tuple[int, int]:
        """(phase-encode lines, readout samples without oversampling) of a series."""
        ny = max(8, round(self.matrix[0] * spec.matrix_scale[0]))
        nx = max(8, 2 * round(self.matrix[1] * spec.matrix_scale[1] / 2))
        return ny, nx

    def series_frames_slices(self, spec: SeriesSpec, protocol: Protocol) -> tuple[int, int]:
        """(frames, slices) of a series at this site (frames 1 for frameless series)."""
        if spec.kind == "cine":
            frames = protocol.cine_frames
        elif spec.kind == "t1map":
            frames = protocol.t1_frames
        elif spec.kind == "t2map":
            frames = protocol.t2_frames
        else:
            frames = 1
        if spec.view != "sax":
            slices = 1
        elif spec.kind in ("cine", "lge"):
            slices = self.sax_slices
        elif spec.kind in ("t1map", "t2map"):
            slices = protocol.mapping_slices
        else:
            slices = protocol.weighted_slices
        return frames, slices

    def kspace_shape(self, spec: SeriesSpec, protocol: Protocol) -> tuple[int, ...]:
        """Stored shape, h5py order: (frames, slices, coils, ky, kx) or (slices, coils, ky, kx)."""
        frames, slices = self.series_frames_slices(spec, protocol)
        ny, nx = self.series_matrix(spec)
        shape = (slices, protocol.coils, ny, 2 * nx)
        return (frames, *shape) if spec.has_frame_axis else shape


def clinical_matrix(fov_mm: tuple[float, float], resolution_mm: float) -> tuple[int, int]:
    """(phase-encode lines, readout samples) that resolve ``fov_mm`` at ``resolution_mm`` or
    finer; the readout is even (it is stored 2x oversampled)."""
    if resolution_mm <= 0:
        raise ValueError(f"resolution_mm must be > 0, got {resolution_mm}")
    lines = math.ceil(fov_mm[0] / resolution_mm - 1e-9)
    samples = 2 * math.ceil(fov_mm[1] / resolution_mm / 2 - 1e-9)
    return lines, samples


def field_folder_token(field_strength: float) -> str:
    """Folder token of a field strength: 3.0 -> ``30``, 1.5 -> ``15``, 0.55 -> ``055``."""
    text = f"{field_strength:.2f}".rstrip("0")
    if text.endswith("."):
        text += "0"
    return text.replace(".", "")


@dataclasses.dataclass(frozen=True)
class DatasetPreset:
    """A named consortium: protocol plus sites."""

    name: str
    description: str
    protocol: Protocol
    sites: tuple[SiteProfile, ...]


_ALL_CINE = ("cine_sax", "cine_lax_2ch", "cine_lax_3ch", "cine_lax_4ch")
_MAPPING = ("T1map", "T2map")
_WEIGHTED = ("T1w", "T2w", "blackblood")


def _site(
    number: int,
    scanner: tuple[str, float, str],
    *,
    patients: int,
    series: tuple[str, ...],
    raw_coils: int,
    snr: float,
    gain: float,
    fov_mm: tuple[float, float],
    sax_slices: int,
    matrix: tuple[int, int] | None = None,
    resolution_mm: float | None = None,
    held_out: bool = False,
) -> SiteProfile:
    # A study site gives its resolution, a test preset's site its (small) matrix.
    if (matrix is None) == (resolution_mm is None):
        raise ValueError("give a site either its matrix or its resolution")
    if matrix is None:
        matrix = clinical_matrix(fov_mm, float(resolution_mm))
    vendor, field, model = scanner
    return SiteProfile(
        centre=f"Center{number:03d}",
        vendor=vendor,
        field_strength=field,
        model=model,
        patients=patients,
        series=series,
        raw_coils=raw_coils,
        snr=snr,
        intensity_gain=gain,
        matrix=matrix,
        fov_mm=fov_mm,
        sax_slices=sax_slices,
        held_out=held_out,
    )


# Scanners of the CMRxRecon 2025 consortium and the wider CardioMM database.
_UIH_780 = ("UIH", 3.0, "umr780")
_UIH_880 = ("UIH", 3.0, "umr880")
_UIH_790 = ("UIH", 3.0, "umr790")
_UIH_670 = ("UIH", 1.5, "umr670")
_UIH_5T = ("UIH", 5.0, "uMRJupiter")
_SIEMENS_VIDA = ("Siemens", 3.0, "Vida")
_SIEMENS_PRISMA = ("Siemens", 3.0, "Prisma")
_SIEMENS_AVANTO = ("Siemens", 1.5, "Avanto")
_SIEMENS_SOLA = ("Siemens", 1.5, "Sola")
_SIEMENS_FREEMAX = ("Siemens", 0.55, "FreeMax")
_GE_ARTIST = ("GE", 1.5, "SignaArtist")
_PHILIPS_INGENIA = ("Philips", 3.0, "Ingenia")

TINY = DatasetPreset(
    name="tiny",
    description="CI: 4 centres, 4 vendors, 3 field strengths, tiny matrices; seconds to make",
    protocol=Protocol(
        coils=4, cine_frames=5, t1_frames=5, t2_frames=3, mapping_slices=2, weighted_slices=2
    ),
    sites=(
        _site(
            1,
            _UIH_780,
            patients=2,
            series=("cine_sax", "cine_lax_4ch", "T1map", "T2map"),
            raw_coils=24,
            snr=32.0,
            gain=1.0,
            matrix=(40, 36),
            fov_mm=(290, 380),
            sax_slices=3,
        ),
        _site(
            2,
            _SIEMENS_AVANTO,
            patients=1,
            series=("cine_sax", "lge_sax", "blackblood"),
            raw_coils=18,
            snr=22.0,
            gain=2.0,
            matrix=(35, 32),
            fov_mm=(300, 370),
            sax_slices=3,
        ),
        _site(
            3,
            _SIEMENS_FREEMAX,
            patients=1,
            series=("cine_sax", "T1w", "T2w"),
            raw_coils=12,
            snr=10.0,
            gain=0.6,
            matrix=(33, 32),
            fov_mm=(300, 380),
            sax_slices=3,
            held_out=True,
        ),
        _site(
            4,
            _PHILIPS_INGENIA,
            patients=1,
            series=("cine_sax", "cine_lax_2ch", "cine_lax_3ch"),
            raw_coils=28,
            snr=30.0,
            gain=1.0,
            matrix=(37, 36),
            fov_mm=(320, 400),
            sax_slices=3,
            held_out=True,
        ),
    ),
)

SMALL = DatasetPreset(
    name="small",
    description="A few minutes of CPU training: 6 centres (2 external), 4 field strengths",
    protocol=Protocol(
        coils=10, cine_frames=12, t1_frames=9, t2_frames=3, mapping_slices=3, weighted_slices=3
    ),
    sites=(
        _site(
            1,
            _UIH_780,
            patients=3,
            series=("cine_sax", "cine_lax_4ch", *_MAPPING),
            raw_coils=24,
            snr=32.0,
            gain=1.0,
            matrix=(54, 60),
            fov_mm=(300, 380),
            sax_slices=5,
        ),
        _site(
            2,
            _SIEMENS_AVANTO,
            patients=2,
            series=("cine_sax", "cine_lax_4ch", "lge_sax"),
            raw_coils=18,
            snr=22.0,
            gain=1.5,
            matrix=(51, 56),
            fov_mm=(290, 360),
            sax_slices=5,
        ),
        _site(
            3,
            _UIH_5T,
            patients=1,
            series=("cine_sax", "cine_lax_3ch", "T2w"),
            raw_coils=34,
            snr=40.0,
            gain=0.5,
            matrix=(55, 60),
            fov_mm=(300, 380),
            sax_slices=5,
        ),
        _site(
            4,
            _SIEMENS_VIDA,
            patients=1,
            series=("cine_sax", "cine_lax_4ch", "T1map"),
            raw_coils=30,
            snr=30.0,
            gain=3.0,
            matrix=(49, 56),
            fov_mm=(300, 380),
            sax_slices=6,
        ),
        _site(
            5,
            _GE_ARTIST,
            patients=1,
            series=("cine_sax", "cine_lax_2ch", "blackblood"),
            raw_coils=30,
            snr=20.0,
            gain=1.0,
            matrix=(53, 60),
            fov_mm=(310, 380),
            sax_slices=5,
            held_out=True,
        ),
        _site(
            6,
            _SIEMENS_FREEMAX,
            patients=1,
            series=("cine_lax_4ch", "cine_lax_2ch"),
            raw_coils=12,
            snr=9.0,
            gain=0.7,
            matrix=(48, 56),
            fov_mm=(300, 380),
            sax_slices=5,
            held_out=True,
        ),
    ),
)


def _study_sites(resolution_mm: float, sax_slices: int) -> tuple[SiteProfile, ...]:
    """The held-out-centre study's consortium at a cine resolution: four internal centres of
    8 patients (UIH 3T and 5T, Siemens 1.5T and 3T), held out a GE 1.5T centre (a vendor no
    internal site has) and a Siemens 0.55T one (a field strength none has), 4 patients each."""
    common = {"resolution_mm": resolution_mm, "sax_slices": sax_slices}
    return (
        _site(
            1,
            _UIH_780,
            patients=8,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=24,
            snr=32.0,
            gain=1.0,
            fov_mm=(300, 380),
            **common,
        ),
        _site(
            2,
            _SIEMENS_AVANTO,
            patients=8,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=18,
            snr=22.0,
            gain=1.5,
            fov_mm=(290, 360),
            **common,
        ),
        _site(
            3,
            _UIH_5T,
            patients=8,
            series=("cine_sax", "cine_lax_3ch"),
            raw_coils=34,
            snr=40.0,
            gain=0.5,
            fov_mm=(310, 370),
            **common,
        ),
        _site(
            4,
            _SIEMENS_VIDA,
            patients=8,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=30.0,
            gain=3.0,
            fov_mm=(290, 380),
            **common,
        ),
        _site(
            5,
            _GE_ARTIST,
            patients=4,
            series=("cine_sax", "cine_lax_2ch"),
            raw_coils=30,
            snr=20.0,
            gain=1.0,
            fov_mm=(310, 380),
            held_out=True,
            **common,
        ),
        _site(
            6,
            _SIEMENS_FREEMAX,
            patients=4,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=12,
            snr=9.0,
            gain=0.7,
            fov_mm=(300, 380),
            held_out=True,
            **common,
        ),
    )


# Cine protocol of the study presets: 10 coils after compression, 12 frames.
_STUDY_PROTOCOL = Protocol(
    coils=10, cine_frames=12, t1_frames=9, t2_frames=3, mapping_slices=3, weighted_slices=3
)

STUDY = DatasetPreset(
    name="study",
    description=(
        "The quick held-out-centre study: 6 centres (an unseen vendor and an unseen field "
        "strength held out), 8 patients per internal centre and 4 per held-out one, cine at "
        "2.5 mm with real fields of view, 8 short-axis slices, 12 frames, 10 coils"
    ),
    protocol=_STUDY_PROTOCOL,
    sites=_study_sites(resolution_mm=2.5, sax_slices=8),
)

STUDY_STANDARD = DatasetPreset(
    name="study-standard",
    description=(
        "The standard held-out-centre study: the quick study's consortium with cine at "
        "2.0 mm and 9 short-axis slices"
    ),
    protocol=_STUDY_PROTOCOL,
    sites=_study_sites(resolution_mm=2.0, sax_slices=9),
)

# Public backbone data: the study's internal scanner types only (no GE, no 0.55 T), other
# patients (other centre numbers seed other subjects), at the quick study's resolution.
PUBLIC = DatasetPreset(
    name="public",
    description=(
        "A public data set for pre-training a backbone: UIH 3T / 5T and Siemens 1.5T / 3T "
        "centres at 2.5 mm, none of the study's centres or held-out scanner types"
    ),
    protocol=_STUDY_PROTOCOL,
    sites=tuple(
        dataclasses.replace(site, centre=f"Center{index + 11:03d}", patients=4)
        for index, site in enumerate(_study_sites(resolution_mm=2.5, sax_slices=8)[:4])
    ),
)

_PAPER_RESOLUTION_MM = 2.0


def _paper_site(number: int, scanner: tuple[str, float, str], **values: object) -> SiteProfile:
    return _site(number, scanner, resolution_mm=_PAPER_RESOLUTION_MM, **values)  # type: ignore[arg-type]


PAPER = DatasetPreset(
    name="paper",
    description=(
        "The CardioMM setting: 13 centres (8 internal, 5 external held out), 4 vendors, "
        "0.55 / 1.5 / 3 / 5 T, UIH the majority vendor; cine at 2.0 mm"
    ),
    protocol=_STUDY_PROTOCOL,
    sites=(
        _paper_site(
            1,
            _UIH_780,
            patients=7,
            series=(*_ALL_CINE, *_MAPPING),
            raw_coils=24,
            snr=32.0,
            gain=1.0,
            fov_mm=(300, 380),
            sax_slices=9,
        ),
        _paper_site(
            2,
            _UIH_880,
            patients=3,
            series=("cine_sax", "cine_lax_4ch", "lge_sax", *_MAPPING),
            raw_coils=32,
            snr=36.0,
            gain=2.5,
            fov_mm=(290, 360),
            sax_slices=10,
        ),
        _paper_site(
            3,
            _UIH_670,
            patients=3,
            series=("cine_sax", "cine_lax_4ch", "cine_lax_2ch", *_WEIGHTED),
            raw_coils=24,
            snr=24.0,
            gain=0.8,
            fov_mm=(300, 380),
            sax_slices=9,
        ),
        _paper_site(
            4,
            _SIEMENS_VIDA,
            patients=3,
            series=("cine_sax", "cine_lax_4ch", "cine_lax_3ch", "lge_sax"),
            raw_coils=30,
            snr=30.0,
            gain=1.0,
            fov_mm=(290, 360),
            sax_slices=10,
        ),
        _paper_site(
            5,
            _SIEMENS_AVANTO,
            patients=2,
            series=("cine_sax", "cine_lax_4ch", *_MAPPING),
            raw_coils=18,
            snr=21.0,
            gain=2.0,
            fov_mm=(300, 380),
            sax_slices=8,
        ),
        _paper_site(
            6,
            _UIH_790,
            patients=2,
            series=("cine_sax", "cine_lax_2ch", "T2w", "blackblood"),
            raw_coils=24,
            snr=33.0,
            gain=1.5,
            fov_mm=(300, 370),
            sax_slices=9,
        ),
        _paper_site(
            7,
            _SIEMENS_PRISMA,
            patients=2,
            series=("cine_sax", "cine_lax_4ch", "T1map"),
            raw_coils=30,
            snr=31.0,
            gain=0.5,
            fov_mm=(290, 370),
            sax_slices=10,
        ),
        _paper_site(
            8,
            _UIH_5T,
            patients=1,
            series=("cine_sax", "cine_lax_4ch", "cine_lax_3ch"),
            raw_coils=34,
            snr=40.0,
            gain=0.3,
            fov_mm=(300, 380),
            sax_slices=9,
        ),
        _paper_site(
            9,
            _GE_ARTIST,
            patients=2,
            series=("cine_sax", "cine_lax_4ch", "lge_sax"),
            raw_coils=30,
            snr=20.0,
            gain=1.0,
            fov_mm=(310, 380),
            sax_slices=8,
            held_out=True,
        ),
        _paper_site(
            10,
            _PHILIPS_INGENIA,
            patients=1,
            series=("cine_sax", "cine_lax_2ch", "T1map"),
            raw_coils=28,
            snr=29.0,
            gain=1.0,
            fov_mm=(300, 380),
            sax_slices=10,
            held_out=True,
        ),
        _paper_site(
            11,
            _SIEMENS_FREEMAX,
            patients=1,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=12,
            snr=9.0,
            gain=0.7,
            fov_mm=(300, 380),
            sax_slices=8,
            held_out=True,
        ),
        _paper_site(
            12,
            _SIEMENS_SOLA,
            patients=1,
            series=("cine_lax_4ch", "cine_lax_2ch", "T2map"),
            raw_coils=20,
            snr=23.0,
            gain=1.2,
            fov_mm=(290, 370),
            sax_slices=9,
            held_out=True,
        ),
        _paper_site(
            13,
            _UIH_880,
            patients=1,
            series=("cine_sax",),
            raw_coils=32,
            snr=35.0,
            gain=4.0,
            fov_mm=(290, 360),
            sax_slices=9,
            held_out=True,
        ),
    ),
)

VENDOR_SKEW = DatasetPreset(
    name="vendor-skew",
    description=(
        "A vendor-skewed consortium at 2.5 mm: Siemens 3T holds three sites of 8 patients and "
        "about 90 % of the training images, GE 1.5T one small site of 3; held out a Siemens "
        "3T centre (the majority vendor) and a GE 1.5T centre (the minority vendor), 4 "
        "patients each"
    ),
    protocol=_STUDY_PROTOCOL,
    sites=(
        _site(
            1,
            _SIEMENS_VIDA,
            patients=8,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=30.0,
            gain=1.0,
            fov_mm=(300, 380),
            resolution_mm=2.5,
            sax_slices=8,
        ),
        _site(
            2,
            _SIEMENS_PRISMA,
            patients=8,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=32.0,
            gain=0.5,
            fov_mm=(290, 370),
            resolution_mm=2.5,
            sax_slices=8,
        ),
        _site(
            3,
            _SIEMENS_VIDA,
            patients=8,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=28.0,
            gain=3.0,
            fov_mm=(290, 380),
            resolution_mm=2.5,
            sax_slices=8,
        ),
        # The minority vendor's one small site: fewer patients than a study site on purpose.
        _site(
            4,
            _GE_ARTIST,
            patients=3,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=20.0,
            gain=1.0,
            fov_mm=(310, 380),
            resolution_mm=2.5,
            sax_slices=8,
        ),
        _site(
            5,
            _SIEMENS_PRISMA,
            patients=4,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=30.0,
            gain=1.5,
            fov_mm=(300, 380),
            resolution_mm=2.5,
            sax_slices=8,
            held_out=True,
        ),
        _site(
            6,
            _GE_ARTIST,
            patients=4,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=18.0,
            gain=2.0,
            fov_mm=(300, 370),
            resolution_mm=2.5,
            sax_slices=8,
            held_out=True,
        ),
    ),
)

PRESETS: dict[str, DatasetPreset] = {
    preset.name: preset
    for preset in (TINY, SMALL, STUDY, STUDY_STANDARD, PUBLIC, PAPER, VENDOR_SKEW)
}


def get_preset(name: str) -> DatasetPreset:
    """A preset by name (``tiny``, ``small``, ``study``, ``study-standard``, ``public``,
    ``paper``, ``vendor-skew``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
