"""The figures the slow real-data tests guard are the README's figures (fast, no TensorFlow)."""

from __future__ import annotations

import re

import pytest
from readme_claims import CLAIMS, README, readme_text


@pytest.mark.parametrize("name", sorted(CLAIMS))
def test_readme_still_states_the_guarded_figure(name):
    claim = CLAIMS[name]
    assert re.search(rf"(?<![\d.]){re.escape(claim.figure)}(?![\d])", claim.readme), (name, claim)
    assert claim.readme in readme_text(), f"{README} no longer says {claim.readme!r} ({name})"


def test_every_claim_is_checked_by_a_slow_test():
    """Each claim's name is written in one of tests/test_real_*.py, so none is left unguarded."""
    sources = "".join(path.read_text(encoding="utf-8") for path in README.parent.glob("tests/test_real_*.py"))
    unguarded = sorted(name for name in CLAIMS if f'"{name}"' not in sources)
    assert not unguarded, f"README figures no slow test checks: {unguarded}"


def test_every_checked_name_is_a_claim():
    """Each ``check("NAME", ...)`` in tests/test_real_*.py names a claim (no KeyError after a
    half-hour run)."""
    sources = "".join(path.read_text(encoding="utf-8") for path in README.parent.glob("tests/test_real_*.py"))
    unknown = sorted(set(re.findall(r'check\("([^"]+)"', sources)) - set(CLAIMS))
    assert not unknown, f"slow tests check figures tests/readme_claims.py does not have: {unknown}"
