"""The field's classical reconstructions, built from sigpy's operators and solvers.

Every method solves for complex images ``x`` with the ESPIRiT maps ``S`` fixed, frame ``t``
measured as ``y_t = M_t F S x_t`` (``M_t`` the frame's 0/1 mask, ``F`` the centred
orthonormal 2D FFT):

- **CG-SENSE** (``sigpy.mri.app.SenseRecon``): per frame,
  ``min ||M_t F S x_t - y_t||^2 / 2 + lambda ||x_t||^2 / 2`` by conjugate gradients;
- **L1-wavelet CS** (``sigpy.mri.app.L1WaveletRecon``): per frame, an L1 penalty on the
  Daubechies-4 wavelet coefficients, by accelerated proximal gradient (FISTA);
- **k-t sparse CS**: all frames of a slice at once, an L1 penalty on the temporal Fourier
  transform of the cine (the temporal mean unpenalised, so a static background costs
  nothing), by FISTA with ``sigpy.app.LinearLeastSquares``: ``min sum_t ||M_t F S x_t -
  y_t||^2 / 2 + lambda ||W F_t x||_1``.

Inputs are normalised by the caller (:mod:`.reconstructor`), so one lambda serves every
vendor's units. With RSS-normalised maps and 0/1 masks the operators have norm at most 1,
so a step of 1 is safe and no power iteration is spent on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import ClassVar, Protocol

import numpy as np

WAVELET = "db4"


class ClassicalMethod(Protocol):
    """One classical reconstruction with its settings."""

    name: ClassVar[str]
    # Whether the method reconstructs a slice's frames together (True) or one by one.
    temporal: ClassVar[bool]
    regularization: float

    def solve(
        self,
        masked_kspace: np.ndarray,
        masks: np.ndarray,
        maps: np.ndarray,
        frames: Sequence[int],
    ) -> np.ndarray:
        """complex (len(frames), ky, kx) images of the wanted frames.

        Args:
            masked_kspace: complex (frames, coils, ky, kx), normalised, zeros where not
                sampled.
            masks: float (frames, ky, kx), 0 / 1.
            maps: complex (coils, ky, kx) sensitivities.
            frames: which frames to return.
        """
        ...


class _FrameByFrame:
    """A method that reconstructs each wanted frame from that frame's data alone."""

    temporal: ClassVar[bool] = False

    def solve(
        self,
        masked_kspace: np.ndarray,
        masks: np.ndarray,
        maps: np.ndarray,
        frames: Sequence[int],
    ) -> np.ndarray:
        return np.stack([self._solve_frame(masked_kspace[f], masks[f], maps) for f in frames])

    def _solve_frame(self, kspace: np.ndarray, mask: np.ndarray, maps: np.ndarray) -> np.ndarray:
        """complex (ky, kx) from complex (coils, ky, kx) k-space and its (ky, kx) mask."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class CGSense(_FrameByFrame):
    """Tikhonov-regularised SENSE by conjugate gradients, frame by frame."""

    regularization: float = 1e-3
    max_iter: int = 30
    name: ClassVar[str] = "cg-sense"

    def _solve_frame(self, kspace: np.ndarray, mask: np.ndarray, maps: np.ndarray) -> np.ndarray:
        from sigpy.mri.app import SenseRecon

        return SenseRecon(
            kspace,
            maps,
            lamda=self.regularization,
            weights=mask,
            max_iter=self.max_iter,
            show_pbar=False,
        ).run()


@dataclasses.dataclass(frozen=True)
class L1Wavelet(_FrameByFrame):
    """L1-wavelet compressed sensing, frame by frame (FISTA)."""

    regularization: float = 1e-3
    max_iter: int = 40
    name: ClassVar[str] = "l1-wavelet"

    def _solve_frame(self, kspace: np.ndarray, mask: np.ndarray, maps: np.ndarray) -> np.ndarray:
        from sigpy.mri.app import L1WaveletRecon

        return L1WaveletRecon(
            kspace,
            maps,
            lamda=self.regularization,
            weights=mask,
            wave_name=WAVELET,
            max_iter=self.max_iter,
            alpha=1.0,
            show_pbar=False,
        ).run()


@dataclasses.dataclass(frozen=True)
class KTSparse:
    """k-t sparse compressed sensing: L1 on the temporal Fourier transform of the cine."""

    regularization: float = 1e-3
    max_iter: int = 40
    name: ClassVar[str] = "kt-sparse"
    temporal: ClassVar[bool] = True

    def solve(
        self,
        masked_kspace: np.ndarray,
        masks: np.ndarray,
        maps: np.ndarray,
        frames: Sequence[int],
    ) -> np.ndarray:
        import sigpy as sp

        num_frames, _, num_ky, num_kx = masked_kspace.shape
        operator = kt_operator(maps, masks)
        image_shape = (num_frames, num_ky, num_kx)
        # The temporal mean (the centre of the centred temporal FFT) is left unpenalised; a
        # single frame has no temporal axis to transform, so its image itself is penalised.
        weights = np.full((num_frames, 1, 1), self.regularization, dtype=np.float32)
        if num_frames > 1:
            weights[num_frames // 2] = 0.0
        penalty = sp.prox.UnitaryTransform(
            sp.prox.L1Reg(image_shape, weights), sp.linop.FFT(image_shape, axes=(0,))
        )
        solution = sp.app.LinearLeastSquares(
            operator,
            masked_kspace * masks[:, None],
            proxg=penalty,
            max_iter=self.max_iter,
            alpha=1.0,
            accelerate=True,
            show_pbar=False,
        ).run()
        return np.asarray(solution)[list(frames)]


def kt_operator(maps: np.ndarray, masks: np.ndarray):
    """``x (frames, ky, kx) -> M_t F S x_t (frames, coils, ky, kx)``, a sigpy Linop."""
    import sigpy as sp

    num_frames, num_ky, num_kx = masks.shape
    num_coils = maps.shape[0]
    coil_shape = (num_frames, num_coils, num_ky, num_kx)
    expand = sp.linop.Multiply((num_frames, 1, num_ky, num_kx), maps[None])
    return (
        sp.linop.Multiply(coil_shape, np.asarray(masks, dtype=np.float32)[:, None])
        * sp.linop.FFT(coil_shape, axes=(-2, -1))
        * expand
        * sp.linop.Reshape((num_frames, 1, num_ky, num_kx), (num_frames, num_ky, num_kx))
    )


METHODS: dict[str, type] = {method.name: method for method in (CGSense, L1Wavelet, KTSparse)}


def method_from_name(name: str, **settings: float) -> ClassicalMethod:
    """A classical method by name (``cg-sense``, ``l1-wavelet``, ``kt-sparse``)."""
    try:
        kind = METHODS[name]
    except KeyError:
        raise ValueError(
            f"unknown classical method {name!r}; choose one of {', '.join(METHODS)}"
        ) from None
    return kind(**settings)
