"""The password policy: what a new password must be, as a list of reasons it is not.

Following NIST SP 800-63B and OWASP: long enough (12 characters) rather than "complex",
bounded (128), not one of the passwords attackers try first (`common_passwords.txt`,
compared case-insensitively), and not built around the username. No rules about digits or
symbols and no forced periodic changes: they make passwords worse, not better.

Passwords are normalised to Unicode NFKC before they are checked or hashed, so the same
password typed on two keyboards (full-width and half-width digits, say) is the same password.
Pure: the only thing read is the deny list shipped next to this module.
"""

from __future__ import annotations

import unicodedata
from functools import cache
from pathlib import Path

MIN_LENGTH = 12
MAX_LENGTH = 128
MIN_USERNAME_CHECKED = 3
"""A shorter username (`li`) is part of too many good passwords to forbid it."""

_DENY_LIST = Path(__file__).with_name("common_passwords.txt")


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


@cache
def common_passwords() -> frozenset[str]:
    """The deny list, lower-cased; lines starting with `#` are comments."""
    lines = _DENY_LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(normalize(line.strip()).casefold() for line in lines if line.strip() and not line.startswith("#"))


def problems(password: str, username: str | None = None) -> list[str]:
    """Every reason `password` is refused as a new password for `username`; empty when it is fine."""
    password = normalize(password)
    folded = password.casefold()
    reasons = []
    if len(password) < MIN_LENGTH:
        reasons.append(f"must be at least {MIN_LENGTH} characters long (this one has {len(password)})")
    if len(password) > MAX_LENGTH:
        reasons.append(f"must be at most {MAX_LENGTH} characters long (this one has {len(password)})")
    if folded in common_passwords():
        reasons.append("is one of the most commonly used passwords; choose another")
    elif password and len(set(folded)) == 1:
        reasons.append("must not be one character repeated")
    if username:
        name = normalize(username).casefold().strip()
        if len(name) >= MIN_USERNAME_CHECKED and name in folded:
            reasons.append("must not contain the username")
    return reasons
