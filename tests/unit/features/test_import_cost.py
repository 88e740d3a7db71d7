from __future__ import annotations

import subprocess
import sys


def test_definitions_and_store_import_no_heavy_library() -> None:
    code = (
        "import sys\n"
        "from shipyard.features import Entity, FeatureService, FeatureStore, FeatureView, Source\n"
        "Entity('driver', ['driver_id'])\n"
        "heavy = {'pandas', 'duckdb', 'redis', 'pyarrow', 'sqlalchemy'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
