"""What the tests share besides fixtures: where things are, and the tolerances the tests themselves use.

Test files live in a folder per package (tests/book/, tests/grading/, ...); the data they read stay in
tests/fixtures/, found through FIXTURES whatever folder the test sits in. The tests/ folder is on the import
path (tests/conftest.py sits there, and pytest puts a conftest's folder first), so `from helpers import ...`,
`import_module("fixtures.NAME")` and the other shared modules here import from any folder. The folders hold no
__init__.py, so pytest imports each test file by its base name: a name is used once across all the folders.
"""

from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent  # the repository: pyproject.toml, parity/, README.md
FIXTURES = TESTS / "fixtures"  # learner-style modules, submissions, notebooks, golden outputs
