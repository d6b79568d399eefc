"""Every benchmark scenario runs once at a small size, so `python -m benchmarks` cannot rot.

No timing is asserted (the machine is shared); what is asserted are counts: the AWS calls of a
converged run and of a --role-arn run, and the modules the --role-arn path must never import.
"""

from __future__ import annotations

import pytest

from benchmarks import __main__ as bench
from benchmarks import scenarios


@pytest.fixture(scope="module")
def tables(tmp_path_factory) -> list[scenarios.Table]:
    return bench.run_all(bench.options(["--quick"]), tmp_path_factory.mktemp("bench"))


def table(tables: list[scenarios.Table], prefix: str) -> scenarios.Table:
    return next(t for t in tables if t.title.startswith(prefix))


def test_every_scenario_prints_a_table_of_medians_and_ratios(tables):
    assert len(tables) == 5
    for found in tables:
        text = found.markdown()
        assert text.startswith("### ") and "|---|" in text
        assert all(len(row) == len(found.header) for row in found.rows)


def test_known_arn_path_imports_neither_the_aws_sdk_nor_pydantic(tables):
    imports = table(tables, "Known ARN: where the")
    assert imports.data["loaded_but_not_needed"] == []
    assert "velero_irsa_postrender.cli" in imports.data["modules"]
    assert "typer" in imports.data["floor_modules"]


def test_known_arn_compares_against_the_floor_and_cat(tables):
    known = table(tables, "Known ARN: post-render")
    assert [row[0] for row in known.rows][1:] == ["floor: python -c 'import yaml, typer, jsonschema'", "cat"]
    assert known.data["ratio_to_floor"] > 0


def test_large_stream_runs_ours_and_the_naive_post_renderer_at_each_size(tables):
    stream = table(tables, "Large stream")
    sizes = stream.data["sizes"]
    assert len(sizes) == 2
    assert all(entry["speedup"] > 0 and entry["rss"] > 0 for entry in sizes.values())


def test_a_converged_run_makes_five_read_calls_and_a_role_arn_run_none(tables):
    calls = table(tables, "AWS calls")
    converged = calls.data["converged"]
    assert len(converged["client"]) == len(converged["served"]) <= 5
    assert converged["writes"] == []
    assert sorted(converged["client"]) == [
        "eks:DescribeCluster",
        "iam:GetPolicy",
        "iam:GetPolicyVersion",
        "iam:GetRole",
        "iam:ListAttachedRolePolicies",
    ]
    assert calls.data["--role-arn"]["client"] == calls.data["--role-arn"]["served"] == []
    assert calls.data["first run (creates)"]["writes"]  # the counter does see writes


def test_the_timed_aws_runs_never_write(tables):
    cold = table(tables, "Cold AWS path")
    assert cold.data["writes"] == []
