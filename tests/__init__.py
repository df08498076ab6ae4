# Makes `tests` this project's package: torch-fidelity's wheel installs a top-level `tests` too.
