"""Add Devices / Remove Devices pages (placeholder, being built)."""
from . import bp  # noqa: F401
