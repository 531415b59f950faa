"""Each role README's variable tables agree with its meta/argument_specs.yml (issue 12 step 5).

Every option of the role's entry points is listed in a `| Variable | Default | Meaning |` table
with the default the spec gives it (`undefined` when it has none), nothing is listed that is not
an option, and the spec's defaults are those of defaults/main.yml (which Ansible applies; the
spec's are documentation). No Ansible run: this reads files only.
"""

from __future__ import annotations

import os
import re

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLES = ("remote_builder", "local_client", "binary_cache")
UNDEFINED = object()
_HEADER = re.compile(r"^\|\s*Variable\s*\|\s*Default\s*\|")
_NAME = re.compile(r"`([a-z][a-z0-9_]*)`")


def _cells(line):
    # A pipe inside a cell is written \| (GitHub's tables), as in a Jinja default's filter.
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _value(text):
    """A Default cell's value: `undefined`, or YAML in backticks, with an optional `(note)` after it."""
    text = re.sub(r"\s*\([^)]*\)$", "", text.strip())
    if text == "undefined":
        return UNDEFINED
    if not (text.startswith("`") and text.endswith("`")):
        raise ValueError("default %r is not `value` or undefined" % text)
    return yaml.safe_load(text[1:-1])


def readme_rows(role):
    """{variable: default cell value} from every variable table of the role's README."""
    rows = {}
    in_table = False
    with open(os.path.join(REPO, "roles", role, "README.md"), encoding="utf-8") as handle:
        for line in handle:
            if _HEADER.match(line):
                in_table = True
                continue
            if not in_table or not line.startswith("|"):
                in_table = False
                continue
            cells = _cells(line)
            if set(cells[0]) <= set("-: "):
                continue
            names = _NAME.findall(cells[0])
            defaults = [part.strip() for part in cells[1].split(" / ")]
            if len(defaults) == 1:
                defaults = defaults * len(names)
            assert names and len(defaults) == len(names), "roles/%s/README.md: cannot read the row %r" % (role, line)
            for name, default in zip(names, defaults):
                assert name not in rows, "roles/%s/README.md lists %s twice" % (role, name)
                rows[name] = _value(default)
    return rows


def spec_options(role):
    """{option: spec default or UNDEFINED} over all entry points (they must agree)."""
    with open(os.path.join(REPO, "roles", role, "meta", "argument_specs.yml"), encoding="utf-8") as handle:
        specs = yaml.safe_load(handle)["argument_specs"]
    options = {}
    for entry_point, spec in specs.items():
        for name, option in (spec.get("options") or {}).items():
            default = option.get("default", UNDEFINED)
            assert options.get(name, default) == default, \
                "roles/%s: %s has different defaults in entry point %s" % (role, name, entry_point)
            options[name] = default
    return options


def role_defaults(role):
    with open(os.path.join(REPO, "roles", role, "defaults", "main.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


@pytest.mark.parametrize("role", ROLES)
def test_every_option_is_in_the_readme_with_its_default(role):
    rows, options = readme_rows(role), spec_options(role)
    missing = sorted(set(options) - set(rows))
    assert not missing, "roles/%s/README.md does not list the options %s" % (role, ", ".join(missing))
    extra = sorted(set(rows) - set(options))
    assert not extra, "roles/%s/README.md lists %s, which meta/argument_specs.yml has not" % (role, ", ".join(extra))
    wrong = {name: (rows[name], options[name]) for name in options if rows[name] != options[name]}
    assert not wrong, "roles/%s/README.md: defaults (README, spec) differ: %r" % (role, wrong)


@pytest.mark.parametrize("role", ROLES)
def test_the_specs_defaults_are_the_roles_defaults(role):
    options, defaults = spec_options(role), role_defaults(role)
    assert sorted(set(defaults) - set(options)) == [], "roles/%s/defaults/main.yml has variables no spec documents" % role
    # A templated default (root's home differs on macOS) is documented by its Linux value.
    wrong = {name: (options[name], defaults.get(name, UNDEFINED)) for name in options
             if options[name] != defaults.get(name, UNDEFINED) and "{{" not in str(defaults.get(name, ""))}
    assert not wrong, "roles/%s: defaults (argument_specs, defaults/main.yml) differ: %r" % (role, wrong)


def test_a_default_cell_is_read_as_yaml():
    assert _value("`null`") is None and _value("undefined") is UNDEFINED
    assert _value("`[]`") == [] and _value("`90%`") == "90%" and _value("`1073741824` (1 GiB)") == 1073741824
    with pytest.raises(ValueError):
        _value("1 GiB")
