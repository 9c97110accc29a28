"""Site (centre + scanner) profiles and the dataset presets built from them.

A consortium is heterogeneous the way CMRxRecon 2025 is: vendors with their own intensity
units and coil arrays, field strengths from 0.55 T to 5 T with their SNR and artefacts,
different matrices and fields of view, and very unequal numbers of patients, one vendor
holding most of the data. Presets are plain dataclasses so a run's configuration is one
name plus a seed; :func:`get_preset` returns one by name.
"""

from __future__ import annotations

import dataclasses

from cardiomm.data.synthetic.series import SERIES, SeriesSpec

# Receive-chain units of each vendor's k-space: orders of magnitude apart, as in real data.
VENDOR_INTENSITY_SCALE = {"Siemens": 1e-4, "UIH": 1e-2, "GE": 1e2, "Philips": 1.0}


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
        if self.vendor not in VENDOR_INTENSITY_SCALE:
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
    def intensity_scale(self) -> float:
        return VENDOR_INTENSITY_SCALE[self.vendor] * self.intensity_gain

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
    matrix: tuple[int, int],
    fov_mm: tuple[float, float],
    sax_slices: int,
    held_out: bool = False,
) -> SiteProfile:
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

STUDY = DatasetPreset(
    name="study",
    description=(
        "The held-out-centre study: 6 centres (an unseen vendor and an unseen field strength "
        "held out), 3-5 patients per centre so that every internal site has train, "
        "validation and test patients, 10 coils, cine-sized matrices of the small set"
    ),
    protocol=Protocol(
        coils=10, cine_frames=12, t1_frames=9, t2_frames=3, mapping_slices=3, weighted_slices=3
    ),
    sites=(
        _site(
            1,
            _UIH_780,
            patients=5,
            series=("cine_sax", "cine_lax_4ch"),
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
            patients=4,
            series=("cine_sax", "cine_lax_4ch"),
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
            patients=3,
            series=("cine_sax", "cine_lax_3ch"),
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
            patients=3,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=30.0,
            gain=3.0,
            matrix=(49, 56),
            fov_mm=(300, 380),
            sax_slices=5,
        ),
        _site(
            5,
            _GE_ARTIST,
            patients=3,
            series=("cine_sax", "cine_lax_2ch"),
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
            patients=3,
            series=("cine_sax", "cine_lax_4ch"),
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

PAPER = DatasetPreset(
    name="paper",
    description=(
        "The CardioMM setting: 13 centres (8 internal, 5 external held out), 4 vendors, "
        "0.55 / 1.5 / 3 / 5 T, UIH the majority vendor"
    ),
    protocol=Protocol(
        coils=10, cine_frames=12, t1_frames=9, t2_frames=3, mapping_slices=3, weighted_slices=3
    ),
    sites=(
        _site(
            1,
            _UIH_780,
            patients=7,
            series=(*_ALL_CINE, *_MAPPING),
            raw_coils=24,
            snr=32.0,
            gain=1.0,
            matrix=(78, 88),
            fov_mm=(300, 380),
            sax_slices=9,
        ),
        _site(
            2,
            _UIH_880,
            patients=3,
            series=("cine_sax", "cine_lax_4ch", "lge_sax", *_MAPPING),
            raw_coils=32,
            snr=36.0,
            gain=2.5,
            matrix=(75, 88),
            fov_mm=(290, 360),
            sax_slices=10,
        ),
        _site(
            3,
            _UIH_670,
            patients=3,
            series=("cine_sax", "cine_lax_4ch", "cine_lax_2ch", *_WEIGHTED),
            raw_coils=24,
            snr=24.0,
            gain=0.8,
            matrix=(69, 80),
            fov_mm=(300, 380),
            sax_slices=9,
        ),
        _site(
            4,
            _SIEMENS_VIDA,
            patients=3,
            series=("cine_sax", "cine_lax_4ch", "cine_lax_3ch", "lge_sax"),
            raw_coils=30,
            snr=30.0,
            gain=1.0,
            matrix=(74, 88),
            fov_mm=(290, 360),
            sax_slices=10,
        ),
        _site(
            5,
            _SIEMENS_AVANTO,
            patients=2,
            series=("cine_sax", "cine_lax_4ch", *_MAPPING),
            raw_coils=18,
            snr=21.0,
            gain=2.0,
            matrix=(68, 80),
            fov_mm=(300, 380),
            sax_slices=8,
        ),
        _site(
            6,
            _UIH_790,
            patients=2,
            series=("cine_sax", "cine_lax_2ch", "T2w", "blackblood"),
            raw_coils=24,
            snr=33.0,
            gain=1.5,
            matrix=(76, 88),
            fov_mm=(300, 370),
            sax_slices=9,
        ),
        _site(
            7,
            _SIEMENS_PRISMA,
            patients=2,
            series=("cine_sax", "cine_lax_4ch", "T1map"),
            raw_coils=30,
            snr=31.0,
            gain=0.5,
            matrix=(72, 88),
            fov_mm=(290, 370),
            sax_slices=10,
        ),
        _site(
            8,
            _UIH_5T,
            patients=1,
            series=("cine_sax", "cine_lax_4ch", "cine_lax_3ch"),
            raw_coils=34,
            snr=40.0,
            gain=0.3,
            matrix=(80, 88),
            fov_mm=(300, 380),
            sax_slices=9,
        ),
        _site(
            9,
            _GE_ARTIST,
            patients=2,
            series=("cine_sax", "cine_lax_4ch", "lge_sax"),
            raw_coils=30,
            snr=20.0,
            gain=1.0,
            matrix=(70, 80),
            fov_mm=(310, 380),
            sax_slices=8,
            held_out=True,
        ),
        _site(
            10,
            _PHILIPS_INGENIA,
            patients=1,
            series=("cine_sax", "cine_lax_2ch", "T1map"),
            raw_coils=28,
            snr=29.0,
            gain=1.0,
            matrix=(73, 88),
            fov_mm=(300, 380),
            sax_slices=10,
            held_out=True,
        ),
        _site(
            11,
            _SIEMENS_FREEMAX,
            patients=1,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=12,
            snr=9.0,
            gain=0.7,
            matrix=(60, 72),
            fov_mm=(300, 380),
            sax_slices=8,
            held_out=True,
        ),
        _site(
            12,
            _SIEMENS_SOLA,
            patients=1,
            series=("cine_lax_4ch", "cine_lax_2ch", "T2map"),
            raw_coils=20,
            snr=23.0,
            gain=1.2,
            matrix=(66, 80),
            fov_mm=(290, 370),
            sax_slices=9,
            held_out=True,
        ),
        _site(
            13,
            _UIH_880,
            patients=1,
            series=("cine_sax",),
            raw_coils=32,
            snr=35.0,
            gain=4.0,
            matrix=(75, 88),
            fov_mm=(290, 360),
            sax_slices=9,
            held_out=True,
        ),
    ),
)

VENDOR_SKEW = DatasetPreset(
    name="vendor-skew",
    description=(
        "A vendor-skewed consortium: Siemens 3T holds three sites and 92 % of the training "
        "images, GE 1.5T one small site; held out a Siemens 3T centre (the majority vendor) "
        "and a GE 1.5T centre (the minority vendor)"
    ),
    protocol=STUDY.protocol,
    sites=(
        _site(
            1,
            _SIEMENS_VIDA,
            patients=6,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=30.0,
            gain=1.0,
            matrix=(54, 60),
            fov_mm=(300, 380),
            sax_slices=5,
        ),
        _site(
            2,
            _SIEMENS_PRISMA,
            patients=6,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=32.0,
            gain=0.5,
            matrix=(51, 56),
            fov_mm=(290, 370),
            sax_slices=5,
        ),
        _site(
            3,
            _SIEMENS_VIDA,
            patients=5,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=28.0,
            gain=3.0,
            matrix=(49, 56),
            fov_mm=(300, 380),
            sax_slices=5,
        ),
        _site(
            4,
            _GE_ARTIST,
            patients=3,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=20.0,
            gain=1.0,
            matrix=(53, 60),
            fov_mm=(310, 380),
            sax_slices=5,
        ),
        _site(
            5,
            _SIEMENS_PRISMA,
            patients=3,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=30.0,
            gain=1.5,
            matrix=(52, 60),
            fov_mm=(300, 380),
            sax_slices=5,
            held_out=True,
        ),
        _site(
            6,
            _GE_ARTIST,
            patients=3,
            series=("cine_sax", "cine_lax_4ch"),
            raw_coils=30,
            snr=18.0,
            gain=2.0,
            matrix=(51, 60),
            fov_mm=(300, 370),
            sax_slices=5,
            held_out=True,
        ),
    ),
)

PRESETS: dict[str, DatasetPreset] = {
    preset.name: preset for preset in (TINY, SMALL, STUDY, PAPER, VENDOR_SKEW)
}


def get_preset(name: str) -> DatasetPreset:
    """A preset by name (``tiny``, ``small``, ``study``, ``paper``, ``vendor-skew``)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
