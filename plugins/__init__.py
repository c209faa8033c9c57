"""kperf's built-in plugins (installed as the import package ``kperf_plugins``).

Each sub-package holds one kind of feature; each feature is a module registered through the
``kperf`` entry-point group in pyproject.toml, exactly as a third-party plugin would be.
"""
