from tests.scenarios.conftest import firm, psa  # noqa: F401 - the same fixtures
