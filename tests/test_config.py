"""Configuration: embedded defaults, generated secrets, environment values, key rotation."""
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from portal import vault
from portal.config import database_url, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_the_app_starts_with_no_environment_and_writes_owner_only_secrets(tmp_path):
    project = tmp_path / "project"
    for name in ("portal", "jobs", "templates", "static", "migrations"):
        shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "wsgi.py", project / "wsgi.py")
    script = ("from wsgi import app\n"
              "c = app.test_client()\n"
              "print(c.get('/login').status_code, app.config['SQLALCHEMY_DATABASE_URI'], app.config['APPLE_DEP_URL'])\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=project, env={}, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    status, db_url, apple = result.stdout.split()
    assert status == "200"
    assert db_url == f"sqlite:///{project / 'instance' / 'portal.db'}"
    assert apple == "https://mdmenrollment.apple.com"
    for name in ("secret_key", "encryption_keys"):
        path = project / "instance" / name
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert len(path.read_text().strip()) >= 40


def test_generated_secrets_are_stable_across_starts(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("ENCRYPTION_KEYS", raising=False)
    first, second = load_config(str(tmp_path)), load_config(str(tmp_path))
    assert first["SECRET_KEY"] == second["SECRET_KEY"]
    assert first["ENCRYPTION_KEYS"] == second["ENCRYPTION_KEYS"]


def test_environment_values_win(tmp_path, monkeypatch):
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("SECRET_KEY", "from-env")
    monkeypatch.setenv("ENCRYPTION_KEYS", f"{key}, {Fernet.generate_key().decode()}")
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("APPLE_DEP_URL", "http://127.0.0.1:5050/")
    config = load_config(str(tmp_path))
    assert config["SECRET_KEY"] == "from-env"
    assert config["ENCRYPTION_KEYS"][0] == key and len(config["ENCRYPTION_KEYS"]) == 2
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert config["REDIS_URL"] == "redis://127.0.0.1:6379/3"
    assert config["APPLE_DEP_URL"] == "http://127.0.0.1:5050"
    assert not (tmp_path / "secret_key").exists()


def test_the_user_agent_sent_to_apple_can_be_replaced(tmp_path, monkeypatch):
    # Apple refuses some User-Agents (USER_AGENT_INVALID, reference §2.4): changing it needs no release.
    monkeypatch.delenv("APPLE_USER_AGENT", raising=False)
    assert load_config(str(tmp_path))["APPLE_USER_AGENT"] is None  # the client's ade-portal/<version>
    monkeypatch.setenv("APPLE_USER_AGENT", "  acme-mdm/2.1 ")
    assert load_config(str(tmp_path))["APPLE_USER_AGENT"] == "acme-mdm/2.1"


def test_database_url_forms(tmp_path):
    assert database_url(None, tmp_path) == f"sqlite:///{tmp_path / 'portal.db'}"
    assert database_url("postgres://u@h/db", tmp_path) == "postgresql+psycopg://u@h/db"
    assert database_url("sqlite:////x.db", tmp_path) == "sqlite:////x.db"


def test_vault_encrypts_with_the_first_key_and_reads_with_any():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    secret = vault.encrypt(b"AS_secret", [old])
    assert b"AS_secret" not in secret
    assert vault.decrypt(secret, [new, old]) == b"AS_secret"
    rotated = vault.rotate(secret, [new, old])
    assert vault.decrypt(rotated, [new]) == b"AS_secret"
    with pytest.raises(vault.VaultError):
        vault.decrypt(secret, [new])


def test_htmx_from_cdn_is_a_yes_or_no(tmp_path, monkeypatch):
    monkeypatch.delenv("HTMX_FROM_CDN", raising=False)
    assert load_config(str(tmp_path))["HTMX_FROM_CDN"] is True
    for value, expected in (("0", False), (" No ", False), ("off", False), ("yes", True), ("TRUE", True)):
        monkeypatch.setenv("HTMX_FROM_CDN", value)
        assert load_config(str(tmp_path))["HTMX_FROM_CDN"] is expected, value
    monkeypatch.setenv("HTMX_FROM_CDN", "maybe")
    with pytest.raises(RuntimeError, match="HTMX_FROM_CDN must be 1 or 0"):
        load_config(str(tmp_path))
