"""Where the checkout, the tests and the worker scripts are."""
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
WORKERS = TESTS / "workers"
