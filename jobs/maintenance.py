"""Housekeeping jobs."""
from __future__ import annotations

import os
import socket

from portal.activity.record import record_activity
from portal.extensions import db


def heartbeat(token: str) -> dict:
    """Prove that a worker runs jobs with the app's database: record that it answered."""
    host = f"{socket.gethostname()} (pid {os.getpid()})"
    record_activity("system.heartbeat", summary=f"Background worker on {host} answered the test job",
                    details={"job_id": token, "worker": host})
    db.session.commit()
    return {"worker": host}
