"""SQLAlchemy models, one module per aggregate; imported here so Alembic sees every table."""
from .activity import ActivityEntry
from .admin import Admin
from .admin_session import AdminSession
from .assignment import AssignmentBatch, AssignmentTask
from .configuration import ServerConfiguration, TrustedCertificate
from .device import Device
from .profile import EnrollmentProfile
from .server import ManagedServer, PendingKeyPair
from .setting import Setting
from .sync import SyncRun

__all__ = ["ActivityEntry", "Admin", "AdminSession", "AssignmentBatch", "AssignmentTask", "Device",
           "EnrollmentProfile", "ManagedServer", "PendingKeyPair", "ServerConfiguration", "Setting", "SyncRun", "TrustedCertificate"]
