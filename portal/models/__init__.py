"""SQLAlchemy models, one module per aggregate; imported here so Alembic sees every table."""
from .activity import ActivityEntry
from .admin import Admin
from .device import Device
from .server import ManagedServer, PendingKeyPair
from .setting import Setting
from .sync import SyncRun

__all__ = ["ActivityEntry", "Admin", "Device", "ManagedServer", "PendingKeyPair", "Setting", "SyncRun"]
