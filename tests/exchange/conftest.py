"""The hostile-bundle fixtures of the adversarial catalogue (tests/test_security.py), shared here."""

from tests.test_security import bundle, source, target, victim  # noqa: F401
