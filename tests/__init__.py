"""lossbench's tests: a regular package, so "tests.conftest" is this folder even when another
distribution installs a "tests" package into site-packages."""
