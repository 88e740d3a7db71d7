"""`shipyard features` as a user drives it: apply a definitions file, list, show,
materialize with a progress bar, look up; bad input is one line and exit code 2."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import run_cli

sh = functools.partial(run_cli, timeout=120)

pytestmark = pytest.mark.e2e


def run_in_process(home: Path, argv: list[str]) -> str:
    """Run the CLI in this process; returns its stderr, after checking the exit code is 2."""
    import contextlib
    import io

    from shipyard.cli.main import main
    from shipyard.config import reset_settings

    os.environ["SHIPYARD_HOME"] = str(home)
    reset_settings()
    err = io.StringIO()
    with contextlib.redirect_stderr(err), pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2, err.getvalue()
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_apply_list_show_materialize_get(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_HOME", str(tmp_path / "home"))  # restored after the test
    home = tmp_path / "home"
    now = pd.Timestamp.now(tz="UTC").floor("s")
    pd.DataFrame(
        {
            "driver_id": [1, 1, 2],
            "event_timestamp": [now - pd.Timedelta(hours=h) for h in (3, 1, 2)],
            "trips": [10, 11, 20],
        }
    ).to_parquet(tmp_path / "stats.parquet")
    defs = tmp_path / "defs.py"
    defs.write_text(
        textwrap.dedent(
            """
            from datetime import timedelta
            import pandas as pd
            from shipyard.features import Entity, FeatureService, FeatureView, Source, on_demand

            driver = Entity("driver", join_keys=["driver_id"])
            stats = FeatureView("driver_stats", entity=driver,
                source=Source.parquet("stats.parquet"), features={"trips": "long"},
                ttl=timedelta(days=1), owner="ml-team", default={"trips": 0})

            @on_demand(sources=[stats], request={"amount": "double"},
                       features={"per_trip": "double"})
            def per_trip(df):
                return pd.DataFrame({"per_trip": df["amount"] / df["trips"].clip(lower=1)})

            churn = FeatureService("churn", features=[stats, per_trip])
            """
        )
    )
    out = sh(home, "features", "apply", str(defs))
    assert "driver_stats" in out.stdout and "created" in out.stdout
    assert "unchanged" in sh(home, "features", "apply", str(defs)).stdout
    listed = json.loads(sh(home, "features", "list", "--json").stdout)
    assert {(d["kind"], d["name"]) for d in listed} == {
        ("entity", "driver"),
        ("view", "driver_stats"),
        ("on_demand", "per_trip"),
        ("service", "churn"),
    }
    assert "def per_trip(df):" in sh(home, "features", "show", "per_trip").stdout
    shown = sh(home, "features", "show", "driver_stats").stdout
    assert "feature trips: long" in shown and "owner: ml-team" in shown
    out = sh(home, "features", "materialize")
    assert "driver_stats: 2 entities written" in out.stdout
    got = json.loads(
        sh(home, "features", "get", "churn", "-e", "driver_id=1", "-e", "amount=22").stdout
    )
    assert got == {"trips": [11], "per_trip": [2.0]}

    (tmp_path / "fresh.json").write_text(json.dumps([{"driver_id": 2, "trips": 77}]))
    assert (
        "1 row(s) written"
        in sh(home, "features", "push", "driver_stats", str(tmp_path / "fresh.json")).stdout
    )
    (tmp_path / "bad.json").write_text(json.dumps([{"driver_id": 2, "trips": "x"}]))
    err = run_in_process(home, ["features", "push", "driver_stats", str(tmp_path / "bad.json")])
    assert "feature 'trips' of view 'driver_stats' is long, got str" in err
    # one readable line and exit code 2 (run in-process: the same entry point, less waiting)
    assert run_in_process(home, ["features", "show", "driver_stat"]) == (
        "error: feature definition 'driver_stat' not found; did you mean 'driver_stats'?"
    )
    err = run_in_process(home, ["features", "get", "driver_stats:trip", "-e", "driver_id=1"])
    assert "did you mean 'driver_stats:trips'" in err
    err = run_in_process(home, ["features", "materialize", "--start", "yesterday"])
    assert "not an ISO time" in err
    assert "no such file" in run_in_process(home, ["features", "apply", str(tmp_path / "no.py")])


def test_features_help_is_fast(tmp_path: Path) -> None:
    code = (
        "import sys; from shipyard.cli.main import main\n"
        "try:\n    main(['features', '--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = {'pandas', 'duckdb', 'redis', 'sqlalchemy', 'pyarrow'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


@pytest.mark.parametrize("command", ["apply", "list", "show", "materialize", "get", "push"])
def test_every_command_has_an_example(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    from shipyard.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["features", command, "--help"])
    assert exit_info.value.code == 0
    assert "Example" in capsys.readouterr().out
