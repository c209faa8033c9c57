"""Package discovery only; all metadata lives in pyproject.toml.

plugins/ and charts/ install under the import names kperf_plugins and kperf_charts (see
pyproject.toml's package-dir), which setuptools' declarative `find` cannot express.
"""

from setuptools import find_namespace_packages, find_packages, setup


def renamed(directory: str, import_name: str) -> list[str]:
    # Charts are data directories without __init__.py, hence namespace discovery.
    return [import_name] + [f"{import_name}.{p}" for p in find_namespace_packages(directory)]


setup(
    packages=find_packages(include=["kperf_core", "kperf_core.*"])
    + renamed("plugins", "kperf_plugins")
    + renamed("charts", "kperf_charts")
)
