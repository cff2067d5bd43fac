"""Where migrations/ and policies/ are: inside the installed wheel, or at the top of a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent


def _find(name: str) -> Path:
    bundled = _PACKAGE / "_bundled" / name
    if bundled.is_dir():
        return bundled
    checkout = _PACKAGE.parent.parent / name  # src/tenantry -> repository root
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"cannot find the {name}/ folder next to the tenantry package")


def migrations_dir() -> Path:
    return _find("migrations")


def policies_dir() -> Path:
    return _find("policies")
