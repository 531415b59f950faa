# Copyright: contributors to nix_remote.builders
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet binary cache: what the cache host publishes, and what builders and clients read of it.

The cache is a directory in Nix's binary-cache layout (``nix-cache-info``, ``<hash>.narinfo``,
``nar/``) that a web server serves as static files.  Builders upload over SSH as the cache's upload
user, whose every key is locked to one forced command: ``nix-store --serve --write`` on a
``file://`` store that is that directory, with the cache's secret key as the store's
``secret-key``.  So the cache signs what it receives as it writes the narinfo (Nix's
BinaryCacheStore signs every path it adds when it has a secret key), and the secret key never
leaves the cache host.

The export (``binary_cache_export``) holds only what other hosts need and is public: the URL,
the public key, and the SSH details of the upload user.  Pure functions: no I/O.
"""

from __future__ import annotations

import re

# The cache's own priority: below cache.nixos.org's 40, so Nix asks the LAN cache first.
DEFAULT_PRIORITY = 30
COMPRESSIONS = ("zstd", "xz", "bzip2", "none")
# A Nix key name: what nix-store --generate-binary-cache-key takes (no ':' and no whitespace).
_KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# A public key as Nix prints it: name:base64 of 32 bytes.
_PUBLIC_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*:[A-Za-z0-9+/]{43}=$")


class CacheError(ValueError):
    """A setting of the cache that Nix or sshd would not accept, with the field it concerns."""


def key_name(name):
    """NAME when it can name a Nix signing key, else CacheError."""
    if not isinstance(name, str) or not _KEY_NAME.match(name):
        raise CacheError(f"binary_cache_key_name {name!r}: a key name is letters, digits, '.', '_' and '-' "
                         "(no ':' or whitespace), for example cache.example.org-1")
    return name


def public_key(text, source):
    """The public key in TEXT (a .pub file's content) or CacheError naming SOURCE."""
    key = (text or "").strip()
    if not _PUBLIC_KEY.match(key):
        raise CacheError(f"{source}: not a Nix public key (name:base64 of 32 bytes): {key[:60]!r}")
    return key


def cache_info(priority=DEFAULT_PRIORITY, want_mass_query=True, store_dir="/nix/store"):
    """The nix-cache-info file: the store directory the paths belong to, whether Nix may ask for many
    paths at once, and the priority (lower is asked first)."""
    if not isinstance(priority, int) or isinstance(priority, bool) or priority < 0:
        raise CacheError(f"binary_cache_priority {priority!r}: a whole number, 0 or more")
    return (f"StoreDir: {store_dir}\nWantMassQuery: {1 if want_mass_query else 0}\nPriority: {priority}\n")


def store_url(directory, secret_key_file, compression="zstd"):
    """The file:// store the upload command writes: DIRECTORY, signed with SECRET_KEY_FILE."""
    if compression not in COMPRESSIONS:
        raise CacheError(f"binary_cache_compression {compression!r}: one of {', '.join(COMPRESSIONS)}")
    for value, what in ((directory, "binary_cache_dir"), (secret_key_file, "the secret key's path")):
        if not isinstance(value, str) or not value.startswith("/") or re.search(r"[\s'\"?&=\\]", value):
            raise CacheError(f"{what} {value!r}: an absolute path without whitespace, quotes, '?', '&', '=' or '\\'")
    return f"file://{directory}?secret-key={secret_key_file}&compression={compression}"


def upload_command(nix_store, directory, secret_key_file, compression="zstd"):
    """The forced command of every upload key: the serve protocol, writable, on the cache directory.

    Whatever the builder asks for (nix-copy-closure sends ``nix-store --serve --write``), sshd runs
    this instead.  Single quotes only: the command sits in double quotes in authorized_keys."""
    if not isinstance(nix_store, str) or not nix_store.startswith("/") or re.search(r"[\s'\"\\]", nix_store):
        raise CacheError(f"nix-store path {nix_store!r}: an absolute path without whitespace or quotes")
    return f"{nix_store} --store '{store_url(directory, secret_key_file, compression)}' --serve --write"


def cache_export(*, name, url, public_key_text, ssh_host, ssh_port, user, host_key, priority):
    """What builders and clients read of a cache host (hostvars[cache].binary_cache_export); no secret."""
    if not isinstance(url, str) or not re.match(r"^https?://[^\s/]+(/\S*)?$", url):
        raise CacheError(f"binary_cache_url {url!r}: an http:// or https:// URL without whitespace")
    return {
        "name": name,
        "state": "present",
        "url": url.rstrip("/"),
        "public_key": public_key(public_key_text, f"{name}: the cache's public key"),
        "priority": priority,
        "ssh_host": ssh_host,
        "ssh_port": int(ssh_port),
        "user": user,
        "host_key": host_key,
        # The uploader's known_hosts line: host for port 22, [host]:port otherwise.
        "known_hosts_line": "%s %s" % (ssh_host if int(ssh_port) == 22 else f"[{ssh_host}]:{int(ssh_port)}",
                                       " ".join(str(host_key).split()[:2])),
    }


def fleet_caches(names, hostvars):
    """The exports of the cache hosts NAMES that have one and are present, sorted by name.

    A cache host outside this run (--limit) is found through a cached fact (the export is
    cacheable); one without an export at all is left out, and the caller warns."""
    found = []
    for name in sorted(names or []):
        host = hostvars.get(name, {}) if hasattr(hostvars, "get") else {}
        export = host.get("binary_cache_export") if hasattr(host, "get") else None
        if isinstance(export, dict) and export.get("state", "present") == "present" and export.get("url"):
            found.append(dict(export))
    return found


def unknown_caches(names, hostvars):
    """The cache hosts NAMES (present ones) without an export in this run: outside a --limit with no
    fact cache, or their play failed.  What they publish is unknown, so a host keeps the cache
    settings it has rather than losing them."""
    unknown = []
    for name in sorted(names or []):
        host = hostvars.get(name, {}) if hasattr(hostvars, "get") else {}
        host = host if hasattr(host, "get") else {}
        if host.get("nix_remote_state", "present") == "present" and not isinstance(host.get("binary_cache_export"), dict):
            unknown.append(name)
    return unknown


def substituter_items(caches):
    """nix_conf list_items for the caches: their URLs and public keys added to what is there."""
    return {
        "extra-substituters": {"present": [c["url"] for c in caches]},
        "extra-trusted-public-keys": {"present": [c["public_key"] for c in caches]},
    }
