"""SQLAlchemy models, one module per aggregate; imported here so Alembic sees every table."""
from .activity import ActivityEntry
from .admin import Admin
from .setting import Setting

__all__ = ["ActivityEntry", "Admin", "Setting"]
