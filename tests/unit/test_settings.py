"""Settings come from the environment, and production settings pass Django's
deployment checks."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from studio_site.env import ImproperlyConfiguredEnv, env_bool, env_int, env_str

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STUDIO_", "DATABASE_URL"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_production_settings_pass_the_deploy_checks(tmp_path):
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING",
        env={
            "STUDIO_DEBUG": "0",
            "STUDIO_HTTPS": "1",
            "STUDIO_SECRET_KEY": secrets.token_urlsafe(64),
            "STUDIO_ALLOWED_HOSTS": "studio.example.org",
            "STUDIO_DATA_DIR": str(tmp_path),
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_plain_http_settings_are_flagged_by_the_deploy_checks(tmp_path):
    result = _manage(
        "check", "--deploy", "--fail-level", "WARNING",
        env={
            "STUDIO_SECRET_KEY": secrets.token_urlsafe(64),
            "STUDIO_DATA_DIR": str(tmp_path),
        },
    )  # fmt: skip
    assert result.returncode != 0
    assert "SECURE_SSL_REDIRECT" in result.stderr + result.stdout


def test_a_secret_key_is_made_once_when_none_is_configured(tmp_path):
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    env = {
        "STUDIO_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "studio_site.settings",
    }
    first = _manage("shell", "-c", code, env=env).stdout.strip().splitlines()[-1]
    second = _manage("shell", "-c", code, env=env).stdout.strip().splitlines()[-1]
    assert len(first) > 50 and first == second
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_a_secret_can_come_from_a_file(tmp_path, monkeypatch):
    secret = tmp_path / "key"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("STUDIO_THING_FILE", str(secret))
    assert env_str("STUDIO_THING") == "from-a-file"


def test_typed_readers_reject_malformed_values(monkeypatch):
    monkeypatch.setenv("STUDIO_FLAG", "maybe")
    monkeypatch.setenv("STUDIO_COUNT", "ten")
    with pytest.raises(ImproperlyConfiguredEnv, match="STUDIO_FLAG"):
        env_bool("STUDIO_FLAG")
    with pytest.raises(ImproperlyConfiguredEnv, match="STUDIO_COUNT"):
        env_int("STUDIO_COUNT", 1)
    monkeypatch.setenv("STUDIO_FLAG", "off")
    assert env_bool("STUDIO_FLAG", True) is False


def test_the_database_url_can_come_from_a_secret_file(tmp_path):
    url_file = tmp_path / "database_url"
    url_file.write_text(f"sqlite:///{tmp_path / 'from-file.sqlite3'}\n")
    code = (
        "from django.conf import settings; print(settings.DATABASES['default']['NAME'])"
    )
    env = {"STUDIO_DATA_DIR": str(tmp_path), "DATABASE_URL_FILE": str(url_file)}
    printed = _manage("shell", "-c", code, env=env).stdout.strip().splitlines()[-1]
    assert printed == str(tmp_path / "from-file.sqlite3")
