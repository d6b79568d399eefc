"""Command line: parse options, call the flow, print the result. No domain logic lives here.

Every role option is declared once (``ROLE_OPTIONS``) and grafted onto each command that needs
it, so ``post-render``, ``ensure-role`` and ``values`` always accept exactly the same set.
"""

from __future__ import annotations

import functools
import gc
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable
from enum import Enum
from typing import Annotated, Any

import typer
from typer.exceptions import TyperException

from velero_irsa_postrender import __version__
from velero_irsa_postrender import log as logs
from velero_irsa_postrender.errors import ConfigError, VeleroIrsaError
from velero_irsa_postrender.lean_typer import LeanGroup, LeanTyper
from velero_irsa_postrender.settings import CONFIG_ENV, Settings, envvar, resolve

log = logging.getLogger(__name__)

app = LeanTyper(
    name="velero-irsa",
    cls=LeanGroup,
    help="IAM Roles for Service Accounts for Velero on Amazon EKS, as a Helm post-renderer.\n\n"
    "With no command and manifests on stdin, runs post-render (so `--post-renderer velero-irsa` works "
    "with or without --post-renderer-args). Every option has a VELERO_IRSA_* environment twin and a "
    "config-file key of the same name; a flag beats the variable, which beats the file.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_COMMANDS = ("post-render", "ensure-role", "values", "doctor", "delete-role", "download")
COMPLETION_ENV = "_VELERO_IRSA_COMPLETE"
_ROOT_FLAGS = ("-h", "--help", "--version", "--install-completion", "--show-completion")


class Output(str, Enum):
    text = "text"
    json = "json"


class Mode(str, Enum):
    irsa = "irsa"
    pod_identity = "pod-identity"


def _option(key: str, help: str, *short: str, flag: str | None = None, **extra: Any) -> Any:
    return typer.Option(flag or f"--{key}", *short, help=help, envvar=envvar(key), show_envvar=True, **extra)


def _output(help: str) -> Any:
    """The --output / -o option of a command that prints a result, text or json."""
    return Annotated[
        Output | None, typer.Option("--output", "-o", help=help, envvar=envvar("output"), show_envvar=True)
    ]


RoleOutput = _output(
    "text prints the role ARN; json prints role_arn, role_name, policy_arn, trust_subject and changes."
)
DoctorOutput = _output("text prints a table with the fix under each failed check; json prints ok and checks for CI.")
DeleteOutput = _output("text prints one line per step; json prints role_name, dry_run, steps and kept.")


AWS = "AWS"
ROLE = "Role"
BEHAVIOUR = "Behaviour"


def _shared(key: str, kind: Any, panel: str, help: str, *short: str, **extra: Any) -> tuple[str, Any]:
    """One role option: its config key and its typer annotation (unset stays None, so the file can apply)."""
    return key, Annotated[kind | None, _option(key, help, *short, rich_help_panel=panel, **extra)]


# Every option shared by the role commands, as (config key, annotation).
ROLE_OPTIONS: list[tuple[str, Any]] = [
    _shared("cluster", list[str], AWS, "EKS cluster name; repeat for one role trusted by several clusters.", "-c"),
    _shared(
        "namespace",
        str,
        ROLE,
        "Namespace of the Velero server ServiceAccount (post-render reads it from the manifests; "
        "ensure-role defaults to HELM_NAMESPACE, then velero).",
        "-n",
    ),
    _shared(
        "service-account",
        str,
        ROLE,
        "Velero server ServiceAccount (post-render reads it from the Deployment; ensure-role defaults to "
        "velero-server).",
    ),
    _shared(
        "bucket",
        list[str],
        ROLE,
        "Backup bucket; repeatable. Default: every aws BackupStorageLocation's bucket, else velero-<cluster>.",
    ),
    _shared("bucket-prefix", str, ROLE, "Limit object access to this prefix of --bucket."),
    _shared("role-name", str, ROLE, "IAM role name. Default: AWSIRSA<cluster><namespace>Velero."),
    _shared("policy-name", str, ROLE, "IAM policy name. Default: <role-name>_policy."),
    _shared("role-arn", str, ROLE, "Use this role as it is and call no AWS API."),
    _shared("role-path", str, ROLE, "IAM path for the role and policy, e.g. /velero/. Default: /."),
    _shared("permissions-boundary", str, ROLE, "ARN of a permissions boundary policy for the role."),
    _shared("tag", list[str], ROLE, "Extra tag KEY=VALUE for the role and policy; repeatable."),
    _shared("max-session-duration", int, ROLE, "Role maximum session duration in seconds (3600-43200)."),
    _shared("kms-key-arn", list[str], ROLE, "KMS key for encrypted volumes or SSE-KMS buckets; repeatable."),
    _shared(
        "mode",
        Mode,
        ROLE,
        "irsa (annotation + OIDC trust) or pod-identity (EKS Pod Identity association).",
        case_sensitive=False,
    ),
    _shared("account-id", str, AWS, "AWS account ID (skips sts:GetCallerIdentity when --oidc-issuer is given)."),
    _shared(
        "oidc-issuer",
        list[str],
        AWS,
        "The cluster's OIDC issuer URL (skips eks:DescribeCluster); with several --cluster, repeat it once per "
        "cluster in the same order.",
    ),
    _shared(
        "region",
        str,
        AWS,
        "AWS region. Default: the AWS chain (AWS_REGION, profile); post-render then tries the "
        "BackupStorageLocation's region.",
    ),
    _shared("profile", str, AWS, "AWS profile. Default: the AWS chain (AWS_PROFILE)."),
    _shared(
        "create",
        bool,
        BEHAVIOUR,
        "Create or repair what is missing (default), or only resolve and fail on a difference.",
        flag="--create/--no-create",
    ),
    _shared("create-bucket", bool, BEHAVIOUR, "Create a missing backup bucket instead of failing."),
    _shared("create-oidc-provider", bool, BEHAVIOUR, "Create the cluster's IAM OIDC provider if it is missing."),
    _shared("adopt", bool, BEHAVIOUR, "Take over an existing role or policy that velero-irsa did not create."),
    _shared("dry-run", bool, BEHAVIOUR, "Call only read APIs; print the plan on stderr."),
    (
        "config",
        Annotated[
            str | None,
            typer.Option(
                "--config",
                help="YAML config file with any of these options as keys.",
                envvar=CONFIG_ENV,
                show_envvar=True,
                rich_help_panel=BEHAVIOUR,
            ),
        ],
    ),
    (
        "verbose",
        Annotated[
            bool,
            typer.Option(
                "--verbose",
                "-v",
                help="Debug logs on stderr (also HELM_DEBUG=true).",
                envvar="VELERO_IRSA_VERBOSE",
                show_envvar=True,
                rich_help_panel=BEHAVIOUR,
            ),
        ],
    ),
]


def _param_name(key: str) -> str:
    return key.replace("-", "_")


def with_role_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command every role option; it receives them resolved, as ``settings``."""
    own = [p for name, p in inspect.signature(command, eval_str=True).parameters.items() if name != "settings"]
    shared = [
        inspect.Parameter(
            _param_name(key),
            inspect.Parameter.KEYWORD_ONLY,
            annotation=annotation,
            default=False if key == "verbose" else None,
        )
        for key, annotation in ROLE_OPTIONS
    ]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        values = {key: kwargs.pop(_param_name(key)) for key, _ in ROLE_OPTIONS}
        verbose, config = values.pop("verbose"), values.pop("config")
        logs.configure(logs.debug_requested(verbose))
        with boundary(verbose):
            cli = _cli_values(values, kwargs.get("output"))
            cli.update(getattr(command, "settings_from_arguments", _no_settings)(kwargs))
            settings = resolve(cli, config)
            logs.use_log_file(settings.log_file)
            return command(settings=settings, **kwargs)

    wrapper.__signature__ = inspect.Signature([*own, *shared])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *shared]}
    return wrapper


def _no_settings(_arguments: dict[str, Any]) -> dict[str, Any]:
    """A command's own arguments (doctor's --manifest) are not settings unless it says so."""
    return {}


def _cli_values(values: dict[str, Any], output: Any) -> dict[str, Any]:
    """Turn typer's values into config-file shaped ones (KEY=VALUE tags into a mapping, enums into text)."""
    cli = {key: (value.value if isinstance(value, Enum) else value) for key, value in values.items()}
    if cli.get("tag"):
        cli["tag"] = dict(_split_tag(item) for item in cli["tag"])
    if output is not None:
        cli["output"] = output.value if isinstance(output, Enum) else output
    return cli


def _split_tag(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--tag {item!r} is not KEY=VALUE", "write it as --tag team=platform")
    return key, value


class boundary:
    """The single place where errors become one stderr line and an exit code."""

    def __init__(self, verbose: bool = False) -> None:
        self.debug = logs.debug_requested(verbose)

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, error: BaseException | None, _tb: Any) -> bool:
        if error is None or isinstance(error, (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit)):
            return False
        if isinstance(error, BrokenPipeError):  # the reader went away (`| head`); nobody is listening
            sys.stdout = None  # type: ignore[assignment]
            raise typer.Exit(code=1)
        if isinstance(error, VeleroIrsaError):
            log.error("%s", error)
            if self.debug:
                log.debug("traceback", exc_info=error)
            raise typer.Exit(code=error.exit_code)
        if self.debug:
            log.error("unexpected %s: %s", type(error).__name__, error, exc_info=error)
        else:
            log.error(
                "unexpected %s: %s (run with -v or HELM_DEBUG=true for details)",
                type(error).__name__,
                " ".join(str(error).split())[:300],
            )
        raise typer.Exit(code=1)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"velero-irsa {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """IAM Roles for Service Accounts for Velero on Amazon EKS, as a Helm post-renderer."""


@app.command("post-render")
@with_role_options
def post_render_command(settings: Settings) -> None:
    """Read Helm's rendered manifests on stdin, write them to stdout with the Velero server
    ServiceAccount annotated with its IAM role (created or converged as needed).

    Example (Helm 3):

        helm install velero vmware-tanzu/velero -n velero -f values.yaml \\
          --post-renderer velero-irsa --post-renderer-args=--cluster=prod-eu
    """
    from velero_irsa_postrender.postrender import post_render

    if sys.stdin.isatty():
        raise ConfigError(
            "post-render reads Helm's rendered manifests on stdin, and stdin is a terminal",
            "pipe them in (`helm template … | velero-irsa post-render …`) or let Helm run it with --post-renderer",
        )
    manifests = sys.stdin.buffer.read()
    rendered, _ = post_render(manifests, settings)
    for piece in rendered:  # views of the input: a large render is written without a copy
        sys.stdout.buffer.write(piece)
    sys.stdout.buffer.flush()


@app.command("ensure-role")
@with_role_options
def ensure_role_command(
    settings: Settings,
    output: RoleOutput = None,
) -> None:
    """Create or converge the Velero IAM role and print its ARN (for scripts, CI and Helmfile hooks).

    Example:

        velero-irsa ensure-role --cluster prod-eu --namespace velero --bucket velero-prod-eu -o json
    """
    from velero_irsa_postrender.ensure import ensure_role, target_from_settings

    result = ensure_role(settings, target_from_settings(settings, os.environ.get("HELM_NAMESPACE")))
    if settings.output == "json":
        typer.echo(json.dumps(result.as_json(), indent=2, default=str))
    else:
        typer.echo(result.role_arn)


@app.command("values")
@with_role_options
def values_command(settings: Settings) -> None:
    """Print a Helm values snippet that puts the role ARN on the Velero server ServiceAccount.

    Example:

        velero-irsa values --cluster prod-eu > irsa-values.yaml
        helm upgrade --install velero vmware-tanzu/velero -n velero -f irsa-values.yaml
    """
    from velero_irsa_postrender.ensure import ensure_role, target_from_settings
    from velero_irsa_postrender.values import values_yaml

    result = ensure_role(settings, target_from_settings(settings, os.environ.get("HELM_NAMESPACE")))
    sys.stdout.write(values_yaml(result.role_arn, settings))


@app.command("doctor")
@with_role_options
def doctor_command(
    settings: Settings,
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest",
            help="Rendered manifests to check (- for stdin). Default: stdin when it is not a terminal.",
        ),
    ] = None,
    output: DoctorOutput = None,
) -> None:
    """Check live that the cluster, IAM role, policy, buckets and rendered ServiceAccount fit together.

    One row per check, ✔ or ✘ with the fix; exits 1 when any check fails. Makes no write call.

    Example:

        helm get manifest velero -n velero | velero-irsa doctor --cluster prod-eu
    """
    from velero_irsa_postrender import doctor

    checks = doctor.diagnose(settings, doctor.manifest_input(manifest, sys.stdin))
    typer.echo(doctor.as_json(checks) if settings.output == "json" else doctor.as_table(checks), nl=False)
    if doctor.failed(checks):
        raise typer.Exit(code=1)


@app.command("delete-role")
@with_role_options
def delete_role_command(
    settings: Settings,
    output: DeleteOutput = None,
) -> None:
    """Delete the role and policy velero-irsa created (and, with --mode pod-identity, its associations).

    Refuses anything without the velero-irsa tag; never deletes a bucket or an OIDC provider.

    --dry-run prints the plan (detach, old policy versions, policy, role) and deletes nothing.

    Example:

        velero-irsa delete-role --cluster prod-eu --namespace velero --dry-run
    """
    from velero_irsa_postrender.teardown import delete_role

    plan = delete_role(settings, os.environ.get("HELM_NAMESPACE"))
    if settings.output == "json":
        typer.echo(json.dumps(plan.as_json(), indent=2))
    else:
        for step in plan.steps:
            typer.echo(step.describe())


def _settings_from(extract: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[..., Any]:
    """Let a command's own arguments supply settings that beat flags and variables (the download URL)."""

    def mark(command: Callable[..., Any]) -> Callable[..., Any]:
        command.settings_from_arguments = extract  # type: ignore[attr-defined]
        return command

    return mark


def _url_settings(arguments: dict[str, Any]) -> dict[str, Any]:
    from velero_irsa_postrender.downloader import url_settings

    return url_settings(arguments["url"])


@app.command("download", hidden=True)
@with_role_options
@_settings_from(_url_settings)
def download_command(
    settings: Settings,
    cert_file: Annotated[str, typer.Argument(help="Certificate file Helm passes (unused).")],
    key_file: Annotated[str, typer.Argument(help="Key file Helm passes (unused).")],
    ca_file: Annotated[str, typer.Argument(help="CA file Helm passes (unused).")],
    url: Annotated[str, typer.Argument(help="velero-irsa://<cluster>/<namespace>[/<service-account>]?<key>=<value>")],
) -> None:
    """Helm's downloader and getter plugins call this for -f 'velero-irsa://…': print the values file.

    The URL's settings (its query keys are the config-file keys) beat flags and VELERO_IRSA_* variables.

    Example:

        helm install velero vmware-tanzu/velero -n velero -f 'velero-irsa://prod-eu/velero?bucket=velero-prod-eu'
    """
    from velero_irsa_postrender.ensure import ensure_role, target_from_settings
    from velero_irsa_postrender.values import values_yaml

    result = ensure_role(settings, target_from_settings(settings, os.environ.get("HELM_NAMESPACE")))
    sys.stdout.write(values_yaml(result.role_arn, settings))


def route(argv: list[str], stdin_is_tty: bool) -> list[str]:
    """No command given and manifests on stdin: behave as ``post-render`` (Helm 3 calls us bare).

    Only the first word decides, so an option value that happens to be a command name (`-n doctor`)
    cannot divert a render. A first word that is not an option is a command name, maybe mistyped:
    click should say so rather than post-render complain about an extra argument.
    """
    if COMPLETION_ENV in os.environ:  # shell completion reads COMP_WORDS and must see every command
        return argv
    if not argv:
        return argv if stdin_is_tty else ["post-render"]
    first = argv[0]
    if first in _COMMANDS or first in _ROOT_FLAGS or not first.startswith("-"):
        return argv
    return ["post-render", *argv]


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        code = app(
            args=route(args, sys.stdin is None or sys.stdin.isatty()), prog_name="velero-irsa", standalone_mode=False
        )
    except typer.Abort:
        code = 130
    except TyperException as error:  # typer's own click: usage errors (bad option, bad value, no command)
        code = _usage_error(error)
    except BrokenPipeError:
        # The reader went away (`| head`): nothing left to say, and nobody to say it to on stdout.
        sys.stdout = None  # type: ignore[assignment]
        code = 1
    finally:
        # Everything alive now dies with the process; frozen, the interpreter's shutdown collections
        # skip it instead of walking it several times (15-20 ms, a tenth of a Helm render's cost).
        gc.freeze()
    sys.exit(code if isinstance(code, int) else 0)


def _usage_error(error: TyperException) -> int:
    """A mistyped command line gets one line too, through the logger, so Helm 4 users see it."""
    logs.configure(logs.debug_requested())
    context = getattr(error, "ctx", None)
    where = context.command_path if context else "velero-irsa"
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    log.error("%s (see `%s --help`)", " ".join(message.split()), where)
    return int(getattr(error, "exit_code", 2))
