"""nix.conf's external-builders value (plugins/filter/external_builders_setting.py): JSON that Nix's
ExternalBuilder reads (systems, program and args all present), on one line that nix.conf's word
splitting leaves as written, and a clear refusal naming the item and field otherwise."""

from __future__ import annotations

import json

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.nix_remote.builders.plugins.filter.external_builders_setting import external_builders_setting

DETERMINATE = {"systems": ["aarch64-linux", "x86_64-linux"], "program": "/usr/local/bin/determinate-nixd", "args": ["builder"]}


def test_determinate_native_linux_builder():
    text = external_builders_setting([DETERMINATE])
    assert text == ('[{"systems":["aarch64-linux","x86_64-linux"],"program":"/usr/local/bin/determinate-nixd",'
                    '"args":["builder"]}]')
    # What nix.conf does to a value: split into words, joined with one space.
    assert " ".join(text.split()) == text
    assert json.loads(text) == [DETERMINATE]


def test_args_default_to_an_empty_list_and_empty_input_is_no_setting():
    assert json.loads(external_builders_setting([{"systems": ["aarch64-linux"], "program": "/x"}]))[0]["args"] == []
    assert external_builders_setting([]) == ""


@pytest.mark.parametrize("item, words", [
    ({"systems": [], "program": "/x"}, "item {n} field systems is [], not a non-empty list"),
    ({"systems": ["aarch64 linux"], "program": "/x"}, "field systems has 'aarch64 linux'"),
    ({"systems": ["aarch64-linux"], "program": "x"}, "field program is 'x', not an absolute path"),
    ({"systems": ["aarch64-linux"], "program": "/x#y"}, "field program is '/x#y': nix.conf cannot hold '#'"),
    ({"systems": ["aarch64-linux"], "program": "/x", "args": ["a  b"]}, "field args item 1 is 'a  b'"),
    ({"systems": ["aarch64-linux"], "program": "/x", "args": "builder"}, "field args is 'builder', not a list"),
    ({"systems": ["aarch64-linux"], "program": "/x", "argv": []}, "unknown keys argv"),
    ("/x", "item {n} is '/x', not a dictionary"),
])
def test_what_nix_would_read_differently_is_refused(item, words):
    with pytest.raises(AnsibleFilterError, match="local_client_external_derivation_builders") as error:
        external_builders_setting([DETERMINATE, item] if isinstance(item, dict) else [item])
    message = str(error.value)
    assert words.format(n=2 if isinstance(item, dict) else 1) in message, message
