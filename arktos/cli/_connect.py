"""How every component command turns `--kubeconfig` / `--master` into a connection."""

from __future__ import annotations

import click

from arktos.api.tenancy import SYSTEM_TENANT
from arktos.client import ClusterConfig, KubeconfigError, load_kubeconfig


def cluster_config(kubeconfig: str | None, master: str | None, *, component: str = "",
                   system_only: bool = False) -> ClusterConfig:
    """The kubeconfig's context, its server replaced by `--master`; or `--master` alone (the
    plain-HTTP development port).  `system_only` refuses a context in another tenant, for the
    components that act across tenants."""
    try:
        if kubeconfig or not master:
            config = load_kubeconfig(kubeconfig)
            if master:
                config = config.with_overrides(server=master.rstrip("/"))
        else:
            config = ClusterConfig.for_url(master)
    except KubeconfigError as exc:
        raise click.UsageError(str(exc)) from None
    if system_only and config.tenant and config.tenant != SYSTEM_TENANT:
        raise click.UsageError(f"the {component} acts across tenants: its kubeconfig context must be in the "
                               f"{SYSTEM_TENANT} tenant, not {config.tenant!r}")
    return config
