"""An ONNX conversion in a child process of its own.

Converting loads the saved model with its framework's native library and runs the converter
on it: a crafted model file that crashes either (SIGSEGV, SIGABRT, an allocation of
gigabytes) must not take down the process that asked — every `shipyard serve` / `server` on
the store resumes pending conversions in the background, so one hostile version would crash
unrelated servers (red team finding 2). `convert_isolated` runs `flavors.convert_saved` in a
fresh interpreter (`python -m shipyard.registry.conversion_child`), which reads the saved
model from the artifact folder and writes the checked ONNX bytes to a file; a crash, a
timeout or a refusal becomes a ConversionError (`crashed` set for the first two).

Run as a program: `python -m shipyard.registry.conversion_child ARTIFACT_ROOT DIGEST OUT`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.errors import ConversionError

if TYPE_CHECKING:
    from shipyard.stores.artifacts import LocalArtifactStore

TIMEOUT_SECONDS = 900.0


class ConverterUnavailable(ImportError):
    """The child could not import a converter: no verdict on the model (retried later)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConverterCrashed(ConversionError):
    """The converting process died (a signal, an exit without an answer) or ran out of time."""


# what a scikit-learn model saved with skops alone holds: loading it (skops, with its trust
# checks) and converting it (skl2onnx) run Python only, so it converts in the process that asks
# — a child's start and imports cost seconds per version. Everything else (native boosters,
# TorchScript, pipelines with booster steps) converts in a child.
IN_PROCESS_FILES = frozenset({"model.skops", "requirements.txt"})


def convert(artifacts: LocalArtifactStore, digest: str) -> bytes:
    """`convert_saved(artifacts, digest)`: here for a pure-Python scikit-learn model, in a
    child process for anything a native library loads."""
    from shipyard.flavors import convert_saved, read_manifest

    manifest = read_manifest(artifacts, digest)
    files = set(manifest.get("files") or ())
    if manifest.get("flavor") == "sklearn" and files <= IN_PROCESS_FILES:
        return convert_saved(artifacts, digest)
    return convert_isolated(artifacts, digest)


def convert_isolated(
    artifacts: LocalArtifactStore, digest: str, *, timeout: float = TIMEOUT_SECONDS
) -> bytes:
    """`convert_saved(artifacts, digest)`, run in a child process."""
    with tempfile.TemporaryDirectory(prefix="shipyard-convert-") as tmp:
        out = Path(tmp) / "model.onnx"
        command = [sys.executable, "-m", __name__, str(artifacts.root), digest, str(out)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise ConverterCrashed(f"the converter ran for more than {timeout:.0f} s") from exc
        if done.returncode < 0:
            raise ConverterCrashed(f"the converter crashed ({_signal_name(-done.returncode)})")
        answer = _answer(done.stdout)
        if done.returncode != 0 or answer is None:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConverterCrashed(f"the converter exited with {done.returncode}: {last[:300]}")
        if answer.get("unavailable") is not None:
            raise ConverterUnavailable(str(answer["unavailable"]))
        if answer.get("refused") is not None:
            raise ConversionError(str(answer["refused"]))
        return out.read_bytes()


def _signal_name(number: int) -> str:
    try:
        return f"signal {number}, {signal.Signals(number).name}"
    except ValueError:
        return f"signal {number}"


def _answer(stdout: str) -> dict[str, object] | None:
    lines = stdout.strip().splitlines()
    try:
        doc = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def main(argv: list[str]) -> int:
    """Convert one saved model; the last stdout line says {"ok": true}, {"refused": why} or
    {"unavailable": what to install}."""
    from shipyard.flavors import convert_saved
    from shipyard.stores.artifacts import LocalArtifactStore

    root, digest, out = argv
    try:
        data = convert_saved(LocalArtifactStore(root), digest)
    except ImportError as exc:  # a converter not installed: no verdict on the model
        answer: dict[str, object] = {
            "unavailable": getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        }
    except ConversionError as exc:
        answer = {"refused": exc.message}
    except Exception as exc:  # skl2onnx fails in many ways on models it does not know
        answer = {"refused": f"{type(exc).__name__}: {exc}"}
    else:
        Path(out).write_bytes(data)
        answer = {"ok": True}
    print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
