"""Helpers shared by the tests and the msrun workers. Test modules import these, never each other.

tests/ is on sys.path: for pytest through pyproject.toml's ``pythonpath``, for the workers through
``support.msrun_launch.msrun_env``."""
