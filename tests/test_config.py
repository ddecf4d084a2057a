"""The settings and their reference: docs/configuration.md is what ``q2c settings --markdown``
prints (regenerate it when a setting changes), and ``q2c settings`` never prints a secret."""
from pathlib import Path

from streams.config import SECTIONS, Settings, reference
from tests.commands import q2c

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_is_described_under_one_heading():
    listed = [name for names in SECTIONS.values() for name in names]
    assert sorted(listed) == sorted(Settings.model_fields) and len(listed) == len(set(listed))
    assert all(field.description for field in Settings.model_fields.values())


def test_the_configuration_reference_is_up_to_date():
    assert (ROOT / "docs" / "configuration.md").read_text() == reference(), (
        "docs/configuration.md is out of date: q2c settings --markdown > docs/configuration.md")


def test_settings_in_effect_are_shown_without_their_secrets():
    done = q2c("settings", Q2C_SYNC_PASSWORD="sekrit-1", Q2C_ERP_DSN="postgresql://q2c_sync:sekrit-2@erp:5432/erp",
               Q2C_BATCH_SIZE="777")
    assert done.returncode == 0, done.stderr
    assert "sekrit" not in done.stdout
    assert "postgresql://q2c_sync:********@erp:5432/erp" in done.stdout
    assert next(line for line in done.stdout.splitlines() if line.startswith("Q2C_BATCH_SIZE ")).split()[1:] == ["777", "5000"]
