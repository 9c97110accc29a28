"""``cardiomm reconstruct``: reconstruct k-space files into the CMRxRecon submission layout.

Undersampled files are reconstructed from the samples they hold; fully sampled files are
undersampled first with ``--mask`` (seeded as ``cardiomm evaluate`` does) and scored against
their own reference. Outputs, previews and the summary CSV are described in
:mod:`cardiomm.recon.submission`. A file that cannot be read is skipped with a warning and
listed in the summary; a file whose reconstruction holds NaN or Inf is an error row naming
the checkpoint (or method) and the file, and nothing is written for it. Exit codes: 0 when
every file was reconstructed; 1 when any was skipped or failed (some or all: the last
console line counts them and names the summary whose rows say why); 2 for a user error (a
bad option, a checkpoint that cannot be loaded, an output folder that holds results without
``--overwrite``).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from rich.table import Table
    from rich.text import Text

    from cardiomm.classical.record import TuningRecord
    from cardiomm.data.masking import MaskSetting
    from cardiomm.data.metadata import ScanMetadata
    from cardiomm.model.interface import Reconstructor
    from cardiomm.recon.mask_choice import FileMasks
    from cardiomm.recon.submission import FileSummary, InputFiles
    from cardiomm.recon.volume import CineReconstructor, VolumeReconstruction

NAME = "reconstruct"
HELP = (
    "Reconstruct undersampled (or fully sampled + --mask) k-space files into CMRxRecon "
    "submission .mat files, with PNG previews and a summary. Exits 0 when every file was "
    "reconstructed, 1 when any was skipped or failed (see the summary's rows), 2 for a usage "
    "error."
)
# The classical methods are sigpy's, with ESPIRiT maps from the slice's time-averaged k-space
# (cardiomm.classical); "sense" is CG-SENSE under the name earlier releases used.
CLASSICAL_METHODS = ("cg-sense", "l1-wavelet", "kt-sparse", "best-classical")
METHODS = ("zero-filled", *CLASSICAL_METHODS, "sense")
_ALIASES = {"sense": "cg-sense"}


OUTPUT_FORMATS = ("mat", "dicom", "nifti", "both", "all")
# What each --format writes.
_WRITES = {
    "mat": {"mat"},
    "dicom": {"dicom"},
    "nifti": {"nifti"},
    "both": {"mat", "dicom"},
    "all": {"mat", "dicom", "nifti"},
}
# How the summary table shows a row that is not ok.
_STYLES = {"skipped": "yellow", "error": "red"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    _method_arguments(parser)
    _file_arguments(parser)
    _mask_arguments(parser)
    _run_arguments(parser)


def _method_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: the method: a checkpoint or a classical method, and its tuning record."""
    method = parser.add_mutually_exclusive_group(required=True)
    method.add_argument("--checkpoint", type=Path, help="a trained model checkpoint (.pt)")
    method.add_argument(
        "--method",
        choices=METHODS,
        help="a classical method instead of a checkpoint: zero-filled; cg-sense (alias "
        "sense), l1-wavelet or kt-sparse (sigpy, ESPIRiT maps from each slice's "
        "time-averaged k-space; k-t sparse CS solves a slice's frames together); "
        "best-classical: the method --classical-tuning chose at the file's mask",
    )
    parser.add_argument(
        "--classical-tuning",
        type=Path,
        metavar="JSON",
        help="classical_tuning.json of a `cardiomm evaluate` or study run: each file is "
        "reconstructed with the lambda and ESPIRiT settings chosen there for its mask "
        "(without it: each method's untuned defaults)",
    )


def _file_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: what is read and where the results go."""
    parser.add_argument(
        "--input",
        type=Path,
        nargs="+",
        required=True,
        metavar="PATH",
        help="k-space files, or folders searched for .mat files (mask files left out)",
    )
    parser.add_argument("--output", type=Path, required=True, help="folder for the results")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an OUTPUT that holds results already (this run's files replace "
        "theirs, others are kept)",
    )


def _mask_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: the undersampling of fully sampled files."""
    parser.add_argument(
        "--mask",
        metavar="SPEC",
        help="undersampling for fully sampled files, e.g. Uniform8, ktGaussian16, ktRadial24 "
        "(also names pattern / R of undersampled files whose names do not)",
    )
    parser.add_argument("--acs-width", type=int, default=20, help="ACS of generated masks")
    parser.add_argument("--seed", type=int, default=0, help="seed of generated masks")
    parser.add_argument(
        "--official-masks",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="use official mask files where they exist (default: yes)",
    )


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    """Options: where and how it runs, and what it writes."""
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--batch-size", type=int, default=4, help="images per forward pass")
    parser.add_argument(
        "--preview",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write a PNG preview per file (default: yes)",
    )
    parser.add_argument(
        "--format",
        choices=OUTPUT_FORMATS,
        default="mat",
        help="mat: the challenge's submission layout (default); dicom: one MR image series "
        "per file under OUTPUT/dicom/; nifti: one 4D .nii.gz per file under OUTPUT/nifti/ "
        "(both need the file's geometry sidecar); both: mat and dicom; all: the three",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="also store every frame and slice uncropped (variable 'reconstruction')",
    )
    parser.add_argument(
        "--clip-path", type=Path, help="local CLIP checkpoint folder, for clip-encoder models"
    )
    parser.add_argument(
        "--readout-oversampling",
        choices=("auto", "remove", "keep"),
        default="auto",
        help="auto: as the checkpoint was trained (data.remove_oversampling); remove: halve "
        "the readout first; keep: reconstruct the full readout. Radial masks of acquired "
        "k-space always keep it.",
    )


@dataclasses.dataclass(frozen=True)
class _Method:
    """The reconstruction method and what names it.

    Attributes:
        reconstructor: the method (None for a classical method until :meth:`at`).
        trained_without_oversampling: a checkpoint trained on the halved readout.
        label: how errors name it: the checkpoint's path or ``method <name>``.
        key: what DICOM UIDs derive from: the checkpoint's SHA-256 or the method's name.
        classical: for a classical method, its name and the tuning record (None: defaults);
            its reconstructor is made per file (:meth:`at`), from the file's mask setting.
    """

    reconstructor: Reconstructor | CineReconstructor | None
    trained_without_oversampling: bool
    label: str
    key: str
    classical: tuple[str, TuningRecord | None] | None = None

    @property
    def name(self) -> str:
        """The method's name, as the progress bar shows it."""
        if self.classical is not None:
            return self.classical[0]
        assert self.reconstructor is not None
        return self.reconstructor.name

    def at(self, mask_name: str) -> _Method:
        """This method for a file whose masks are ``mask_name`` (e.g. ``ktRadial24``).

        Raises:
            ValueError: the tuning record has no settings for ``mask_name``.
        """
        if self.classical is None:
            return self
        from cardiomm.classical.record import classical_reconstructor

        name, record = self.classical
        reconstructor = classical_reconstructor(name, mask_name, record)
        settings = reconstructor.describe()
        chosen = f"{settings['method']} lambda {settings['settings']['regularization']:g}"
        return dataclasses.replace(
            self,
            reconstructor=reconstructor,
            key=f"{self.key} ({chosen}, ESPIRiT {settings['espirit']}, sigpy {settings['sigpy']})",
        )


def run(args: argparse.Namespace) -> int:
    from cardiomm.progress import make_console, progress_bar
    from cardiomm.recon.mask_choice import parse_mask_spec
    from cardiomm.recon.submission import (
        SUMMARY_FILE,
        existing_results,
        find_inputs,
        write_summary,
    )
    from cardiomm.train.runtime import select_device

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.acs_width < 0:
        raise ValueError(f"--acs-width must be >= 0, got {args.acs_width}")
    spec = parse_mask_spec(args.mask) if args.mask else None
    found = existing_results(args.output)
    if found and not args.overwrite:
        listing = ", ".join(str(path.relative_to(args.output)) for path in found[:3])
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        print(
            f"cardiomm {NAME}: error: {args.output} already holds results ({listing}{more}); "
            "pass --overwrite to replace them, or choose another --output",
            file=sys.stderr,
        )
        return 2
    device = select_device(args.device)
    inputs = find_inputs(args.input, exclude=args.output)
    method = _method(args, device)
    args.remove_oversampling = {
        "auto": method.trained_without_oversampling,
        "remove": True,
        "keep": False,
    }[args.readout_oversampling]
    run = _Run(inputs, args, spec, method, device, {}, collections.defaultdict(set))
    rows = [
        _reconstruct_file(path, run)
        for path in progress_bar(inputs.files, f"reconstructing with {method.name}")
    ]
    summary = write_summary(args.output / SUMMARY_FILE, rows)
    console = make_console()
    console.print(_summary_table(rows, inputs))
    console.print(_outcome(rows, args.output, summary), markup=False)
    return 0 if all(row.ok for row in rows) else 1


def _outcome(rows: list[FileSummary], output: Path, summary: Path) -> str:
    """The run's last console line: how many files were reconstructed, how many failed or
    were skipped, and where their rows are."""
    done = sum(row.ok for row in rows)
    line = f"{done} of {len(rows)} files reconstructed into {output}"
    counts = {status: sum(row.status == status for row in rows) for status in ("error", "skipped")}
    missing = ", ".join(f"{count} {status}" for status, count in counts.items() if count)
    if not missing:
        return f"{line}; summary: {summary}"
    return (
        f"{line}; {missing} (not reconstructed): see their rows (status skipped / error, "
        f"with the reason) in {summary}; exit code 1"
    )


def _method(args: argparse.Namespace, device: torch.device) -> _Method:
    """The method of ``--checkpoint`` or ``--method``.

    Raises:
        ValueError: the checkpoint cannot be loaded (one line naming it and the problem).
    """
    if args.checkpoint is not None:
        from cardiomm.model.checkpoint import read_checkpoint
        from cardiomm.model.factory import reconstructor_from_checkpoint
        from cardiomm.recon.identity import file_sha256

        clip_path = str(args.clip_path) if args.clip_path else None
        content = read_checkpoint(args.checkpoint)
        try:
            loaded = reconstructor_from_checkpoint(content, clip_path=clip_path)
        except ValueError as error:
            raise ValueError(f"{args.checkpoint}: {error}") from error
        loaded.network.to(device)
        extra = content.get("extra") or {}
        return _Method(
            reconstructor=loaded,
            trained_without_oversampling=bool(extra.get("remove_oversampling", False)),
            label=f"checkpoint {args.checkpoint}",
            key=f"checkpoint sha256:{file_sha256(args.checkpoint)}",
        )
    from cardiomm.model.baselines import ZeroFilled

    label = f"method {args.method}"
    if args.method == "zero-filled":
        if args.classical_tuning is not None:
            raise ValueError("--classical-tuning applies to the classical methods, not zero-filled")
        return _Method(ZeroFilled(), False, label, label)
    name = _ALIASES.get(args.method, args.method)
    record = None
    if args.classical_tuning is not None:
        from cardiomm.classical.record import read_tuning_record

        record = read_tuning_record(args.classical_tuning)
    elif name == "best-classical":
        raise ValueError(
            "--method best-classical is the method tuning chose; name its record with "
            "--classical-tuning (classical_tuning.json of an evaluate or study run)"
        )
    # The reconstructor depends on each file's mask (at()).
    return _Method(None, False, label, f"method {name}", classical=(name, record))


@dataclasses.dataclass(frozen=True)
class _Reconstructed:
    """One file's reconstruction, before anything is written.

    Attributes:
        relative: its output path, relative to ``--output``.
        method: the method as it ran on the file (a classical one made for its masks).
        masks: the masks it was reconstructed from.
        volume: the reconstruction (and reference, when the file is fully sampled).
        metadata: the scan's metadata.
    """

    relative: Path
    method: _Method
    masks: FileMasks
    volume: VolumeReconstruction
    metadata: ScanMetadata


@dataclasses.dataclass(frozen=True)
class _Run:
    """What every file of one run is reconstructed with.

    Attributes:
        inputs: the files found under ``--input``.
        args: the command's options.
        spec: ``--mask`` (None: the files' own masks).
        method: the checkpoint's or ``--method``'s reconstruction method.
        device: where it runs.
        written: output path (relative) -> the input it was written for, so far; updated.
        series_numbers: DICOM patient ID -> the series numbers written for it so far; updated.
    """

    inputs: InputFiles
    args: argparse.Namespace
    spec: MaskSetting | None
    method: _Method
    device: torch.device
    written: dict[Path, Path]
    series_numbers: dict[str, set[int]]


def _reconstruct_file(path: Path, run: _Run) -> FileSummary:
    """Reconstruct, write, preview and score one file; a file that cannot be used becomes a
    skipped row (with a warning), a reconstruction with NaN or Inf an error row (nothing
    written), never an exception."""
    from cardiomm.recon.submission import FileSummary

    started = time.perf_counter()
    done = _reconstruct(path, run)
    if isinstance(done, FileSummary):
        return done
    run.written[done.relative] = path
    output, note = _write_outputs(path, run, done)
    if output is None:
        return _skipped(path, note)
    row = _scored_row(path, done, output, note)
    row.seconds = time.perf_counter() - started
    return row


def _reconstruct(path: Path, run: _Run) -> _Reconstructed | FileSummary:
    """Read ``path``, choose its masks and reconstruct it; or the skipped row (unreadable
    file, no tuned setting for its masks, an output another input already took) or error row
    (NaN or Inf, a calibration that fails) it becomes instead."""
    from cardiomm.classical.calibration import CalibrationError
    from cardiomm.data.errors import DataFileError
    from cardiomm.data.readers import open_series
    from cardiomm.recon.mask_choice import choose_masks
    from cardiomm.recon.submission import output_relative_path
    from cardiomm.recon.volume import NonFiniteReconstructionError, reconstruct_volume

    args, method, written = run.args, run.method, run.written
    try:
        with open_series(path) as series:
            masks = choose_masks(
                series,
                run.spec,
                acs_width=args.acs_width,
                seed=args.seed,
                use_official_masks=args.official_masks,
            )
            relative = output_relative_path(
                run.inputs.relative(path), masks.name, series.is_undersampled
            )
            try:
                method = method.at(masks.name)
            except ValueError as error:
                return _skipped(path, str(error))
            if relative in written:
                # e.g. cine_sax.mat with --mask Uniform8 beside cine_sax_kus_Uniform8.mat
                return _skipped(
                    path,
                    f"its output {relative} would overwrite the reconstruction of "
                    f"{written[relative]}",
                )
            remove = _removes_oversampling(path, args, masks)
            volume = reconstruct_volume(
                series,
                masks,
                method.reconstructor,
                run.device,
                args.batch_size,
                remove_oversampling=remove,
            )
            return _Reconstructed(relative, method, masks, volume, series.metadata)
    except NonFiniteReconstructionError as error:
        return _failed(path, f"{method.label} failed: {error.reason}; nothing written")
    except CalibrationError as error:
        return _failed(path, f"{method.label} failed: {error}; nothing written")
    except (DataFileError, OSError) as error:
        reason = error.reason if isinstance(error, DataFileError) else str(error)
        return _skipped(path, reason)


def _removes_oversampling(path: Path, args: argparse.Namespace, masks: FileMasks) -> bool:
    """Whether the readout is halved before reconstruction: as asked, unless the masks do
    not survive the crop (radial masks of acquired k-space), which is warned about."""
    remove = args.remove_oversampling and masks.survives_oversampling_removal
    if args.remove_oversampling and not remove:
        print(
            f"cardiomm reconstruct: warning: {path}: {masks.source} does not survive a "
            "readout crop; reconstructing the full readout, which the model was not "
            "trained on",
            file=sys.stderr,
        )
    return remove


def _write_outputs(path: Path, run: _Run, done: _Reconstructed) -> tuple[Path | None, str]:
    """Write what ``--format`` asks (and the preview): (the last output written, a note for
    the row) or (None, why nothing was written)."""
    from cardiomm.data.metadata import is_mapping_series, series_stem
    from cardiomm.recon.preview import save_volume_preview
    from cardiomm.recon.submission import preview_relative_path, write_reconstruction

    args, volume, relative = run.args, done.volume, done.relative
    name = done.method.reconstructor.name
    output: Path | None = args.output / relative
    note = ""
    writes = _WRITES[args.format]
    if writes & {"dicom", "nifti"}:
        readout = "readout halved" if volume.oversampling_removed else "readout kept"
        identity = _ClinicalSeries(
            description=f"{name} reconstruction, {done.masks.name}",
            method_key=done.method.key,
            mask_key=f"{done.masks.name}, {done.masks.source}, {readout}",
        )
        output, note = _write_clinical(
            path,
            args.output,
            relative,
            volume,
            done.metadata,
            identity,
            writes,
            args.overwrite,
            run.series_numbers,
        )
        if output is None and "mat" not in writes:
            return None, note
    if "mat" in writes:
        output = write_reconstruction(
            args.output / relative,
            volume.reconstruction,
            is_mapping_series(series_stem(path.name)),
            args.full,
            oversampling_removed=volume.oversampling_removed,
        )
    if args.preview:
        save_volume_preview(
            args.output / preview_relative_path(relative),
            volume,
            title=f"{relative}  ({volume.undersampling_text})",
            method=name,
        )
    return output, note


def _scored_row(path: Path, done: _Reconstructed, output: Path, note: str) -> FileSummary:
    """The file's ok row, scored against its reference when it was fully sampled."""
    from cardiomm.data.metadata import is_mapping_series, series_stem
    from cardiomm.metrics import evaluate_series
    from cardiomm.recon.submission import FileSummary

    volume = done.volume
    row = FileSummary(
        input=path,
        status="ok",
        output=output,
        reason=note,
        method=done.method.reconstructor.name,
        mask=done.masks.name,
        mask_source=done.masks.source,
        sampling_fraction=volume.sampling_fraction,
        frames=volume.shape[0],
        slices=volume.shape[1],
    )
    if volume.reference is not None:
        scores = evaluate_series(
            volume.reference,
            volume.reconstruction,
            is_mapping_series(series_stem(path.name)),
            oversampling_removed=volume.oversampling_removed,
        )
        row.psnr, row.ssim, row.nmse = scores.psnr, scores.ssim, scores.nmse
    return row


@dataclasses.dataclass(frozen=True)
class _ClinicalSeries:
    """What names a file's DICOM series besides the file (:mod:`cardiomm.recon.identity`)."""

    description: str
    method_key: str
    mask_key: str


def _write_clinical(
    path: Path,
    output_root: Path,
    relative: Path,
    volume: VolumeReconstruction,
    metadata: ScanMetadata,
    series: _ClinicalSeries,
    writes: set[str],
    replace: bool,
    series_numbers: dict[str, set[int]],
) -> tuple[Path | None, str]:
    """(the last DICOM folder or NIfTI file written, "") or (None, why none was written for
    ``path``): both need the scan's geometry.

    Args:
        replace: a DICOM series folder that holds instances is emptied first (--overwrite).
        series_numbers: DICOM patient ID -> series numbers taken in its study; updated.
    """
    from cardiomm.data.errors import DataFileError
    from cardiomm.data.geometry import read_geometry
    from cardiomm.data.synthetic.writer import sidecar_paths
    from cardiomm.recon.dicom import write_dicom_series
    from cardiomm.recon.identity import file_sha256, patient_id, series_identity
    from cardiomm.recon.nifti import write_nifti
    from cardiomm.recon.submission import DICOM_FOLDER, NIFTI_FOLDER

    try:
        geometry = read_geometry(path)
    except DataFileError as error:
        return None, f"no DICOM / NIfTI: {error}"
    if geometry is None:
        sidecar = sidecar_paths(path)[0].name
        reason = f"no DICOM / NIfTI: no geometry sidecar {sidecar} beside the file"
        print(f"cardiomm reconstruct: warning: {path}: {reason}", file=sys.stderr)
        return None, reason
    written: Path | None = None
    if "dicom" in writes:
        written = output_root / DICOM_FOLDER / relative.with_suffix("")
        content_hash = file_sha256(path)
        taken = series_numbers[patient_id(path, metadata, content_hash)]
        identity = series_identity(
            path,
            metadata,
            content_hash,
            method_key=series.method_key,
            mask_key=series.mask_key,
            description=series.description,
            numbers_taken=taken,
        )
        write_dicom_series(
            written, volume.reconstruction, metadata, geometry, identity, replace=replace
        )
        taken.add(identity.series_number)
    if "nifti" in writes:
        target = output_root / NIFTI_FOLDER / relative.with_suffix(".nii.gz")
        written = write_nifti(target, volume.reconstruction, geometry)
    return written, ""


def _skipped(path: Path, reason: str) -> FileSummary:
    from cardiomm.recon.submission import FileSummary

    print(f"cardiomm reconstruct: warning: skipping {path}: {reason}", file=sys.stderr)
    return FileSummary(input=path, status="skipped", reason=reason)


def _failed(path: Path, reason: str) -> FileSummary:
    from cardiomm.recon.submission import FileSummary

    print(f"cardiomm reconstruct: error: {path}: {reason}", file=sys.stderr)
    return FileSummary(input=path, status="error", reason=reason)


def _status_text(row: FileSummary) -> Text:
    from rich.text import Text

    if row.ok:
        return Text("ok")
    return Text(f"{row.status}: {row.reason}", style=_STYLES[row.status])


def _summary_table(rows: list[FileSummary], inputs: InputFiles) -> Table:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"cardiomm reconstruct: {inputs.root}")
    for column, justify in (
        ("file", "left"),
        ("mask", "left"),
        ("frames x slices", "right"),
        ("seconds", "right"),
        ("PSNR", "right"),
        ("SSIM", "right"),
        ("NMSE", "right"),
        ("status", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        scored = row.ok and not math.isnan(row.psnr)  # NaN: no reference
        table.add_row(
            Text(str(inputs.relative(row.input))),
            row.mask,
            f"{row.frames} x {row.slices}" if row.ok else "",
            f"{row.seconds:.1f}" if row.ok else "",
            f"{row.psnr:.2f}" if scored else "",
            f"{row.ssim:.4f}" if scored else "",
            f"{row.nmse:.4f}" if scored else "",
            _status_text(row),
        )
    return table
