from __future__ import annotations

from pathlib import Path

import pytest

from tokenwarden.settings import ConfigError, load_settings


def test_defaults_are_the_embedded_service() -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///./tokenwarden.db"
    assert s.max_batch_events == 10_000
    assert s.max_batch_bytes == 10 * 1024 * 1024


def test_toml_file_then_environment_then_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "tw.toml"
    cfg.write_text(
        'database_url = "sqlite:///from-file.db"\nport = 9000\n'
        "[detectors.refresh_reuse]\ngrace_seconds = 3\n"
    )
    s = load_settings(cfg)
    assert s.database_url == "sqlite:///from-file.db"
    assert s.detectors == {"refresh_reuse": {"grace_seconds": 3}}
    monkeypatch.setenv("TOKENWARDEN_PORT", "9100")
    assert load_settings(cfg).port == 9100
    assert load_settings(cfg, port=9200).port == 9200


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("prot = 1")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(unknown)
