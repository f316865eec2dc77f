"""The provider conformance suite: one catalogue of scenarios (`scenarios.py`) run through the
real gateway against every provider target (`providers.py`), each served by a mock upstream that
speaks that provider's wire format and quirks, switched by the target's declared capabilities."""

import pytest

# The scenarios' plain asserts should report their values, as a test module's do.
pytest.register_assert_rewrite("conformance.scenarios", "conformance.harness")
