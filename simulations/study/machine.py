"""What the study ran on, for the report and MLflow."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def describe_machine() -> str:
    """The machine in one line: CPU model and cores, GPUs, torch."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        gpu = f"{len(names)} GPU(s): {', '.join(names)}"
    else:
        gpu = "no GPU (CPU only)"
    return f"{cpu}, {os.cpu_count()} CPU cores; {gpu}; torch {torch.__version__}"
