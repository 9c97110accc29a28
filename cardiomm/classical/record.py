"""A tuning record read back: the classical settings an exam chose, for reconstructing anew.

``cardiomm evaluate`` and the study write ``classical_tuning.json`` (the settings chosen on
internal validation files per mask setting, and the grid's solver iterations).
``cardiomm reconstruct --method ... --classical-tuning FILE`` reconstructs with exactly those
settings, so a site reproduces the exam's baseline on its own files. The file may come from
anywhere: every value is checked (known methods, finite positive lambdas, valid ESPIRiT
settings, positive iterations) and a bad one is one line naming the file and the field.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from cardiomm.classical.methods import METHODS
from cardiomm.classical.reconstructor import ClassicalReconstructor
from cardiomm.classical.suite import reconstructors_for
from cardiomm.classical.tuning import SettingChoice, TuningGrid

# The largest lambda that can mean anything: the operators have norm <= 1 on normalised data.
_MAX_LAMBDA = 1e3
_MAX_ITERATIONS = 100_000


@dataclasses.dataclass(frozen=True)
class TuningRecord:
    """The chosen settings per mask setting and the solver iterations they were scored with.

    Attributes:
        path: the file read.
        choices: mask setting (e.g. ``ktRadial24``) -> what tuning chose there.
        max_iter: method -> solver iterations (absent: the method's default).
    """

    path: Path
    choices: dict[str, SettingChoice]
    max_iter: dict[str, int]

    def grid(self) -> TuningGrid:
        """A grid that builds methods with the record's solver iterations."""
        return TuningGrid(max_iter=dict(self.max_iter))


def read_tuning_record(path: Path) -> TuningRecord:
    """The record at ``path``, every value checked.

    Raises:
        ValueError: one line, ``"<path>: <problem>"``.
    """
    try:
        values = json.loads(Path(path).read_text())
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror or error})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: is not a JSON tuning record ({error})") from None
    try:
        return parse_tuning_record(values, Path(path))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: {_reason(error)}") from None


def parse_tuning_record(values: Any, path: Path) -> TuningRecord:
    """The record held by ``values`` (the JSON object of a tuning file).

    Raises:
        KeyError, TypeError, ValueError: a missing, mistyped or out-of-range value (the
            message names it, without the path).
    """
    if not isinstance(values, dict) or not isinstance(values.get("choices"), dict):
        raise ValueError("holds no 'choices' object (not a classical_tuning.json)")
    if not values["choices"]:
        raise ValueError("holds no tuned mask setting")
    choices = {}
    for setting, entry in values["choices"].items():
        if not isinstance(entry, dict):
            raise TypeError(f"choice {setting!r} is a {type(entry).__name__}, not an object")
        try:
            choice = SettingChoice.from_dict(entry)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"choice {setting!r}: {_reason(error)}") from None
        _check_choice(setting, choice)
        choices[str(setting)] = choice
    return TuningRecord(path, choices, _max_iterations(values))


def _check_choice(setting: str, choice: SettingChoice) -> None:
    if choice.setting != setting:
        raise ValueError(f"choice {setting!r} says it is for {choice.setting!r}")
    if choice.best_method not in choice.regularization:
        raise ValueError(f"choice {setting!r}: best method {choice.best_method!r} has no lambda")
    for method, value in choice.regularization.items():
        if method not in METHODS:
            raise ValueError(f"choice {setting!r}: unknown method {method!r}")
        if not (math.isfinite(value) and 0 < value <= _MAX_LAMBDA):
            raise ValueError(
                f"choice {setting!r}: lambda of {method} is {value}, not in (0, {_MAX_LAMBDA:g}]"
            )


def _max_iterations(values: dict) -> dict[str, int]:
    grid = (values.get("signature") or {}).get("grid") or {}
    iterations = grid.get("max_iter") or {}
    if not isinstance(iterations, dict):
        raise TypeError("signature.grid.max_iter is not an object")
    checked = {}
    for method, value in iterations.items():
        if method not in METHODS:
            raise ValueError(f"signature.grid.max_iter names unknown method {method!r}")
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"signature.grid.max_iter.{method} is {value!r}, not an integer")
        if not 1 <= value <= _MAX_ITERATIONS:
            raise ValueError(
                f"signature.grid.max_iter.{method} is {value}, not in [1, {_MAX_ITERATIONS}]"
            )
        checked[method] = value
    return checked


def _reason(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"missing field {error.args[0]!r}"
    return str(error)


def classical_reconstructor(
    name: str, setting: str, record: TuningRecord | None
) -> ClassicalReconstructor:
    """Classical baseline ``name`` (a method or ``best-classical``) at mask setting
    ``setting``: the record's choice there, or without a record each method's default lambda
    and the default ESPIRiT settings.

    Raises:
        ValueError: ``best-classical`` without a record, or a record with no choice at
            ``setting`` (naming the settings it holds).
    """
    if record is None:
        return reconstructors_for([name], None)[0]
    choice = record.choices.get(setting)
    if choice is None:
        raise ValueError(
            f"{record.path} holds no tuned settings for {setting} (it holds "
            f"{', '.join(sorted(record.choices))})"
        )
    return reconstructors_for([name], choice, record.grid())[0]
