"""The series a synthetic patient can have: file stem, modality folder, contrast kind, view."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SeriesSpec:
    """One kind of file of the CMRxRecon 2025 layout.

    Attributes:
        stem: file stem, e.g. ``cine_sax``, as
            :func:`cardiomm.data.metadata.metadata_from_path` parses it.
        folder: modality folder under ``MultiCoil``.
        kind: contrast kind (see :data:`cardiomm.data.synthetic.sequences.KINDS`).
        view: ``sax``, ``2ch``, ``3ch`` or ``4ch``.
        has_frame_axis: False for T1w / T2w / black blood, stored (slices, coils, ky, kx).
        matrix_scale: (phase encode, readout) matrix relative to the site's cine matrix.
        snr_factor: SNR relative to the site's cine SNR (shorter readouts, nulled tissue ...).
    """

    stem: str
    folder: str
    kind: str
    view: str
    has_frame_axis: bool = True
    matrix_scale: tuple[float, float] = (1.0, 1.0)
    snr_factor: float = 1.0


SERIES: dict[str, SeriesSpec] = {
    spec.stem: spec
    for spec in (
        SeriesSpec("cine_sax", "Cine", "cine", "sax"),
        SeriesSpec("cine_lax_2ch", "Cine", "cine", "2ch"),
        SeriesSpec("cine_lax_3ch", "Cine", "cine", "3ch"),
        SeriesSpec("cine_lax_4ch", "Cine", "cine", "4ch"),
        SeriesSpec("T1map", "Mapping", "t1map", "sax", matrix_scale=(0.8, 1.0), snr_factor=0.7),
        SeriesSpec("T2map", "Mapping", "t2map", "sax", matrix_scale=(0.7, 0.75), snr_factor=0.7),
        SeriesSpec("lge_sax", "LGE", "lge", "sax", snr_factor=0.6),
        SeriesSpec("lge_lax_4ch", "LGE", "lge", "4ch", snr_factor=0.6),
        SeriesSpec("T1w", "T1w", "t1w", "sax", has_frame_axis=False, snr_factor=1.2),
        SeriesSpec("T2w", "T2w", "t2w", "sax", has_frame_axis=False, snr_factor=0.8),
        SeriesSpec("blackblood", "BlackBlood", "blackblood", "sax", has_frame_axis=False),
    )
}
