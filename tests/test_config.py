from __future__ import annotations

from pathlib import Path

import pytest

from petcut.config import Settings, SettingsError, env_names, load_settings


def test_defaults() -> None:
    settings = load_settings()
    assert settings.mode == "base"
    assert settings.resize == "static"
    assert settings.max_upload_bytes == 50 * 1024 * 1024
    assert settings.max_pixels == 24_000_000
    assert settings.port == 8080


def test_legacy_names_from_the_old_deploy_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INSPIRENET_MODE", "fast")
    monkeypatch.setenv("INSPIRENET_RESIZE", "Dynamic")
    monkeypatch.setenv("TARGET_SIZE", "512")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    monkeypatch.setenv("SKIP_MODEL_PRELOAD", "true")
    monkeypatch.setenv("MIN_INSTANCES", "1")
    monkeypatch.setenv("ENABLE_STARTUP_LOGGING", "1")
    monkeypatch.setenv("PORT", "9000")
    settings = load_settings()
    assert (settings.mode, settings.resize, settings.target_size) == ("fast", "dynamic", 512)
    assert settings.log_level == "DEBUG"
    assert settings.skip_model_preload and settings.enable_startup_logging
    assert (settings.min_instances, settings.port) == (1, 9000)


def test_prefixed_name_wins_over_legacy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PETCUT_MODE", "fast")
    assert load_settings().mode == "fast"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("INSPIRENET_MODE", "turbo"),
        ("PETCUT_RESIZE", "stretch"),
        ("TARGET_SIZE", "100"),
        ("PETCUT_MAX_UPLOAD_MB", "-1"),
        ("PETCUT_DEVICE", "tpu"),
        ("PORT", "http"),
        ("PETCUT_CORS_ORIGIN_REGEX", "(unclosed"),
        # the image store's settings (docs/storage.md)
        ("PETCUT_STORAGE_URL", "s3://bucket"),
        ("PETCUT_STORAGE_URL", "file://relative"),
        ("PETCUT_PUBLIC_BASE_URL", "img.example"),
        ("PETCUT_STORAGE_TIMEOUT_S", "0"),
    ],
)
def test_invalid_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert name in str(info.value)


def test_cors_origins_comma_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PETCUT_CORS_ORIGINS", "https://shop.example, https://www.shop.example/ ,")
    assert load_settings().cors_origins == ["https://shop.example", "https://www.shop.example"]


def test_fp16_on_cpu_is_refused() -> None:
    with pytest.raises(SettingsError, match="PETCUT_PRECISION"):
        load_settings(device="cpu", precision="fp16")


def test_overrides_and_paths(tmp_path: Path) -> None:
    settings = Settings(checkpoint=tmp_path / "x.pth", weights_dir=tmp_path)
    assert settings.checkpoint == tmp_path / "x.pth"
    assert env_names("mode") == ["PETCUT_MODE", "INSPIRENET_MODE"]


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [env_names(name)[0] for name in Settings.model_fields if f"`{env_names(name)[0]}`" not in readme]
    assert not missing, f"README's configuration table lacks {missing}"
