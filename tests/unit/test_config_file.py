"""`--config FILE`: the file's values are the defaults, the command line wins, bad files fail in one line."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from arktos.cli._config import config_option
from arktos.cli.main import cli


@click.command()
@config_option
@click.option("--port", default=1, type=click.IntRange(1, 100))
@click.option("--name", required=True)
@click.option("--key-file", "key_files", multiple=True)
@click.option("--leader-elect/--no-leader-elect", default=True)
def probe(port: int, name: str, key_files: tuple[str, ...], leader_elect: bool) -> None:
    click.echo(f"port={port} name={name} keys={','.join(key_files)} leader={leader_elect}")


def run(tmp_path: Path, text: str, *args: str) -> tuple[int, str]:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    result = CliRunner().invoke(probe, ["--config", str(path), *args])
    return result.exit_code, result.output


def test_file_values_are_used(tmp_path: Path):
    code, out = run(tmp_path, "port: 7\nname: alpha\nkey-file: [a.pem, b.pem]\nleader-elect: false\n")
    assert code == 0, out
    assert out.strip() == "port=7 name=alpha keys=a.pem,b.pem leader=False"


def test_command_line_overrides_the_file(tmp_path: Path):
    code, out = run(tmp_path, "port: 7\nname: alpha\nleader-elect: false\n", "--port", "9", "--leader-elect")
    assert code == 0, out
    assert out.strip() == "port=9 name=alpha keys= leader=True"


def test_negative_half_of_a_flag_and_a_scalar_for_a_list(tmp_path: Path):
    code, out = run(tmp_path, "name: a\nno-leader-elect: true\nkey-file: only.pem\n")
    assert code == 0, out
    assert out.strip() == "port=1 name=a keys=only.pem leader=False"


def test_null_keeps_the_option_default(tmp_path: Path):
    code, out = run(tmp_path, "name: a\nport: null\n")
    assert code == 0 and "port=1 " in out, out


@pytest.mark.parametrize(("text", "expect"), [
    ("name: a\nprot: 7\n", "unknown key 'prot'"),
    ("name: a\nport: 700\n", "port: 700 is not in the range"),
    ("name: a\nleader-elect: maybe\n", "leader-elect:"),
    ("- a\n- b\n", "want a mapping"),
    ("name: [unclosed\n", "not valid YAML"),
])
def test_a_bad_file_is_one_line_naming_file_and_key(tmp_path: Path, text: str, expect: str):
    code, out = run(tmp_path, text)
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 1, out
    assert str(tmp_path / "c.yaml") in lines[0] and expect in lines[0]
    assert "Traceback" not in out


def test_a_missing_file_is_one_line(tmp_path: Path):
    result = CliRunner().invoke(probe, ["--config", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1 and "cannot read the config file" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_every_component_takes_a_config_file(tmp_path: Path):
    """The real commands: an unknown key in a component's file is refused before it starts anything."""
    path = tmp_path / "bad.yaml"
    path.write_text("no-such-flag: 1\n")
    for command in ("apiserver", "controller-manager", "scheduler", "node-agent", "workload-controller-manager",
                    "hollow-nodes", "proxy", "dns"):
        result = CliRunner().invoke(cli, [command, "--config", str(path)])
        assert result.exit_code == 1, (command, result.output)
        assert "unknown key 'no-such-flag'" in result.output, (command, result.output)


def test_the_proxy_template_is_a_valid_proxy_config(tmp_path: Path):
    """What `arktos up` and the role render is accepted by `arktos proxy` (here with --cleanup of a prefix that
    has no chains, which only reads iptables)."""
    from arktos.cluster import render

    kubeconfig = tmp_path / "k.yaml"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    path = tmp_path / "proxy.yaml"
    path.write_text(render.render("proxy.yaml.j2", kubeconfig=str(kubeconfig), chain_prefix="ZQ9-",
                                  healthz_bind_address="127.0.0.1:1", cluster_cidr="10.88.0.0/16"))
    result = CliRunner().invoke(cli, ["proxy", "--config", str(path), "--cleanup"])
    assert result.exit_code == 0 and "removed 0 chains named ZQ9-*" in result.output, result.output


def test_the_dns_template_is_a_valid_dns_config(tmp_path: Path):
    """What `arktos up` and the role render for `arktos dns` is read back as the values it was given."""
    import click

    from arktos.cli._config import load_config
    from arktos.cli.dns import dns
    from arktos.cluster import render

    (tmp_path / "k.yaml").write_text("apiVersion: v1\nkind: Config\n")
    path = tmp_path / "dns.yaml"
    path.write_text(render.render("dns.yaml.j2", kubeconfig=str(tmp_path / "k.yaml"), port=10053,
                                  bind_addresses=["127.0.0.1", "10.88.0.1"], health_bind_address="127.0.0.1:18080",
                                  cluster_domain="example.local"))
    values = load_config(click.Context(dns), str(path))
    assert values["bind_addresses"] == ["127.0.0.1", "10.88.0.1"] and values["port"] == 10053
    assert values["cluster_domain"] == "example.local" and values["health_bind_address"] == "127.0.0.1:18080"
    assert values["service_cluster_ip_range"] == "10.0.0.0/24"
