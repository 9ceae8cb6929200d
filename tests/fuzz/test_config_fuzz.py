"""Property tests: whatever a config file holds, the loader answers with a Config or one line.

Hostile input must never reach the user as a traceback: every failure is a ConfigError whose
text is one line naming the file (and the key where there is one).
"""

from __future__ import annotations

import tomllib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.config import Config, ConfigError, load_config, parse_config

KEYS = {
    "daemon": ["database", "host", "tick_interval", "full_rescan_interval", "hash_budget",
               "settle", "mass_missing_threshold", "log_format", "log_level", "log_file",
               "listen", "nope"],
    "library": ["name", "path", "exclude", "watch", "marker", "require_mount",
                "follow_symlinks", "nope"],
    "enricher": ["name", "match", "command", "timeout", "enabled", "nope"],
}
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
    st.sampled_from(["auto", "30s", "250ms", "6h", "-1s", "1e400s", "sqlite:///x.db",
                     "postgresql://u:p@h:1/d", "../..", "/", "", "\x00", "a/b", "[a-z]**"]),
)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=8)


def tables(section: str):
    return st.dictionaries(st.sampled_from(KEYS[section]), VALUES, max_size=6)


RAW_CONFIGS = st.fixed_dictionaries({}, optional={
    "daemon": st.one_of(tables("daemon"), VALUES),
    "library": st.one_of(st.lists(tables("library"), max_size=3), VALUES),
    "enricher": st.one_of(st.lists(tables("enricher"), max_size=2), VALUES),
    "extra": VALUES,
})


def assert_one_line(error: ConfigError, source: str) -> None:
    text = str(error)
    assert text.startswith(source + ": ")
    assert len(text.splitlines()) == 1, text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=RAW_CONFIGS)
def test_any_config_is_a_config_or_one_line(raw):
    source = "/etc/assetd/config.toml"
    try:
        config = parse_config(raw, source)
    except ConfigError as exc:
        assert_one_line(exc, source)
    else:
        assert isinstance(config, Config)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_file_bytes_are_a_config_or_one_line(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cfg") / "config.toml"
    path.write_bytes(data)
    try:
        load_config(str(path))
    except ConfigError as exc:
        assert_one_line(exc, str(path))


def test_the_strategies_reach_valid_configs_too():
    """Guard against a generator that only ever produces errors (the property then proves
    little): a plain valid config parses."""
    raw = tomllib.loads('[daemon]\ndatabase = "sqlite:///x.db"\n[[library]]\nname = "a"\n'
                        'path = "/srv/a"\n')
    assert parse_config(raw, "/c.toml").libraries[0].name == "a"
