"""config/assetd.toml, the config for a server install, validates and lists every key."""

from __future__ import annotations

import re

from daemon.config import load_config
from tests.conftest import REPO_ROOT
from tests.test_reference import loader_keys

SHIPPED = REPO_ROOT / "config" / "assetd.toml"


def test_the_server_config_loads_with_the_real_loader():
    config = load_config(str(SHIPPED))
    assert config.daemon.database == "sqlite:////var/lib/assetd/index.db"
    assert config.daemon.log_file == ""
    assert [lib.path for lib in config.libraries] == ["/srv/photos"]
    assert {e.name for e in config.enrichers} == {"mime", "image", "phash", "audio", "video"}


def test_every_key_the_loader_knows_is_in_the_server_config_with_a_comment():
    text = SHIPPED.read_text()
    for table in ("daemon", "library", "enricher"):
        for key in loader_keys(table):
            assert re.search(rf"^(# )?{key} = ", text, re.MULTILINE), f"{table}.{key}"
    # every setting is explained: a comment on its line or on the lines just above it
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line) and "#" not in line:
            assert lines[i - 1].startswith("#") or line.startswith(("name =", "match =")), line


def test_the_example_config_still_loads():
    config = load_config(str(REPO_ROOT / "config" / "assetd.example.toml"))
    assert config.libraries[0].name == "example"
