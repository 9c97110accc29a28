"""Classical reconstructions as the field does them, from sigpy: ESPIRiT sensitivities,
CG-SENSE, L1-wavelet compressed sensing and k-t sparse compressed sensing over a cine's
frames; tuned on validation data (:mod:`.tuning`), results stored by content (:mod:`.cache`).
"""

from cardiomm.classical.cache import ResultCache
from cardiomm.classical.calibration import (
    CalibrationError,
    EspiritSettings,
    calibration_width,
    espirit_maps,
    time_averaged_kspace,
)
from cardiomm.classical.methods import METHODS, CGSense, KTSparse, L1Wavelet, method_from_name
from cardiomm.classical.reconstructor import CineReconstruction, ClassicalReconstructor

__all__ = [
    "METHODS",
    "CGSense",
    "CalibrationError",
    "CineReconstruction",
    "ClassicalReconstructor",
    "EspiritSettings",
    "KTSparse",
    "L1Wavelet",
    "ResultCache",
    "calibration_width",
    "espirit_maps",
    "method_from_name",
    "time_averaged_kspace",
]
