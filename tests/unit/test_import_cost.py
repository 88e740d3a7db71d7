"""`import shipyard` and `shipyard --help` stay light: checked in fresh interpreters."""

from __future__ import annotations

import json
import subprocess
import sys

import shipyard

HEAVY = [
    "torch",
    "onnxruntime",
    "sklearn",
    "pandas",
    "sqlalchemy",
    "redis",
    "psycopg",
    "ray",
    "numpy",
    "fastapi",
    "alembic",
    "skops",
    "onnx",
    "grpc",
]


def _loaded_after(code: str) -> list[str]:
    probe = (
        code + f"\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_import_shipyard_loads_no_heavy_library() -> None:
    assert _loaded_after("import shipyard") == []


def test_cli_help_loads_no_heavy_library() -> None:
    code = (
        "import sys\nfrom shipyard.cli.main import main\nsys.argv=['shipyard','--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass"
    )
    assert _loaded_after(code) == []


def test_serving_without_a_grpc_port_loads_no_grpc() -> None:
    """The modules `shipyard serve` and `shipyard server` start from import grpc only when
    --grpc-port asks for it (serving/grpc_v2)."""
    code = (
        "import shipyard.cli.serve, shipyard.serving.app, shipyard.serving.runner, "
        "shipyard.server.app, shipyard.serving.grpc_v2\nimport sys\n"
        "print('grpc' in sys.modules or 'google.protobuf' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_all_matches_the_lazy_table() -> None:
    assert set(shipyard.__all__) == set(shipyard._LAZY) | {"__version__"}
    for name in shipyard._LAZY:
        assert getattr(shipyard, name) is not None, name


def test_unknown_attribute_is_an_attribute_error() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = shipyard.nope  # type: ignore[attr-defined]
