from pathlib import Path

import pytest

from spoonprint.config import load_settings
from spoonprint.errors import ConfigError
from spoonprint.transports.uri import tcp_address


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spoonprint.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.server.port == 8080 and settings.printers == []
    assert settings.server.data_dir == tmp_path / "spoonprint-data"


def test_file_and_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(
        tmp_path,
        '[server]\nport = 9000\ndata_dir = "data"\n'
        '[[printers]]\nname = "kitchen"\nuri = "tcp://192.0.2.5"\n',
    )
    monkeypatch.setenv("SPOONPRINT_SERVER__PORT", "9001")
    monkeypatch.setenv("SPOONPRINT_DELIVERY__CONNECT_TIMEOUT", "0.5")
    settings = load_settings(path)
    assert settings.server.port == 9001
    assert settings.delivery.connect_timeout == 0.5
    assert settings.server.data_dir == tmp_path / "data"  # relative to the config file
    assert tcp_address(settings.printers[0].uri) == ("192.0.2.5", 9100)


def test_printers_from_environment_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOONPRINT_PRINTERS", '[{"name": "bar", "uri": "tcp://127.0.0.1:9200"}]')
    settings = load_settings(tmp_path / "none.toml")
    assert [p.name for p in settings.printers] == ["bar"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\nport = 70000\n", "server.port"),
        ("[server]\nprot = 80\n", "server.prot"),
        ('[[printers]]\nname = "k"\nuri = "http://x"\n', "printers[0].uri"),
        (
            '[[printers]]\nname = "k"\nuri = "tcp://x"\ntext_encoding = "klingon"\n',
            "printers[0].text_encoding",
        ),
        (
            '[[printers]]\nname = "k"\nuri = "tcp://x"\n[[printers]]\nname = "k"\nuri = "tcp://y"\n',
            "printers",
        ),
        ("[delivery]\nwrite_timeout = -1\n", "delivery.write_timeout"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert f"  {key}:" in str(caught.value)


def test_toml_syntax_error_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="spoonprint.toml"):
        load_settings(write(tmp_path, "[server\nport = 1"))


def test_short_env_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOONPRINT_API_KEY", "short")
    with pytest.raises(ConfigError, match="api_key"):
        load_settings(tmp_path / "none.toml")
