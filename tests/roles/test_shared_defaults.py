"""Values two roles must agree on, each kept in its own role's files."""

from __future__ import annotations

import os

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(*parts):
    with open(os.path.join(REPO, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_the_client_reads_the_export_file_where_the_builder_writes_it_by_default():
    written = _load("roles", "remote_builder", "defaults", "main.yml")["remote_builder_export_file"]
    read = _load("roles", "local_client", "vars", "main.yml")["__local_client_builder_export_file"]
    assert written == read == "/etc/ansible/facts.d/nix_remote_builders.fact"
