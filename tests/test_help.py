"""Help that teaches: an example in every command's --help, shell completion, denied actions named."""

import pytest
from conftest import BUCKET, CLUSTER, run_cli

COMMANDS = ["post-render", "ensure-role", "values", "doctor", "delete-role"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_an_example_that_runs_it(command, offline_env):
    result = run_cli([command, "--help"], {**offline_env, "COLUMNS": "200"})
    assert result.code == 0, result.stderr
    text = result.stdout.decode()
    assert "Example" in text
    example = text.split("Example", 1)[1]
    assert f"velero-irsa {command}" in example or "--post-renderer velero-irsa" in example


def test_the_root_help_lists_the_new_commands(offline_env):
    text = run_cli(["--help"], {**offline_env, "COLUMNS": "200"}).stdout.decode()
    assert "doctor" in text and "delete-role" in text


def test_bash_completion_script_and_answers(offline_env):
    script = run_cli(["--show-completion", "bash"], offline_env)
    assert script.code == 0, script.stderr
    assert b"_VELERO_IRSA_COMPLETE=complete_bash" in script.stdout
    assert b"complete -o default -F _velero_irsa_completion velero-irsa" in script.stdout

    def complete(words: str) -> list[str]:
        env = {**offline_env, "_VELERO_IRSA_COMPLETE": "complete_bash", "COMP_WORDS": words}
        env["COMP_CWORD"] = str(len(words.split()) - (0 if words.endswith(" ") else 1))
        return run_cli([], env).stdout.decode().split()

    assert complete("velero-irsa doc") == ["doctor"]
    assert complete("velero-irsa delete-role --dry") == ["--dry-run"]
    assert complete("velero-irsa doctor --mode ") == ["irsa", "pod-identity"]


def test_a_denied_iam_write_names_the_action(eks, stub_env, eks_stub):
    eks_stub.deny.add("iam:CreateRole")
    result = run_cli(["ensure-role", "--cluster", CLUSTER, "--bucket", BUCKET], stub_env)
    assert (result.code, result.stdout) == (1, b"")
    assert "AWS refused to create role" in result.stderr
    assert "(iam:CreateRole was denied)" in result.stderr
    assert "grant the caller iam:CreateRole" in result.stderr


def test_a_denied_eks_call_names_the_action(aws, stub_env, eks_stub):
    aws.create_cluster(provider=False)
    aws.create_bucket()
    eks_stub.deny.add("eks:CreatePodIdentityAssociation")
    result = run_cli(["ensure-role", "--mode", "pod-identity", "--cluster", CLUSTER, "--bucket", BUCKET], stub_env)
    assert (result.code, result.stdout) == (1, b"")
    assert "(eks:CreatePodIdentityAssociation was denied)" in result.stderr


def test_doctor_turns_a_denied_read_into_a_failed_row_naming_the_action(eks, stub_env, eks_stub):
    assert run_cli(["ensure-role", "--cluster", CLUSTER, "--bucket", BUCKET], stub_env).code == 0
    eks_stub.deny.add("iam:GetRole")
    result = run_cli(["doctor", "--cluster", CLUSTER, "--bucket", BUCKET, "-o", "json"], stub_env)
    assert result.code == 1
    role = next(row for row in result.json["checks"] if row["check"] == "role")
    assert role["status"] == "fail"
    assert "iam:GetRole was denied" in role["detail"]
