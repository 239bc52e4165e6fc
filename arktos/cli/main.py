"""The `arktos` command: one entry point for every component and the toolkit."""

from __future__ import annotations

import click

from arktos import __version__
from arktos.cli.apiserver import apiserver
from arktos.cli.controller_manager import controller_manager
from arktos.cli.dns import dns
from arktos.cli.hollow_nodes import hollow_nodes
from arktos.cli.node_agent import node_agent
from arktos.cli.proxy import proxy
from arktos.cli.scheduler import scheduler
from arktos.cli.tenant import kubeconfig, tenant
from arktos.cli.up import down, status, up
from arktos.cli.workload_controller_manager import workload_controller_manager


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="arktos")
def cli() -> None:
    """Arktos: a multi-tenant, scale-out cluster manager that speaks the Kubernetes API.

    Each control-plane component is a subcommand, so the same code runs under
    `arktos up`, under systemd from the Ansible roles, and in tests.
    """


for command in (apiserver, controller_manager, workload_controller_manager, scheduler, node_agent, proxy, dns,
                hollow_nodes,
                up, down, status, tenant, kubeconfig):
    cli.add_command(command)


def main() -> None:
    cli()


def up_main() -> None:
    """`arktos-up`: the same as `arktos up`, for people who know arktos-up.sh."""
    import sys

    cli(["up", *sys.argv[1:]])
