"""Bad role variables: each role refuses role_cases.yml in its argument validation, before any task.

All cases run in one ansible-playbook run (about as long as one case): every case is an inventory
host, connected locally, that includes its role with the case's variables. Besides the cases, one
control host per role has valid variables and `nix_remote_state: bogus`, which the argument spec
does not cover; it must pass validation and fail in the role's first check, which shows that the
cases fail in validation and that the first task is where a run that got past it would stop.
The run uses --check, so nothing that got past validation could change this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from plan_run import playbook_env

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = os.path.dirname(sys.executable)
# Both roles check nix_remote_state (not in their argument specs) in their first check, after nix_info.
FIRST_CHECK = "Require a multi-user Nix on a supported platform"


def load_cases() -> list:
    with open(os.path.join(HERE, "role_cases.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["cases"]


CASES = load_cases()
ROLES = sorted({case["role"] for case in CASES})


def control_host(role: str) -> str:
    return f"control-{role.replace('_', '-')}"


def write_inventory(path: str) -> None:
    hosts = {case["id"]: dict(case["vars"], corpus_role=case["role"]) for case in CASES}
    for role in ROLES:
        hosts[control_host(role)] = {"corpus_role": role, "nix_remote_state": "bogus"}
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}, "hosts": hosts}}
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(inventory, handle)


def write_playbook(path: str) -> None:
    # One play for every host: ansible-playbook ends the run when every host of a play has failed.
    play = {
        "name": "Include each host's role with its variables",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [{"name": "Include the role", "ansible.builtin.include_role": {"name": "nix_remote.builders.{{ corpus_role }}"}}],
    }
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump([play], handle, sort_keys=False)


@pytest.fixture(scope="module")
def host_results(tmp_path_factory) -> dict:
    """Run the playbook once; return host -> list of (task name, result) in the order they ran."""
    work = tmp_path_factory.mktemp("role-cases")
    write_inventory(str(work / "inventory.yml"))
    write_playbook(str(work / "playbook.yml"))
    (work / "ansible.cfg").write_text("[defaults]\n")
    environ = playbook_env(work, ANSIBLE_FORKS="20")
    run = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", "inventory.yml", "--check", "playbook.yml"],
        cwd=work, env=environ, capture_output=True, text=True, timeout=300, check=False,
    )
    assert run.returncode == 2, f"rc {run.returncode}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    report = json.loads(run.stdout)
    results = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("action") == "ansible.builtin.include_role":
                    continue  # the include itself, not a task of the role
                results.setdefault(host, []).append((task["task"]["name"], result))
    return results


@pytest.mark.parametrize("case", CASES, ids=[case["id"] for case in CASES])
def test_bad_role_variable_fails_in_argument_validation(case, host_results):
    ran = host_results[case["id"]]
    # The role's first task never ran: the host stopped at the validation of its arguments.
    assert len(ran) == 1, [name for name, _result in ran]
    name, result = ran[0]
    assert "Validating arguments against arg spec" in name and result.get("failed"), (name, result)
    message = result["msg"] + " " + " ".join(result.get("argument_errors", []))
    for expected in case["expect"]:
        assert expected in message, f"{expected!r} not in {message!r}"


@pytest.mark.parametrize("role", ROLES)
def test_valid_variables_pass_validation_and_reach_the_first_task(role, host_results):
    ran = host_results[control_host(role)]
    names = [name for name, _result in ran]
    assert "Validating arguments against arg spec" in names[0] and not ran[0][1].get("failed"), ran[0]
    failed = [(name, result) for name, result in ran if result.get("failed")]
    assert len(failed) == 1 and failed[0] == ran[-1], names
    name, result = failed[0]
    assert " : " + FIRST_CHECK in name, names
    assert "nix_remote_state is 'bogus'; it must be 'present' or 'absent'" in result["msg"], result["msg"]
    # Only reading steps ran before it.
    assert all(not r.get("changed") for _n, r in ran), names


def test_table_is_well_formed():
    ids = [case["id"] for case in CASES]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for case in CASES:
        assert case["expect"] and case["expect"][0] in json.dumps(case["vars"]), f"{case['id']}: the first expectation names the variable"
