"""CMRxRecon 2025 undersampling masks: Uniform, ktGaussian, ktRadial, and a training sampler.

Masks are boolean numpy arrays (frames, ky, kx), True where k-space is sampled; the nominal
acceleration R does not count the autocalibration (ACS) region, as in the challenge.
"""

from cardiomm.masks.factory import make_mask
from cardiomm.masks.mask import MaskPattern, UndersamplingMask
from cardiomm.masks.sampler import MaskSampler

__all__ = ["MaskPattern", "MaskSampler", "UndersamplingMask", "make_mask"]
