"""Config: lookup order, durations, validation errors that name file and key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from daemon.config import (
    ConfigError,
    find_config_path,
    load_config,
    parse_duration,
    parse_rate,
)
from tests.conftest import REPO_ROOT, cli_env


def write(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


BASE = '[daemon]\ndatabase = "sqlite:////tmp/x.db"\n'


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(5, 5.0), (0.5, 0.5), ("250ms", 0.25), ("30s", 30), ("10m", 600), ("6h", 21600),
     ("30d", 2592000), ("1.5h", 5400), ("45", 45)],
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["10 parsecs", "", "-5s", True, -1, [1]])
def test_bad_durations(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "bytes_per_s"),
    [("50MB/s", 50e6), ("500KB/s", 500e3), ("500kB/s", 500e3), ("1GB/s", 1e9),
     ("50MiB/s", 50 * 1024 ** 2), ("1.5 GiB/s", 1.5 * 1024 ** 3), ("100B/s", 100),
     ("2TB/s", 2e12), (1_000_000, 1e6), (2.5e6, 2.5e6)],
)
def test_rates(value, bytes_per_s):
    assert parse_rate(value) == bytes_per_s


@pytest.mark.parametrize("value", ["50mb/s", "50Mb/s", "50MB", "fast", "", "0MB/s", 0, -5,
                                   True, [1], "-1MB/s", "50 MB/h"])
def test_bad_rates(value):
    with pytest.raises(ValueError):
        parse_rate(value)


def test_verify_keys(tmp_path):
    daemon = load_config(str(write(tmp_path, BASE))).daemon
    assert (daemon.verify_interval_s, daemon.verify_rate) == (30 * 86400, 50e6)
    daemon = load_config(str(write(tmp_path, BASE + 'verify_interval = "90d"\n'
                                   'verify_rate = "10MiB/s"\n'))).daemon
    assert (daemon.verify_interval_s, daemon.verify_rate) == (90 * 86400, 10 * 1024 ** 2)
    assert load_config(str(write(tmp_path, BASE + 'verify_interval = ""\n'))).daemon \
        .verify_interval_s is None


def test_full_example_parses(tmp_path):
    config = load_config(str(REPO_ROOT / "config" / "assetd.example.toml"))
    assert config.daemon.tick_interval_s == 60 and config.daemon.settle_s == 0.2
    assert config.daemon.full_rescan_interval_s == 6 * 3600
    assert config.libraries[0].name == "example"
    assert config.daemon.database == "sqlite:///" + str(REPO_ROOT / ".assetd-example/index.db")


def test_defaults_and_relative_paths(tmp_path):
    path = write(tmp_path, '[[library]]\nname = "a"\npath = "lib"\n')
    config = load_config(str(path))
    lib = config.libraries[0]
    assert lib.path == str(tmp_path / "lib")
    assert lib.watch == "auto"
    assert not lib.marker and not lib.require_mount and not lib.follow_symlinks
    assert config.daemon.host  # this machine's hostname
    assert config.daemon.database.startswith("sqlite:///")
    assert {e.name for e in config.enrichers} == {"mime", "image", "phash", "audio", "video"}


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        (BASE + "tick_intervall = 5\n", "daemon.tick_intervall", "unknown key"),
        ("[deamon]\n", "deamon", "unknown key"),
        (BASE + 'hash_budget = "soon"\n', "daemon.hash_budget", "not a duration"),
        (BASE + 'mass_missing_threshold = "half"\n', "daemon.mass_missing_threshold",
         "expected"),
        (BASE + "mass_missing_threshold = 2\n", "daemon.mass_missing_threshold", "fraction"),
        (BASE + 'log_format = "xml"\n', "daemon.log_format", "must be one of"),
        ('[daemon]\ndatabase = "mysql://x"\n', "daemon.database", "postgresql"),
        (BASE + '[[library]]\nname = "a"\n', "library[0].path", "missing required key"),
        (BASE + '[[library]]\npath = "/a"\n', "library[0].name", "missing required key"),
        (BASE + '[[library]]\nname = "Bad Name"\npath = "/a"\n', "library[0].name",
         "[a-z0-9_-]+"),
        (BASE + '[[library]]\nname = "a"\npath = "/a"\nwatch = "yes"\n', "library[0].watch",
         'expected "auto", true or false, got string'),
        (BASE + '[[library]]\nname = "a"\npath = "/a"\nexclude = "*.tmp"\n',
         "library[0].exclude", "expected array"),
        (BASE + '[[library]]\nname = "a"\npath = "/a"\nexclude = [1]\n',
         "library[0].exclude[0]", "expected string"),
        (BASE + '[[library]]\nname = "a"\npath = "/a"\nbogus = 1\n', "library[0].bogus",
         "unknown key"),
        (BASE + '[[library]]\nname = "a"\npath = "/a"\n[[library]]\nname = "a"\npath = "/b"\n',
         "library[1].name", "duplicate library name"),
        (BASE + '[[library]]\nname = "a"\npath = "/srv/x"\n[[library]]\nname = "b"\n'
         'path = "/srv/x/y"\n', "library[1].path", "nests with library[0]"),
        (BASE + '[[enricher]]\nname = "ffprobe"\nmatch = ["*.mp4"]\n', "enricher[0].command",
         "missing required key"),
        (BASE + '[[enricher]]\nname = "x"\ncommand = ["x"]\n', "enricher[0].match",
         "missing required key"),
        (BASE + 'listen = "9469"\n', "daemon.listen", '"HOST:PORT"'),
        (BASE + 'listen = "localhost:http"\n', "daemon.listen", '"HOST:PORT"'),
        (BASE + 'listen = "unix:"\n', "daemon.listen", "unix:/path"),
        (BASE + "listen = 9469\n", "daemon.listen", "expected string"),
        (BASE + "change_retention = 0\n", "daemon.change_retention", "must be positive"),
        (BASE + 'change_retention = "forever"\n', "daemon.change_retention",
         "not a duration"),
        (BASE + 'verify_interval = "monthly"\n', "daemon.verify_interval", "not a duration"),
        (BASE + "verify_interval = 0\n", "daemon.verify_interval", '""'),
        (BASE + 'verify_rate = "50mb/s"\n', "daemon.verify_rate", "50MiB/s"),
        (BASE + 'verify_rate = ""\n', "daemon.verify_rate", "not a rate"),
        (BASE + "verify_rate = 0\n", "daemon.verify_rate", "must be positive"),
        (BASE + "verify_rate = true\n", "daemon.verify_rate", "boolean"),
    ],
)
def test_errors_name_file_and_key(tmp_path, text, key, problem):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.key == key
    assert problem in str(info.value)
    assert str(info.value).startswith(f"{path}: {key}: ")


def test_listen_forms(tmp_path):
    for value, parsed in [("", ""), ("127.0.0.1:9469", "127.0.0.1:9469"),
                          ("[::1]:9469", "[::1]:9469"),
                          ("unix:run/assetd.sock", f"unix:{tmp_path}/run/assetd.sock")]:
        path = write(tmp_path, BASE + f'listen = "{value}"\n')
        assert load_config(str(path)).daemon.listen == parsed


def test_change_retention_forms(tmp_path):
    for line, parsed in [("", 30 * 86400.0), ('change_retention = "90d"\n', 90 * 86400.0),
                         ('change_retention = ""\n', None), ("change_retention = 60\n", 60.0)]:
        path = write(tmp_path, BASE + line)
        assert load_config(str(path)).daemon.change_retention_s == parsed


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "[daemon\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(str(path))


def run_cli(*args, env_extra=None):
    env = cli_env()
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "daemon", *args], capture_output=True,
                          text=True, env=env, cwd=REPO_ROOT, timeout=60)


def test_cli_config_error_is_one_line_exit_2(tmp_path):
    path = write(tmp_path, BASE + '[[library]]\nname = "a"\npath = "/a"\nwatch = 3\n')
    proc = run_cli("--config", str(path), "config", "check")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f'assetd: {path}: library[0].watch: expected "auto", true or false, got integer 3'
    )


def test_cli_missing_config_file(tmp_path):
    proc = run_cli("--config", str(tmp_path / "nope.toml"), "status")
    assert proc.returncode == 2 and "config file not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_lookup_order(tmp_path, monkeypatch):
    xdg = tmp_path / "xdg"
    (xdg / "assetd").mkdir(parents=True)
    (xdg / "assetd" / "config.toml").write_text(BASE)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(xdg))
    monkeypatch.delenv("ASSETD_CONFIG", raising=False)
    assert find_config_path(None) == str(xdg / "assetd" / "config.toml")
    monkeypatch.setenv("ASSETD_CONFIG", "/from/env.toml")
    assert find_config_path(None) == "/from/env.toml"
    assert find_config_path("/explicit.toml") == "/explicit.toml"


def test_cli_uses_assetd_config_env(tmp_path):
    path = write(tmp_path, BASE.replace("/tmp/x.db", str(tmp_path / "i.db")))
    proc = run_cli("config", "check", env_extra={"ASSETD_CONFIG": str(path)})
    assert proc.returncode == 0 and f"config: {path}: ok" in proc.stdout


def test_config_check_prints_what_it_would_do(tmp_path):
    lib = tmp_path / "photos"
    lib.mkdir()
    path = write(tmp_path, BASE + f'[[library]]\nname = "photos"\npath = "{lib}"\n'
                 'watch = false\n[[library]]\nname = "usb"\npath = "/nonexistent/usb"\n')
    proc = run_cli("--config", str(path), "config", "check")
    assert proc.returncode == 0, proc.stderr
    assert f"library photos: {lib}: online; watch polling (watch = false)" in proc.stdout
    assert "library usb: /nonexistent/usb: OFFLINE" in proc.stdout
    assert "; watch inotify (auto: /nonexistent/usb is on " in proc.stdout
    assert "fs.inotify.max_user_watches = " in proc.stdout


def test_db_flag_overrides_config(tmp_path):
    path = write(tmp_path, BASE)
    other = ("--config", str(path), "--db", f"sqlite:///{tmp_path}/other.db")
    assert run_cli(*other, "scan").returncode == 0
    assert (tmp_path / "other.db").exists()
    proc = run_cli(*other, "status", "--json")
    assert proc.returncode == 0, proc.stderr


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("assetd ")
    for command in (["scan"], ["status"], ["files"], ["run"], ["config", "check"]):
        proc = run_cli(*command, "--help")
        assert proc.returncode == 0 and "usage: assetd" in proc.stdout
