"""The test suite (a package, so `tests.*` is this folder even where a dependency installs a `tests` package)."""
