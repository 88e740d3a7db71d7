"""Monitoring: drift, data quality and (with labels) live accuracy, on DataFrames, files, or an
endpoint's prediction log.

    from shipyard.monitoring import detect_drift
    report = detect_drift(train_df, live_df)          # DriftReport
    report.drifted_columns
"""

from __future__ import annotations

from shipyard.monitoring.drift import ColumnDrift, DriftReport, detect_drift
from shipyard.monitoring.quality import QualityReport, check_quality
from shipyard.sketches import Profile

__all__ = [
    "ColumnDrift",
    "DriftReport",
    "Profile",
    "QualityReport",
    "check_quality",
    "detect_drift",
]
