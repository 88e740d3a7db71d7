"""Batch scoring: a model over Parquet/CSV files of any size, in chunks, in parallel,
resumable. `shipyard batch score --model churn@champion --input data/ --output preds/`."""

from __future__ import annotations

from shipyard.batch.scoring import ScoreResult, score_files

__all__ = ["ScoreResult", "score_files"]
