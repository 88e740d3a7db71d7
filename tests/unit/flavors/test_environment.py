"""The lock of a model's packages and its comparison with an environment, on their own."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from shipyard.errors import InvalidArgumentError, ModelLoadError
from shipyard.flavors.environment import Environment, EnvironmentWarning, check, lock
from shipyard.flavors.python_model import imported_modules

LOCK = Environment(
    python="3.11.9",
    packages={"scikit-learn": "1.5.2", "numpy": "1.26.4", "tzdata": "2024.1"},
    framework=("scikit-learn",),
)


def installed(versions: dict[str, str | None]):  # type: ignore[no-untyped-def]
    return lambda name: versions.get(name)


@pytest.mark.parametrize(
    ("have", "level"),
    [
        ("1.5.2", None),
        ("1.5.3", "patch"),
        ("1.6.0", "minor"),
        ("2.0.0", "major"),
        (None, "missing"),
    ],
)
def test_how_far_each_version_is(have: str | None, level: str | None) -> None:
    found = LOCK.differences(
        installed({"scikit-learn": have, "numpy": "1.26.4", "tzdata": "2024.1"})
    )
    assert [d.level for d in found] == ([level] if level else [])


def test_a_framework_major_refuses_naming_each_package() -> None:
    here = installed({"scikit-learn": "2.0.1", "numpy": "2.1.0", "tzdata": "2024.1"})
    with pytest.raises(ModelLoadError) as caught:
        check(LOCK, installed=here, what="models:/m/3")
    message = caught.value.message
    assert "models:/m/3 needs another version of its framework" in message
    assert "scikit-learn wanted 1.5.2, installed 2.0.1 (framework, major)" in message
    assert "--ignore-env" in message
    with pytest.warns(
        EnvironmentWarning, match=r"numpy wanted 1\.26\.4, installed 2\.1\.0 \(major\)"
    ):
        found = check(LOCK, installed=here, ignore_env=True)
    assert [d.package for d in found] == ["numpy", "scikit-learn"]


def test_served_through_onnx_the_training_framework_only_warns() -> None:
    here = installed({"scikit-learn": "2.0.1", "numpy": "1.26.4", "tzdata": "2024.1"})
    with pytest.warns(EnvironmentWarning):
        check(LOCK, installed=here, strict=["onnxruntime"])


def test_requirements_file_pins_every_package() -> None:
    text = LOCK.requirements_txt()
    assert text.splitlines()[1:] == ["numpy==1.26.4", "scikit-learn==1.5.2", "tzdata==2024.1"]
    assert Environment.from_manifest({"environment": LOCK.to_dict()}) == LOCK


def test_lock_follows_requirements_and_checks_declared_ones() -> None:
    env = lock({"scikit-learn": version("scikit-learn")}, ["yaml", "os"], ["httpx"])
    assert env.packages["scikit-learn"] == version("scikit-learn")
    assert env.packages["scipy"] == version("scipy")  # scikit-learn requires it
    assert env.packages["PyYAML"] == version("pyyaml")  # the module yaml's distribution
    assert env.packages["httpx"] == version("httpx")
    assert env.framework == ("scikit-learn",)
    unknown = lock({}, [], ["surely-not-installed-pkg==1.0"])
    assert unknown.unpinned == ("surely-not-installed-pkg==1.0",)
    assert "surely-not-installed-pkg==1.0" in unknown.requirements_txt()
    with pytest.raises(InvalidArgumentError, match="not what is installed here"):
        lock({}, [], ["numpy<1"])
    with pytest.raises(InvalidArgumentError, match="is not a requirement"):
        lock({}, [], ["numpy ==="])


def test_imports_are_read_from_the_code_even_inside_functions(tmp_path: Path) -> None:
    code = tmp_path / "m.py"
    code.write_text(
        "import os.path\nfrom yaml import safe_load\nfrom . import sibling\n"
        "def f():\n    import httpx\n    from numpy.linalg import norm\n"
    )
    assert imported_modules([code]) == {"os", "yaml", "httpx", "numpy"}


@pytest.mark.parametrize(
    ("locked", "here"), [("xgboost-cpu", "xgboost"), ("xgboost", "xgboost-cpu")]
)
def test_xgboost_and_xgboost_cpu_are_one_framework(locked: str, here: str) -> None:
    lock_ = Environment("3.11.9", {locked: "3.2.0", "numpy": "1.26.4"}, framework=(locked,))
    same = installed({here: "3.2.0", "numpy": "1.26.4"})
    assert check(lock_, installed=same) == []
    with pytest.raises(ModelLoadError, match=rf"{locked} wanted 3\.2\.0, installed 2\.1\.0"):
        check(lock_, installed=installed({here: "2.1.0", "numpy": "1.26.4"}))
    with pytest.raises(ModelLoadError, match="installed none"):
        check(lock_, installed=installed({"numpy": "1.26.4"}))


def test_requirements_of_xgboost_cpu_install_on_every_platform() -> None:
    from packaging.requirements import Requirement

    lock_ = Environment("3.11.9", {"xgboost-cpu": "3.2.0"}, framework=("xgboost-cpu",))
    lines = [line for line in lock_.requirements_txt().splitlines() if line[:1] != "#"]
    wanted = {
        "Linux": "xgboost-cpu",
        "Windows": "xgboost-cpu",
        "Darwin": "xgboost",
    }
    for system, dist in wanted.items():
        chosen = [
            r.name
            for r in map(Requirement, lines)
            if r.marker is None or r.marker.evaluate({"platform_system": system})
        ]
        assert chosen == [dist], (system, lines)
    assert all("==3.2.0" in line for line in lines)
