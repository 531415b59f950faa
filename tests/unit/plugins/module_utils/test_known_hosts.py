"""known_hosts editing (module_utils/known_hosts.py): lines not managed kept byte for byte."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from ansible_collections.nix_remote.builders.plugins.module_utils.known_hosts import KnownHostsError, edit, parse_key

ED1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"
ED2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBBBBZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM"
RSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7"


def hashed(name: str, salt: bytes = b"0123456789abcdefghij") -> str:
    digest = hmac.new(salt, name.encode(), hashlib.sha1).digest()
    return f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"


OTHERS = (
    "# managed by hand\n"
    "\n"
    "   other.example  ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM  trailing  \r\n"
    "@cert-authority *.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM\n"
    "@revoked b1 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPIQCZc54poJ8vqawd8TraNryQeJnvH1eLpIDgbiqymM\n"
    "*.wild ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n"
    "garbage\n"
)


def test_add_to_empty_and_again_is_a_no_op():
    text, added, removed = edit("", {"b1": [ED1]}, [])
    assert text == f"b1 {ED1}\n" and added == ["b1 ssh-ed25519"] and removed == []
    assert edit(text, {"b1": [ED1]}, []) == (text, [], [])


def test_lines_not_managed_are_kept_byte_for_byte():
    text, _added, _removed = edit(OTHERS, {"b1": [ED1], "[b2]:2222": [ED2]}, ["gone"])
    assert text == OTHERS + f"b1 {ED1}\n[b2]:2222 {ED2}\n"
    # Removing what was added gives the original bytes back.
    assert edit(text, {}, ["b1", "[b2]:2222"])[0] == OTHERS


def test_missing_final_newline_is_completed_before_an_addition():
    assert edit("x " + RSA, {"b1": [ED1]}, [])[0] == f"x {RSA}\nb1 {ED1}\n"


def test_a_replaced_key_of_the_same_type_goes_and_the_new_one_takes_its_place():
    before = f"a {RSA}\nb1 {ED2}\nz {RSA}\nb1 {RSA}\n"
    text, added, removed = edit(before, {"b1": [ED1]}, [])
    # Only the same key type is replaced; the RSA key of b1 is kept.
    assert text == f"a {RSA}\nb1 {ED1}\nz {RSA}\nb1 {RSA}\n"
    assert added == ["b1 ssh-ed25519"] and removed == ["b1 ssh-ed25519"]


def test_multi_name_line_loses_only_the_name():
    before = f"b0,B1,b2 {ED2} comment\n"
    assert edit(before, {"b1": [ED1]}, [])[0] == f"b0,b2 {ED2} comment\nb1 {ED1}\n"
    assert edit(before, {}, ["b1"])[0] == f"b0,b2 {ED2} comment\n"
    # Already pinned through a multi-name line: nothing to do.
    assert edit(f"b0,b1 {ED1}\n", {"b1": [ED1]}, []) == (f"b0,b1 {ED1}\n", [], [])


def test_hashed_lines_of_the_host_are_matched():
    before = f"{hashed('b1')} {ED2}\n{hashed('b9')} {ED2}\n"
    text, _added, removed = edit(before, {}, ["b1"])
    assert text == f"{hashed('b9')} {ED2}\n" and removed == ["b1 ssh-ed25519"]
    assert edit(f"{hashed('b1')} {ED1}\n", {"b1": [ED1]}, [])[1] == []


def test_port_names_are_distinct_hosts():
    before = f"b1 {ED1}\n[b1]:2222 {ED2}\n"
    assert edit(before, {}, ["[b1]:2222"])[0] == f"b1 {ED1}\n"
    assert edit(before, {}, ["b1"])[0] == f"[b1]:2222 {ED2}\n"


def test_key_comment_is_written_but_not_compared():
    text = edit("", {"b1": [ED1 + " root@b1"]}, [])[0]
    assert text == f"b1 {ED1} root@b1\n"
    assert edit(text, {"b1": [ED1]}, [])[1] == []


@pytest.mark.parametrize("name", ["", "a b", "a,b", "#a", "@a", "|1|x", "a\nb"])
def test_bad_names_are_refused(name):
    with pytest.raises(KnownHostsError):
        edit("", {name: [ED1]}, [])


@pytest.mark.parametrize("key", ["AAAAC3Nza", "ssh-ed25519", "ssh-ed25519 not_base64!", ED1 + "\nb2 " + ED1, "b1 " + ED1])
def test_bad_keys_are_refused(key):
    with pytest.raises(KnownHostsError):
        parse_key(key)
