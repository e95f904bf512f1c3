"""Which ``baton`` the tests run against.

scripts/sdk-python-package.sh runs these tests against the built wheel
installed in a fresh venv, with ``BATON_SDK_EXPECT_INSTALLED=1``: the run then
fails at once unless ``baton`` is imported from that venv's site-packages
(not from sdk/python/src) with the distribution's metadata.
"""

from __future__ import annotations

import importlib.metadata
import os
import sysconfig
from pathlib import Path

import pytest

import baton

DISTRIBUTION = "baton-broker-sdk"


def pytest_report_header() -> str:
    return f"baton {baton.__version__} from {Path(baton.__file__).parent}"


def installed_problems() -> list[str]:
    """What is wrong with ``baton`` as an installed (not editable) distribution."""
    problems = []
    package = Path(baton.__file__).resolve().parent
    site = {Path(sysconfig.get_path(p)).resolve() for p in ("purelib", "platlib")}
    if package.parent not in site:
        problems.append(f"baton is imported from {package}, not from site-packages ({', '.join(map(str, site))})")
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return [*problems, f"no distribution {DISTRIBUTION} is installed"]
    if dist.version != baton.__version__:
        problems.append(f"{DISTRIBUTION} is {dist.version} but baton.__version__ is {baton.__version__}")
    if dist.metadata["License-Expression"] != "Apache-2.0":
        problems.append(f"License-Expression is {dist.metadata['License-Expression']!r}")
    files = {str(f) for f in dist.files or ()}
    for wanted in ("baton/py.typed", "baton/v1/broker_pb2.py"):
        if wanted not in files:
            problems.append(f"{wanted} is not in the wheel")
    if not any(f.endswith("licenses/LICENSE") for f in files):
        problems.append("the wheel carries no LICENSE")
    return problems


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("BATON_SDK_EXPECT_INSTALLED") == "1":
        problems = installed_problems()
        if problems:
            raise pytest.UsageError("not testing the installed wheel: " + "; ".join(problems))
