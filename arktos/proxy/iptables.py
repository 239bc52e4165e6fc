"""The host side of the proxy: iptables-restore / iptables-save, jump rules, bridges, route_localnet.

Only the iptables command-line tools are used (the nft backend on this kind of
host, the legacy one elsewhere: both take the same input).  Every change of
rules is one `iptables-restore --noflush` transaction; the jumps from the
built-in chains into ours are checked with `iptables -C` and inserted with
`iptables -I` (kube-proxy's EnsureRule), since a built-in chain is not ours to
rewrite.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import re
import subprocess
from pathlib import Path

from arktos.proxy.rules import MARTIAN_COMMENT, jump_rules

__all__ = ["IptablesError", "cleanup", "ensure_jumps", "local_bridges", "our_chains", "restore",
           "set_route_localnet"]

log = logging.getLogger("arktos.proxy.iptables")
TABLES = ("nat", "filter")
WAIT = ["-w", "5"]  # the xtables lock, for the legacy backend


class IptablesError(RuntimeError):
    pass


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30, check=False)
    except FileNotFoundError:
        raise IptablesError(f"{argv[0]} is not installed (apt-get install iptables)") from None
    except subprocess.TimeoutExpired:
        raise IptablesError(f"{' '.join(argv[:3])} did not finish in 30s") from None


def restore(text: str) -> None:
    """Apply `text` (iptables-save format) in one transaction, leaving every chain it does not name alone."""
    proc = _run(["iptables-restore", *WAIT, "--noflush"], text)
    if proc.returncode != 0:
        raise IptablesError(f"iptables-restore failed ({proc.returncode}): {proc.stderr.strip()}")


def save(table: str) -> str:
    proc = _run(["iptables-save", "-t", table])
    if proc.returncode != 0:
        raise IptablesError(f"iptables-save -t {table} failed: {proc.stderr.strip()}")
    return proc.stdout


def our_chains(prefix: str) -> dict[str, set[str]]:
    """table -> the chains named with `prefix` that exist now."""
    return {t: {m.group(1) for m in re.finditer(rf"^:({re.escape(prefix)}\S+) ", save(t), re.M)} for t in TABLES}


def ensure_jumps(prefix: str) -> int:
    """Insert the jump rules into the built-in chains that are missing; how many were inserted."""
    inserted = 0
    for table, chain, spec in jump_rules(prefix):
        args = _split(spec)
        if _run(["iptables", *WAIT, "-t", table, "-C", chain, *args]).returncode == 0:
            continue
        proc = _run(["iptables", *WAIT, "-t", table, "-I", chain, *args])
        if proc.returncode != 0:
            raise IptablesError(f"cannot add the jump to {chain} in {table}: {proc.stderr.strip()}")
        inserted += 1
    return inserted


def _split(spec: str) -> list[str]:
    import shlex

    return shlex.split(spec)


def cleanup(prefix: str) -> int:
    """Remove every rule and chain with `prefix`: the jumps into them first, then the chains, one
    transaction per table.  Returns how many chains went."""
    removed = 0
    for table in TABLES:
        text = save(table)
        chains = sorted({m.group(1) for m in re.finditer(rf"^:({re.escape(prefix)}\S+) ", text, re.M)})
        if not chains:
            continue
        ours = set(chains)
        lines = [f"*{table}"]
        for line in text.splitlines():  # jumps from chains not ours (the built-in ones) into ours
            parts = line.split()
            if (len(parts) > 2 and parts[0] == "-A" and parts[1] not in ours and "-j" in parts
                    and parts[parts.index("-j") + 1] in ours):
                lines.append("-D" + line[2:])
        lines += [f":{c} - [0:0]" for c in chains] + [f"-X {c}" for c in chains] + ["COMMIT"]
        restore("\n".join(lines) + "\n")
        removed += len(chains)
    if removed and MARTIAN_COMMENT not in save("filter"):
        # No proxy is left dropping martians to 127/8: the bridges must not route them either.
        reset_route_localnet(list(local_bridges()))
    return removed


def local_bridges() -> dict[str, list[str]]:
    """This host's bridges and their IPv4 subnets (`ip -j -4 addr show type bridge`)."""
    proc = _run(["ip", "-j", "-4", "addr", "show", "type", "bridge"])
    if proc.returncode != 0:
        return {}
    try:
        links = json.loads(proc.stdout or "[]")
    except ValueError:
        return {}
    out: dict[str, list[str]] = {}
    for link in links:
        name = link.get("ifname")
        if not name:
            continue
        for a in link.get("addr_info") or []:
            with contextlib.suppress(ValueError, KeyError, TypeError):
                net = ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
                out.setdefault(name, []).append(str(net))
    return out


def reset_route_localnet(bridges: list[str]) -> None:
    for name in bridges:
        with contextlib.suppress(OSError):
            path = Path("/proc/sys/net/ipv4/conf") / name / "route_localnet"
            if path.read_text().strip() == "1":
                path.write_text("0\n")


def set_route_localnet(bridges: list[str]) -> list[str]:
    """net.ipv4.conf.<bridge>.route_localnet=1 on each bridge (not host-wide), so a connection to
    127.0.0.1:<nodePort> may be DNATed to a pod behind it; returns the bridges changed."""
    changed = []
    for name in bridges:
        path = Path("/proc/sys/net/ipv4/conf") / name / "route_localnet"
        try:
            if path.read_text().strip() != "1":
                path.write_text("1\n")
                changed.append(name)
        except OSError as exc:  # gone meanwhile, or no permission: localhost node ports will not work there
            log.debug("route_localnet on %s: %s", name, exc)
    return changed
