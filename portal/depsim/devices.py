"""Device operations of the simulator: inventory changes from "Apple Business Manager" (add, move,
release, a device fetching its profile) and the DEP API's device calls, each emitting sync events.

Mixed into SimState; relies on its `db`, `now_ts`, `settings`, `_server_row` and `_meta` helpers.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

from . import faults as fault_rules
from . import inventory

_DEVICE_COLUMNS = ("serial, server_id, family, os, model, description, color, asset_tag,"
                   " assigned_by, assigned_at")
_CHUNK = 500  # stay far below SQLite's bound-parameter limit


def _chunks(items: list, size: int = _CHUNK) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class DeviceMixin:
    """Device inventory and per-device API operations (see module docstring)."""

    # --- inventory changes (the "ABM" side) -------------------------------------------------
    def add_devices(self, server_name: str, count: int = 0, *,
                    serials: list[str] | None = None) -> list[str]:
        """Add `count` generated devices and/or the given serials to a server ('added' events)."""
        if count < 0:
            raise ValueError("count must not be negative")
        now = int(self.now_ts())
        with self.db.transaction() as conn:
            server = self._server_row(server_name, conn)
            first_number = self._meta(conn, "next_device_number", 0)
            rows = inventory.generate(server["seed"], server["next_index"], first_number, count)
            rows += self._explicit_rows(conn, serials or [])
            self._set_meta(conn, "next_device_number", first_number + count)
            conn.execute("UPDATE servers SET next_index = next_index + ? WHERE id = ?",
                         (count, server["id"]))
            before = conn.execute("SELECT COALESCE(MAX(id), 0) FROM devices").fetchone()[0]
            tail = (server["id"],)
            conn.executemany(
                f"INSERT INTO devices ({_DEVICE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (r[:1] + tail + r[1:] + (server["admin_id"], now) for r in rows))
            conn.execute("INSERT INTO events (server_id, device_id, op_type, op_date)"
                         " SELECT ?, id, 'added', ? FROM devices WHERE id > ? ORDER BY id",
                         (server["id"], now, before))
        return [r[0] for r in rows]

    def _explicit_rows(self, conn, serials: list[str]) -> list[tuple]:
        wanted = list(dict.fromkeys(s.strip().upper() for s in serials if s.strip()))
        taken = [r["serial"] for chunk in _chunks(wanted) for r in conn.execute(
            f"SELECT serial FROM devices WHERE serial IN ({','.join('?' * len(chunk))})", chunk)]
        if taken:
            raise ValueError(f"serials already exist (move them instead): {', '.join(taken)}")
        return [inventory.describe_serial(s) for s in wanted]

    def move_devices(self, serials: list[str], to_server: str, *, op_type: str | None = None) -> list[str]:
        """Reassign devices to another server: 'deleted' on the old one, 'added' (or 'modified') on the new."""
        op_type = op_type or self.settings()["move_op_type"]
        if op_type not in ("added", "modified"):
            raise ValueError("op_type must be 'added' or 'modified'")
        now = int(self.now_ts())
        moved = []
        with self.db.transaction() as conn:
            target = self._server_row(to_server, conn)
            for row in self._rows_by_serial(conn, serials, require=True):
                if row["server_id"] == target["id"] and not row["removed"]:
                    continue
                if not row["removed"]:
                    self._event(conn, row["server_id"], row["id"], "deleted", now)
                conn.execute(
                    "UPDATE devices SET server_id=?, removed=0, assigned_at=?, assigned_by=?,"
                    " profile_uuid=NULL, profile_status='empty', profile_assign_time=NULL,"
                    " profile_push_time=NULL WHERE id=?", (target["id"], now, target["admin_id"], row["id"]))
                self._event(conn, target["id"], row["id"], op_type, now)
                moved.append(row["serial"])
        return moved

    def release_devices(self, serials: list[str], *, silent: bool = False) -> list[str]:
        """Release devices from the organisation ('deleted' on their server). `silent`: without the
        'deleted' change, as MDM vendors report Apple doing for devices released in Apple Business
        Manager (fleet#49268, see peers.md): only a full fetch shows them gone."""
        now = int(self.now_ts())
        released = []
        with self.db.transaction() as conn:
            for row in self._rows_by_serial(conn, serials, require=True):
                if not row["removed"]:
                    self._release(conn, row, now, event=not silent)
                    released.append(row["serial"])
        return released

    def mark_pushed(self, serials: list[str]) -> list[str]:
        """Devices that fetched their assigned profile in Setup Assistant ('modified' events)."""
        now = int(self.now_ts())
        pushed = []
        with self.db.transaction() as conn:
            for row in self._rows_by_serial(conn, serials, require=True):
                if row["removed"] or row["profile_status"] != "assigned":
                    continue
                conn.execute("UPDATE devices SET profile_status='pushed', profile_push_time=?"
                             " WHERE id=?", (now, row["id"]))
                self._event(conn, row["server_id"], row["id"], "modified", now)
                pushed.append(row["serial"])
        return pushed

    # --- DEP API operations -----------------------------------------------------------------
    def disown(self, server_id: int, serials: list[str]) -> dict[str, str]:
        """`POST /devices/disown`: SUCCESS / NOT_ACCESSIBLE / FAILED per serial."""
        now = int(self.now_ts())
        failing = set(self._fault(server_id, "assign_failed") or [])
        return self._per_device(server_id, serials, failing,
                                lambda conn, row: self._release(conn, row, now))

    def assign_profile(self, server_id: int, profile_uuid: str, serials: list[str], *,
                       throttled_allowed: bool) -> tuple[dict[str, str], int | None]:
        """Assign a profile; returns per-serial results and retry_after for THROTTLED ones."""
        now = int(self.now_ts())
        failing = set(self._fault(server_id, "assign_failed") or [])
        throttle = self._fault(server_id, "throttle")
        hit = {s for s in serials if fault_rules.is_throttled(s, throttle)}

        def assign(conn, row):
            conn.execute("UPDATE devices SET profile_uuid=?, profile_status='assigned',"
                         " profile_assign_time=?, profile_push_time=NULL WHERE id=?",
                         (profile_uuid, now, row["id"]))
            self._event(conn, server_id, row["id"], "modified", now)

        results = self._per_device(server_id, serials, failing, assign,
                                   refused={s: "THROTTLED" if throttled_allowed else "FAILED" for s in hit})
        any_throttled = "THROTTLED" in results.values()
        return results, throttle["retry_after"] if any_throttled else None

    def remove_profile(self, server_id: int, serials: list[str]) -> dict[str, str]:
        """`DELETE /profile/devices`: profile_status becomes 'removed' (the uuid stays, as observed)."""
        now = int(self.now_ts())
        failing = set(self._fault(server_id, "assign_failed") or [])

        def remove(conn, row):
            conn.execute("UPDATE devices SET profile_status='removed' WHERE id=?", (row["id"],))
            self._event(conn, server_id, row["id"], "modified", now)

        return self._per_device(server_id, serials, failing, remove)

    def _per_device(self, server_id: int, serials: list[str], failing: set[str], action,
                    refused: dict[str, str] | None = None) -> dict[str, str]:
        """Run `action` on each serial this server holds; others get NOT_ACCESSIBLE / FAILED / refused."""
        results: dict[str, str] = {}
        with self.db.transaction() as conn:
            rows = {r["serial"]: r for r in self._rows_by_serial(conn, serials)}
            for serial in serials:
                row = rows.get(serial)
                if row is None or row["server_id"] != server_id or row["removed"]:
                    results[serial] = "NOT_ACCESSIBLE"
                elif serial in failing:
                    results[serial] = "FAILED"
                elif refused and serial in refused:
                    results[serial] = refused[serial]
                else:
                    action(conn, row)
                    results[serial] = "SUCCESS"
        return results

    def device_rows(self, server_id: int, serials: list[str]) -> dict[str, object]:
        """Rows of the serials this server holds (others absent) for `POST /devices`."""
        rows = self._rows_by_serial(self.db.connection(), serials)
        return {r["serial"]: r for r in rows if r["server_id"] == server_id and not r["removed"]}

    # --- fetch / sync queries ---------------------------------------------------------------
    def fetch_rows(self, server_id: int, after: tuple[int, int], limit: int) -> list:
        """Up to limit+1 current devices after position (assigned_at, id), chronologically."""
        return self.db.query(
            "SELECT * FROM devices WHERE server_id = ? AND removed = 0 AND (assigned_at, id) > (?, ?)"
            " ORDER BY assigned_at, id LIMIT ?", (server_id, after[0], after[1], limit + 1))

    def sync_rows(self, server_id: int, after_seq: int, limit: int) -> list:
        """Up to limit+1 events after `after_seq`, each joined with its device."""
        return self.db.query(
            "SELECT e.seq, e.op_type, e.op_date, d.* FROM events e JOIN devices d ON d.id = e.device_id"
            " WHERE e.server_id = ? AND e.seq > ? ORDER BY e.seq LIMIT ?",
            (server_id, after_seq, limit + 1))

    def last_event_seq(self) -> int:
        """The newest event number (fetches snapshot it; sync continues after it)."""
        return self.db.query("SELECT COALESCE(MAX(seq), 0) AS s FROM events")[0]["s"]

    def devices(self, server_name: str, *, limit: int = 100, offset: int = 0,
                include_removed: bool = False) -> list[dict]:
        """A server's device rows as plain dicts (control API / tests)."""
        server = self._server_row(server_name)
        removed = "" if include_removed else " AND removed = 0"
        rows = self.db.query(f"SELECT * FROM devices WHERE server_id = ?{removed}"
                             " ORDER BY assigned_at, id LIMIT ? OFFSET ?", (server["id"], limit, offset))
        return [dict(r) for r in rows]

    def device(self, serial: str) -> dict | None:
        """One device row by serial, whatever server holds it."""
        rows = self.db.query("SELECT * FROM devices WHERE serial = ?", (serial,))
        return dict(rows[0]) if rows else None

    def events(self, server_name: str, *, since: int = 0, limit: int = 1000) -> list[dict]:
        """A server's sync events after `since` (control API / tests)."""
        server = self._server_row(server_name)
        rows = self.db.query(
            "SELECT e.seq, e.op_type, e.op_date, d.serial FROM events e JOIN devices d"
            " ON d.id = e.device_id WHERE e.server_id = ? AND e.seq > ? ORDER BY e.seq LIMIT ?",
            (server["id"], since, limit))
        return [dict(r) for r in rows]

    # --- helpers ----------------------------------------------------------------------------
    def _rows_by_serial(self, conn, serials: list[str], *, require: bool = False) -> list:
        wanted = list(dict.fromkeys(serials))
        rows = [r for chunk in _chunks(wanted) for r in conn.execute(
            f"SELECT * FROM devices WHERE serial IN ({','.join('?' * len(chunk))})", chunk)]
        if require and len(rows) != len(wanted):
            missing = sorted(set(wanted) - {r["serial"] for r in rows})
            raise KeyError(f"unknown serials: {', '.join(missing)}")
        return rows

    @staticmethod
    def _event(conn, server_id: int, device_id: int, op_type: str, when: int) -> None:
        conn.execute("INSERT INTO events (server_id, device_id, op_type, op_date) VALUES (?,?,?,?)",
                     (server_id, device_id, op_type, when))

    def _release(self, conn, row, now: int, *, event: bool = True) -> None:
        conn.execute("UPDATE devices SET removed = 1 WHERE id = ?", (row["id"],))
        if event:
            self._event(conn, row["server_id"], row["id"], "deleted", now)

    def _fault(self, server_id: int, name: str):
        row = self.db.query("SELECT faults FROM servers WHERE id = ?", (server_id,))
        return json.loads(row[0]["faults"]).get(name) if row else None
