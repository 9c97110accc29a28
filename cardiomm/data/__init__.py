"""Data: scan metadata, file readers, slice datasets and the synthetic multi-centre generator."""

from cardiomm.data.metadata import ScanMetadata

__all__ = ["ScanMetadata"]
