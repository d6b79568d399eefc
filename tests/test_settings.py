"""Precedence (flag > VELERO_IRSA_* > config file > default) and schema errors that name the key."""

import pytest
from conftest import fixture_bytes, run_cli

from velero_irsa_postrender.errors import ConfigError
from velero_irsa_postrender.settings import resolve

ARN = "arn:aws:iam::123456789012:role/from-{}"


def test_file_values_apply_under_cli_values(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("cluster: [a, b]\nrole-name: from-file\ndry-run: true\ntag: {team: platform}\n")
    settings = resolve({"role-name": "from-flag", "cluster": None}, str(config))
    assert settings.role_name == "from-flag"
    assert settings.clusters == ("a", "b")
    assert settings.dry_run is True
    assert settings.tags == {"team": "platform"}
    assert settings.create is True


def test_bad_config_key_names_the_path_and_rule(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("tag:\n  team: 5\n")
    with pytest.raises(ConfigError, match=r"tag\.team: 5 is not of type 'string' \(schema rule: type\)"):
        resolve({}, str(config))


def test_unknown_config_key_is_refused(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("rolename: x\n")
    with pytest.raises(ConfigError, match="'rolename' was unexpected"):
        resolve({}, str(config))


@pytest.mark.parametrize("source", ["flag", "env", "file"])
def test_precedence_end_to_end(tmp_path, offline_env, source):
    config = tmp_path / "c.yaml"
    config.write_text(f"role-arn: {ARN.format('file')}\n")
    env = {**offline_env, "VELERO_IRSA_CONFIG": str(config)}
    args = []
    if source in ("flag", "env"):
        env["VELERO_IRSA_ROLE_ARN"] = ARN.format("env")
    if source == "flag":
        args = ["--role-arn", ARN.format("flag")]
    result = run_cli(["ensure-role", *args], env)
    assert result.code == 0, result.stderr
    assert result.stdout.decode().strip() == ARN.format(source)


def test_a_broken_config_file_aborts_the_render_with_nothing_on_stdout(tmp_path, offline_env):
    config = tmp_path / "c.yaml"
    config.write_text("max-session-duration: 60\n")
    result = run_cli(
        ["--config", str(config), "--role-arn", ARN.format("x")], offline_env, fixture_bytes("template-irsa.yaml")
    )
    assert (result.code, result.stdout) == (1, b"")
    assert "max-session-duration: 60 is less than the minimum of 3600" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
