"""Run commands side by side, as Helm runs a post-renderer, and keep each run's wall time and peak RSS.

Each run gets its input through a pipe (``cat FILE |``, as Helm writes to a post-renderer's
stdin). Its wall time and peak resident memory come from ``launch.py``, a small parent that
forks it and reads ``wait4``, so the figures are the command's own, not the harness's. Rounds
interleave the contenders and rotate their order, so a neighbour's load on the machine lands on
all of them alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LAUNCHER = Path(__file__).with_name("launch.py")
ROLE_ARN = "arn:aws:iam::123456789012:role/velero-bench"
REGION = "eu-central-1"
# Nothing listens here: a run that tried to reach AWS would fail (the known-ARN runs must not try).
NO_AWS = "http://127.0.0.1:9"


class RunFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class Contender:
    name: str
    argv: Sequence[str]
    env: dict[str, str] | None = None


@dataclass
class Sample:
    seconds: float  # wall time
    cpu: float  # user + system time: what the run itself costs, whatever else the machine is doing
    peak_rss: int  # bytes
    stderr: str = ""


@dataclass
class Results:
    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def seconds(self, name: str) -> float:
        return statistics.median(s.seconds for s in self.samples[name])

    def cpu(self, name: str) -> float:
        return statistics.median(s.cpu for s in self.samples[name])

    def peak_rss(self, name: str) -> int:
        return int(statistics.median(s.peak_rss for s in self.samples[name]))


def velero_irsa(*args: str) -> list[str]:
    """The command Helm runs: the installed ``velero-irsa`` script, else the module."""
    script = Path(sys.executable).with_name("velero-irsa")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "velero_irsa_postrender", *args]


def child_env(home: Path, endpoint: str | None = NO_AWS) -> dict[str, str]:
    """A clean environment: fake credentials, a fresh HOME, and AWS only at ``endpoint`` (127.0.0.1).

    With ``endpoint`` None no AWS_ENDPOINT_URL is set, for callers that aim boto3 themselves.
    """
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint
    return env


def run(contender: Contender, stdin: Path, stdout: Path | None = None) -> Sample:
    """One run with ``stdin`` piped in; stdout is discarded unless a file is given."""
    with tempfile.TemporaryDirectory() as scratch, open(stdout or os.devnull, "wb") as out:
        report, errors = Path(scratch) / "report", Path(scratch) / "stderr"
        argv = [sys.executable, "-S", str(LAUNCHER), str(report), *contender.argv]
        with open(errors, "wb") as error_file:
            feeder = subprocess.Popen(["cat", str(stdin)], stdout=subprocess.PIPE)
            subprocess.run(argv, stdin=feeder.stdout, stdout=out, stderr=error_file, env=contender.env, check=True)
            assert feeder.stdout is not None
            feeder.stdout.close()
            feeder.wait()
        stderr = errors.read_text("utf-8", "replace")
        seconds, cpu, peak_rss, code = report.read_text().split()
    if code != "0":
        raise RunFailed(f"{contender.name} exited {code}: {stderr.strip()[-500:]}")
    return Sample(float(seconds), float(cpu), int(peak_rss), stderr)


def check(contender: Contender, stdin: Path, valid: Callable[[bytes], bool]) -> None:
    """Run once and make sure the output is what the contender is meant to produce."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out"
        run(contender, stdin, out)
        if not valid(out.read_bytes()):
            raise RunFailed(f"{contender.name} produced unexpected output for {stdin.name}")


def compare(contenders: Sequence[Contender], stdin: Path, rounds: int, warmup: bool = True) -> Results:
    """Every contender ``rounds`` times, interleaved, in an order that rotates each round."""
    results = Results({c.name: [] for c in contenders})
    if warmup:
        for contender in contenders:
            run(contender, stdin)
    for number in range(rounds):
        shift = number % len(contenders)
        for contender in [*contenders[shift:], *contenders[:shift]]:
            results.samples[contender.name].append(run(contender, stdin))
    return results
