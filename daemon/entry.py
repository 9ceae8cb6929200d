"""The `assetd` console script's entry point: nothing but a deferred import of the CLI.

The scanner's hash workers in the daemon are started with `spawn` (hashpool.py), and a spawned
process first imports the parent's main script, which for a console script is
`from daemon.entry import main`. Were that `daemon.cli`, every worker would load the whole CLI
(peewee, psycopg2, structlog, the config, the store): 21 MB of PSS each, against 7.5 MB for
the hashing module alone. With this module they import only what unpickling their job needs.
"""

from __future__ import annotations


def main() -> int:
    from daemon.cli import program

    return program()
