"""`arktos tenant create|delete|list` and `arktos kubeconfig`: tenants for people.

Both work against the local cluster `arktos up` made by default (its state
directory holds the admin kubeconfig and the PKI) and take `--kubeconfig` for
any other cluster.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from arktos.api.errors import APIError
from arktos.api.resources import builtin_registry
from arktos.cli.up import DEFAULT_STATE

TENANTS = builtin_registry().get("", "v1", "tenants")
NAMESPACES = builtin_registry().get("", "v1", "namespaces")

state_option = click.option(
    "--state-dir", default=DEFAULT_STATE, show_default=True, type=click.Path(file_okay=False, path_type=Path),
    help="The local cluster's state directory (its admin kubeconfig and PKI live there).")
kubeconfig_option = click.option(
    "--kubeconfig", type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Talk to this cluster instead of the local one (default: STATE_DIR/admin.kubeconfig).")


def _admin_kubeconfig(state_dir: Path, kubeconfig: Path | None) -> Path:
    path = kubeconfig or state_dir.expanduser() / "admin.kubeconfig"
    if not path.exists():
        raise click.ClickException(f"no kubeconfig at {path}: bring a cluster up with 'arktos up' or pass "
                                   f"--kubeconfig")
    return path


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except APIError as exc:
        raise click.ClickException(f"{exc.reason}: {exc.message}") from None
    except OSError as exc:
        raise click.ClickException(f"cannot reach the API server: {exc}") from None


async def _client(path: Path):
    from arktos.client import Client, load_kubeconfig

    return Client(load_kubeconfig(path), component="cli")


@click.group()
def tenant() -> None:
    """Create, delete and list tenants (the system administrator's job)."""


@tenant.command("create")
@click.argument("name")
@click.option("--storage-cluster-id", default="", help="Arktos's spec.storageClusterId for the tenant.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait until the tenant controller has set the tenant up (its default namespace exists).")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait.")
@state_option
@kubeconfig_option
def create(name: str, storage_cluster_id: str, wait: bool, timeout: float, state_dir: Path,
           kubeconfig: Path | None) -> None:
    """Create tenant NAME."""
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Tenant", "metadata": {"name": name}}
    if storage_cluster_id:
        body["spec"] = {"storageClusterId": storage_cluster_id}

    async def go() -> None:
        async with await _client(_admin_kubeconfig(state_dir, kubeconfig)) as client:
            await client.create(TENANTS, body)
            click.echo(f"tenant/{name} created")
            if not wait:
                return
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    await client.get(NAMESPACES, "default", tenant=name)
                    click.echo(f"tenant/{name} is ready")
                    return
                except APIError as exc:
                    if exc.code != 404:
                        raise
                await asyncio.sleep(0.2)
            raise click.ClickException(f"tenant {name} was created but is not set up after {timeout:.0f}s: "
                                       f"is the controller manager running?")

    _run(go())


@tenant.command("delete")
@click.argument("name")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until everything of it is gone.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait.")
@state_option
@kubeconfig_option
def delete(name: str, wait: bool, timeout: float, state_dir: Path, kubeconfig: Path | None) -> None:
    """Delete tenant NAME and everything in it."""

    async def go() -> None:
        async with await _client(_admin_kubeconfig(state_dir, kubeconfig)) as client:
            await client.delete(TENANTS, name)
            click.echo(f"tenant/{name} is being deleted")
            if not wait:
                return
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    await client.get(TENANTS, name)
                except APIError as exc:
                    if exc.code == 404:
                        click.echo(f"tenant/{name} deleted")
                        return
                    raise
                await asyncio.sleep(0.5)
            raise click.ClickException(f"tenant {name} is still terminating after {timeout:.0f}s: see the "
                                       f"controller manager's log")

    _run(go())


@tenant.command("list")
@state_option
@kubeconfig_option
def list_(state_dir: Path, kubeconfig: Path | None) -> None:
    """List tenants with their phase and age."""

    async def go() -> list[dict[str, Any]]:
        async with await _client(_admin_kubeconfig(state_dir, kubeconfig)) as client:
            return (await client.list(TENANTS)).get("items", [])

    items = _run(go())
    now = datetime.now(UTC)
    rows = [("NAME", "STATUS", "AGE")]
    for t in items:
        created = datetime.strptime(t["metadata"]["creationTimestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        rows.append((t["metadata"]["name"], (t.get("status") or {}).get("phase", ""),
                     _age((now - created).total_seconds())))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _age(seconds: float) -> str:
    s = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit}"
    return f"{s}s"


@click.command()
@click.option("--tenant", "tenant_name", required=True, help="The user's tenant.")
@click.option("--user", required=True, help="The user name (the certificate's CN).")
@click.option("--groups", default="", help="Comma-separated groups (the certificate's OUs).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write it (default: STATE_DIR/users/TENANT-USER.kubeconfig).")
@state_option
def kubeconfig(tenant_name: str, user: str, groups: str, output: Path | None, state_dir: Path) -> None:
    """Issue a client certificate for a tenant's user and write a kubeconfig for it.

    The context carries the tenant, and plain kubectl commands then act inside
    that tenant. The certificate is signed by the local cluster's CA, so this
    runs where `arktos up` keeps its state.
    """
    from arktos.client import load_kubeconfig
    from arktos.cluster.local import write_user_kubeconfig
    from arktos.cluster.pki import ClusterPKI

    state = state_dir.expanduser()
    admin = load_kubeconfig(_admin_kubeconfig(state, None))
    pki = ClusterPKI(state / "pki")
    if not pki.ca.cert.exists():
        raise click.ClickException(f"no cluster CA in {pki.dir}: bring the cluster up with 'arktos up' first")
    path = write_user_kubeconfig(pki, admin.server, tenant_name, user,
                                 output or state / "users" / f"{tenant_name}-{user}.kubeconfig",
                                 [g for g in groups.split(",") if g])
    click.echo(f"wrote {path}\n  export KUBECONFIG={path}\n  kubectl get pods   # acts in tenant {tenant_name}")
    if os.environ.get("KUBECONFIG") == str(path):
        click.echo("(KUBECONFIG already points at it)")
