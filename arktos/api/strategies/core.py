"""Core (v1) kinds other than Pod: Node, Namespace, Service, Secret, ConfigMap,
Event, ServiceAccount, Endpoints, PersistentVolume, PersistentVolumeClaim.

Defaults and rules follow Kubernetes' v1 defaulting and validation so that
manifests behave as they do on a Kubernetes cluster.
"""

from __future__ import annotations

import base64
import binascii
import copy
from typing import Any

from arktos.api.errors import FieldError, bad_request, forbidden, invalid, not_supported, required
from arktos.api.quantity import QUANTITY_REGEX_MESSAGE, QuantityError, parse_quantity
from arktos.api.strategies._base import (
    KindStrategy,
    as_dict,
    as_list,
    check_dict,
    check_list,
    dig,
    field_value,
    is_int,
    type_error,
)
from arktos.api.strategies.pods import PROTOCOLS, TAINT_EFFECTS
from arktos.api.strategy import Obj
from arktos.api.validation import (
    inclusive_range_error,
    is_config_map_key,
    is_dns1123_label,
    is_dns1123_subdomain,
    is_qualified_name,
    is_valid_cidr,
    is_valid_ip,
    is_valid_label_value,
    is_valid_port_name,
    is_valid_port_num,
    name_is_dns1035_label,
    name_is_dns_label,
    validate_immutable,
    validate_label_selector,
    validate_labels,
    validate_spec_finalizer_name,
)

FINALIZER_KUBERNETES = "kubernetes"
MAX_SECRET_SIZE = 1024 * 1024  # also the ConfigMap limit
SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]
SESSION_AFFINITIES = ["ClientIP", "None"]
TRAFFIC_POLICIES = ["Cluster", "Local"]
ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]
RECLAIM_POLICIES = ["Delete", "Recycle", "Retain"]
VOLUME_MODES = ["Block", "Filesystem"]
NAMESPACE_PHASES = ["Active", "Terminating"]
DEFAULT_CLIENT_IP_TIMEOUT = 10800
PV_SOURCES = (
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "csi", "fc", "flexVolume", "flocker",
    "gcePersistentDisk", "glusterfs", "hostPath", "iscsi", "local", "nfs", "photonPersistentDisk",
    "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos", "vsphereVolume",
)  # fmt: skip


def _b64(value: Any) -> bytes | None:
    """Decoded base64 bytes, or None when the value is not valid base64 text."""
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def _quantity_errors(value: Any, path: str) -> tuple[Any, list[FieldError]]:
    try:
        q = parse_quantity(value)
    except QuantityError:
        return None, [invalid(path, value, QUANTITY_REGEX_MESSAGE)]
    if q < 0:
        return None, [invalid(path, value, "must be greater than or equal to 0")]
    return q, []


def _resource_list(values: Any, path: str, errs: list[FieldError]) -> dict[str, Any]:
    """A ResourceList (name -> quantity): valid names, parseable non-negative amounts."""
    out = {}
    for name, value in check_dict(values, path, errs).items():
        p = f"{path}[{name}]"
        errs.extend(invalid(p, name, m) for m in is_qualified_name(name))
        q, qerrs = _quantity_errors(value, p)
        errs.extend(qerrs)
        if q is not None:
            out[name] = q
    return out


# --------------------------------------------------------------------------- Node


class NodeStrategy(KindStrategy):
    """Nodes register themselves with a status, so create keeps it.

    Like Kubernetes, node updates do not bump metadata.generation.
    """

    status_subresource = True
    tracks_generation = False
    field_names = ("spec.unschedulable",)

    def prepare_for_create(self, obj: Obj) -> None:
        """A node agent registers its node with capacity and conditions; nothing is dropped."""

    def default(self, obj: Obj) -> None:
        status = obj.get("status")
        if isinstance(status, dict) and isinstance(status.get("capacity"), dict) and not status.get("allocatable"):
            status["allocatable"] = dict(status["capacity"])

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        spec = check_dict(obj.get("spec"), "spec", errs)
        cidr = spec.get("podCIDR")
        if cidr:
            errs.extend(invalid("spec.podCIDR", cidr, m) for m in is_valid_cidr(str(cidr)))
        for i, c in enumerate(check_list(spec.get("podCIDRs"), "spec.podCIDRs", errs)):
            errs.extend(invalid(f"spec.podCIDRs[{i}]", c, m) for m in is_valid_cidr(str(c)))
        if spec.get("unschedulable") is not None and not isinstance(spec["unschedulable"], bool):
            errs.append(type_error("spec.unschedulable", spec["unschedulable"], "a boolean"))
        seen: set[tuple[Any, Any]] = set()
        for i, taint in enumerate(check_list(spec.get("taints"), "spec.taints", errs)):
            p = f"spec.taints[{i}]"
            taint = check_dict(taint, p, errs)
            key, value, effect = taint.get("key"), taint.get("value"), taint.get("effect")
            if not key:
                errs.append(required(f"{p}.key"))
            else:
                errs.extend(invalid(f"{p}.key", key, m) for m in is_qualified_name(str(key)))
            if value:
                errs.extend(invalid(f"{p}.value", value, m) for m in is_valid_label_value(str(value)))
            if not effect:
                errs.append(required(f"{p}.effect"))
            elif effect not in TAINT_EFFECTS:
                errs.append(not_supported(f"{p}.effect", effect, TAINT_EFFECTS))
            if (key, effect) in seen:
                errs.append(
                    FieldError(f"{p}", "FieldValueDuplicate", "taints must be unique by key and effect pair",
                               f"{key}:{effect}")
                )  # fmt: skip
            seen.add((key, effect))
        status = check_dict(obj.get("status"), "status", errs)
        for part in ("capacity", "allocatable"):
            _resource_list(status.get(part), f"status.{part}", errs)
        for i, addr in enumerate(check_list(status.get("addresses"), "status.addresses", errs)):
            addr = check_dict(addr, f"status.addresses[{i}]", errs)
            if not addr.get("type"):
                errs.append(required(f"status.addresses[{i}].type"))
            if not addr.get("address"):
                errs.append(required(f"status.addresses[{i}].address"))
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(obj)
        for key in ("podCIDR", "providerID"):
            old_value = dig(old, "spec", key)
            if old_value and dig(obj, "spec", key) != old_value:
                errs.append(forbidden(f"spec.{key}", f'node updates may not change {key} except from "" to valid'))
        return errs

    def fields(self, obj: Obj) -> dict[str, str]:
        return {"spec.unschedulable": "true" if dig(obj, "spec", "unschedulable") is True else "false"}


# --------------------------------------------------------------------------- Namespace


def ensure_kubernetes_finalizer(obj: Obj) -> None:
    """spec.finalizers gets "kubernetes" on create: the namespace (or tenant)
    controller removes it once it has emptied the object, and only then can it
    go away."""
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        if spec is not None:
            return  # validation reports the wrong type
        spec = obj["spec"] = {}
    finalizers = spec.get("finalizers")
    if finalizers is None:
        spec["finalizers"] = [FINALIZER_KUBERNETES]
    elif isinstance(finalizers, list) and FINALIZER_KUBERNETES not in finalizers:
        finalizers.append(FINALIZER_KUBERNETES)


def validate_spec_finalizers(obj: Obj) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = check_dict(obj.get("spec"), "spec", errs)
    for f in check_list(spec.get("finalizers"), "spec.finalizers", errs):
        errs.extend(validate_spec_finalizer_name(f, "spec.finalizers"))
    return errs


def validate_phase(obj: Obj, phases: list[str]) -> list[FieldError]:
    phase = dig(obj, "status", "phase")
    if phase not in (None, "") and phase not in phases:
        return [not_supported("status.phase", phase, phases)]
    return []


class NamespaceStrategy(KindStrategy):
    """Namespaces: Active on create, spec.finalizers only through the finalize subresource.

    A main-resource update keeps the stored spec.finalizers (as Kubernetes
    does), so a client cannot drop the "kubernetes" finalizer and skip the
    cleanup of the namespace's contents.
    """

    spec_finalizers = True

    status_subresource = True
    tracks_generation = False
    field_names = ("status.phase",)
    name_validator = staticmethod(name_is_dns_label)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}
        ensure_kubernetes_finalizer(obj)

    def prepare_for_update(self, obj: Obj, old: Obj) -> None:
        super().prepare_for_update(obj, old)
        old_finalizers = dig(old, "spec", "finalizers")
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = obj["spec"] = {}
        if old_finalizers is None:
            spec.pop("finalizers", None)
        else:
            spec["finalizers"] = copy.deepcopy(old_finalizers)

    def default(self, obj: Obj) -> None:
        status = obj.get("status")
        if isinstance(status, dict) and not status.get("phase"):
            status["phase"] = "Active"
        meta = obj.get("metadata")
        if obj.get("kind") == "Namespace" and isinstance(meta, dict) and isinstance(meta.get("name"), str):
            # Since Kubernetes 1.22 every namespace is selectable by its name through this label.
            labels = meta.get("labels")
            if not isinstance(labels, dict):
                labels = meta["labels"] = {}
            labels["kubernetes.io/metadata.name"] = meta["name"]

    def validate(self, obj: Obj) -> list[FieldError]:
        return validate_spec_finalizers(obj) + validate_phase(obj, NAMESPACE_PHASES)


# --------------------------------------------------------------------------- Service


def _is_headless(spec: dict[str, Any]) -> bool:
    return spec.get("clusterIP") == "None"


class ServiceStrategy(KindStrategy):
    """Services: names are DNS-1035 labels (they become DNS names and env vars)."""

    status_subresource = True
    field_names = ("spec.clusterIP", "spec.type")
    name_validator = staticmethod(name_is_dns1035_label)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_update(self, obj: Obj, old: Obj) -> None:
        """Keep the status, and allocated values a client left out.

        A client replacing a Service from its manifest rarely repeats the
        clusterIP and node ports the server allocated; Kubernetes (since 1.20)
        carries them over instead of failing with "field is immutable".
        """
        super().prepare_for_update(obj, old)
        spec, old_spec = obj.get("spec"), as_dict(old.get("spec"))
        if not isinstance(spec, dict):
            return
        new_type = spec.get("type", "ClusterIP")
        old_type = old_spec.get("type", "ClusterIP")
        if "ExternalName" in (new_type, old_type):
            return
        for key in ("clusterIP", "clusterIPs"):
            if not spec.get(key) and old_spec.get(key):
                spec[key] = copy.deepcopy(old_spec[key])
        if new_type in ("NodePort", "LoadBalancer") and old_type in ("NodePort", "LoadBalancer"):
            old_ports = {
                (p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                for p in as_list(old_spec.get("ports"))
                if isinstance(p, dict)
            }
            for p in as_list(spec.get("ports")):
                if isinstance(p, dict) and not p.get("nodePort"):
                    node_port = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                    if node_port:
                        p["nodePort"] = node_port
            if not spec.get("healthCheckNodePort") and old_spec.get("healthCheckNodePort"):
                spec["healthCheckNodePort"] = old_spec["healthCheckNodePort"]

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec.get("sessionAffinity") == "ClientIP":
            config = spec.setdefault("sessionAffinityConfig", {})
            if isinstance(config, dict):
                client_ip = config.setdefault("clientIP", {})
                if isinstance(client_ip, dict):
                    client_ip.setdefault("timeoutSeconds", DEFAULT_CLIENT_IP_TIMEOUT)
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        for port in as_list(spec.get("ports")):
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if port.get("targetPort") in (None, 0, ""):
                    port["targetPort"] = port.get("port")

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        spec = obj.get("spec")
        if spec is None:
            return [required("spec")]
        spec = check_dict(spec, "spec", errs)
        stype = spec.get("type")
        if stype not in SERVICE_TYPES:
            errs.append(required("spec.type") if not stype else not_supported("spec.type", stype, SERVICE_TYPES))
        ports = check_list(spec.get("ports"), "spec.ports", errs)
        if stype == "ExternalName":
            name = spec.get("externalName")
            if not name:
                errs.append(required("spec.externalName"))
            else:
                errs.extend(invalid("spec.externalName", name, m) for m in is_dns1123_subdomain(str(name)))
            if spec.get("clusterIP"):
                errs.append(forbidden("spec.clusterIP", "may not be set for ExternalName services"))
        elif not ports and not _is_headless(spec):
            errs.append(required("spec.ports"))
        cluster_ip = spec.get("clusterIP")
        if cluster_ip and cluster_ip != "None":
            errs.extend(invalid("spec.clusterIP", cluster_ip, m) for m in is_valid_ip(str(cluster_ip)))
        if stype == "LoadBalancer" and _is_headless(spec):
            errs.append(invalid("spec.clusterIP", "None", "may not be set to 'None' for LoadBalancer services"))
        if stype == "NodePort" and _is_headless(spec):
            errs.append(invalid("spec.clusterIP", "None", "may not be set to 'None' for NodePort services"))
        names: set[str] = set()
        keys: set[tuple[Any, Any]] = set()
        for i, port in enumerate(ports):
            errs.extend(_validate_service_port(port, f"spec.ports[{i}]", len(ports) > 1, names, stype))
            port = as_dict(port)
            key = (port.get("port"), port.get("protocol"))
            if key in keys:
                errs.append(FieldError(f"spec.ports[{i}]", "FieldValueDuplicate", value=f"{key[0]}/{key[1]}"))
            keys.add(key)
        affinity = spec.get("sessionAffinity")
        if affinity not in SESSION_AFFINITIES:
            errs.append(
                required("spec.sessionAffinity")
                if not affinity
                else not_supported("spec.sessionAffinity", affinity, SESSION_AFFINITIES)
            )
        timeout = dig(spec, "sessionAffinityConfig", "clientIP", "timeoutSeconds")
        if timeout is not None and (not is_int(timeout) or not 0 < timeout <= 86400):
            errs.append(
                invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout, inclusive_range_error(1, 86400))
            )
        policy = spec.get("externalTrafficPolicy")
        if policy:
            if stype not in ("NodePort", "LoadBalancer"):
                errs.append(
                    invalid(
                        "spec.externalTrafficPolicy",
                        policy,
                        "ExternalTrafficPolicy can only be set on NodePort and LoadBalancer service",
                    )
                )
            elif policy not in TRAFFIC_POLICIES:
                errs.append(not_supported("spec.externalTrafficPolicy", policy, TRAFFIC_POLICIES))
        errs.extend(validate_labels(spec.get("selector"), "spec.selector"))
        for i, ip in enumerate(check_list(spec.get("externalIPs"), "spec.externalIPs", errs)):
            errs.extend(invalid(f"spec.externalIPs[{i}]", ip, m) for m in is_valid_ip(str(ip)))
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(obj)
        spec, old_spec = as_dict(obj.get("spec")), as_dict(old.get("spec"))
        if "ExternalName" not in (spec.get("type"), old_spec.get("type")):
            errs.extend(validate_immutable(spec.get("clusterIP"), old_spec.get("clusterIP"), "spec.clusterIP"))
        return errs


def _validate_service_port(port: Any, path: str, multiple: bool, names: set[str], stype: Any) -> list[FieldError]:
    errs: list[FieldError] = []
    port = check_dict(port, path, errs)
    name = port.get("name")
    if not name:
        if multiple:
            errs.append(required(f"{path}.name"))
    elif not isinstance(name, str):
        errs.append(type_error(f"{path}.name", name, "a string"))
    else:
        errs.extend(invalid(f"{path}.name", name, m) for m in is_dns1123_label(name))
        if name in names:
            errs.append(FieldError(f"{path}.name", "FieldValueDuplicate", value=name))
        names.add(name)
    number = port.get("port")
    if number is None:
        errs.append(required(f"{path}.port"))
    else:
        errs.extend(invalid(f"{path}.port", number, m) for m in is_valid_port_num(number))
    protocol = port.get("protocol")
    if not protocol:
        errs.append(required(f"{path}.protocol"))
    elif protocol not in PROTOCOLS:
        errs.append(not_supported(f"{path}.protocol", protocol, PROTOCOLS))
    target = port.get("targetPort")
    if isinstance(target, str):
        errs.extend(invalid(f"{path}.targetPort", target, m) for m in is_valid_port_name(target))
    elif target is not None:
        errs.extend(invalid(f"{path}.targetPort", target, m) for m in is_valid_port_num(target))
    node_port = port.get("nodePort")
    if node_port:
        if stype == "ClusterIP":
            errs.append(forbidden(f"{path}.nodePort", "may not be used when `type` is 'ClusterIP'"))
        else:
            errs.extend(invalid(f"{path}.nodePort", node_port, m) for m in is_valid_port_num(node_port))
    return errs


# --------------------------------------------------------------------------- Secret / ConfigMap


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def _validate_immutable_data(obj: Obj, old: Obj, keys: tuple[str, ...]) -> list[FieldError]:
    """Once `immutable: true`, the data and the flag itself are frozen (Kubernetes 1.21+)."""
    if old.get("immutable") is not True:
        return []
    errs: list[FieldError] = []
    if obj.get("immutable") is not True:
        errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    for key in keys:
        if obj.get(key) != old.get(key):
            errs.append(forbidden(key, "field is immutable when `immutable` is set"))
    return errs


class SecretStrategy(KindStrategy):
    """Secrets: base64 data, `stringData` folded into it as the v1 API does."""

    tracks_generation = False
    field_names = ("type",)

    def default(self, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        data = obj.get("data")
        if isinstance(data, dict):
            # Kubernetes rejects undecodable data while decoding the request: a 400, not a 422.
            for key, value in data.items():
                if isinstance(value, str) and _b64(value) is None:
                    raise bad_request(f'Secret in version "v1" cannot be handled as a Secret: illegal base64 data '
                                      f"in data[{key}]")
        string_data = obj.get("stringData")
        if isinstance(string_data, dict):
            data = obj.get("data")
            if data is None:
                data = obj["data"] = {}
            if isinstance(data, dict):
                for k, v in string_data.items():
                    if isinstance(v, str):
                        data[k] = base64.b64encode(v.encode()).decode()
                obj.pop("stringData")

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        data = check_dict(obj.get("data"), "data", errs)
        size = 0
        for key, value in data.items():
            errs.extend(invalid(f"data[{key}]", key, m) for m in is_config_map_key(key))
            decoded = _b64(value)
            if decoded is None:
                errs.append(invalid(f"data[{key}]", "<secret contents redacted>", "must be base64-encoded"))
            else:
                size += len(decoded)
        if size > MAX_SECRET_SIZE:
            errs.append(FieldError("data", "FieldValueTooLong", f"must have at most {MAX_SECRET_SIZE} bytes"))
        stype = obj.get("type")
        if not isinstance(stype, str):
            errs.append(type_error("type", stype, "a string"))
            return errs
        for key in _SECRET_REQUIRED_KEYS.get(stype, ()):
            if key not in data:
                errs.append(required(f"data[{key}]"))
        if stype == "kubernetes.io/service-account-token":
            annotations = as_dict(dig(obj, "metadata", "annotations"))
            if not annotations.get("kubernetes.io/service-account.name"):
                errs.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
        elif stype == "kubernetes.io/basic-auth" and "username" not in data and "password" not in data:
            errs.append(required("data[username]", "either username or password or both must be provided"))
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(obj)
        errs.extend(validate_immutable(obj.get("type"), old.get("type"), "type"))
        errs.extend(_validate_immutable_data(obj, old, ("data",)))
        return errs


class ConfigMapStrategy(KindStrategy):
    """ConfigMaps: keys that are safe file names, total size at most 1 MiB."""

    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        data = check_dict(obj.get("data"), "data", errs)
        binary = check_dict(obj.get("binaryData"), "binaryData", errs)
        size = 0
        for key, value in data.items():
            errs.extend(invalid("data", key, m) for m in is_config_map_key(key))
            if not isinstance(value, str):
                errs.append(type_error(f"data[{key}]", value, "a string"))
            else:
                size += len(key) + len(value.encode())
        for key, value in binary.items():
            errs.extend(invalid("binaryData", key, m) for m in is_config_map_key(key))
            if key in data:
                errs.append(invalid("binaryData", key, "duplicate of key present in data"))
            decoded = _b64(value)
            if decoded is None:
                errs.append(invalid(f"binaryData[{key}]", None, "must be base64-encoded"))
            else:
                size += len(key) + len(decoded)
        if size > MAX_SECRET_SIZE:
            errs.append(FieldError("data", "FieldValueTooLong", f"must have at most {MAX_SECRET_SIZE} bytes"))
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        return self.validate(obj) + _validate_immutable_data(obj, old, ("data", "binaryData"))


# --------------------------------------------------------------------------- Event, ServiceAccount, Endpoints


class EventStrategy(KindStrategy):
    tracks_generation = False
    field_names = (
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "source",
        "type",
    )

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        involved = check_dict(obj.get("involvedObject"), "involvedObject", errs)
        ns = involved.get("namespace")
        if ns and ns != dig(obj, "metadata", "namespace"):
            errs.append(invalid("involvedObject.namespace", ns, "does not match event.namespace"))
        for key in ("count",):
            if obj.get(key) is not None and not is_int(obj[key]):
                errs.append(type_error(key, obj[key], "an integer"))
        return errs

    def fields(self, obj: Obj) -> dict[str, str]:
        out = {name: field_value(obj, name) for name in self.field_names if name != "source"}
        out["source"] = field_value(obj, "source.component")
        return out


class ServiceAccountStrategy(KindStrategy):
    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for key in ("secrets", "imagePullSecrets"):
            for i, ref in enumerate(check_list(obj.get(key), key, errs)):
                if not isinstance(ref, dict):
                    errs.append(type_error(f"{key}[{i}]", ref, "an object"))
        automount = obj.get("automountServiceAccountToken")
        if automount is not None and not isinstance(automount, bool):
            errs.append(type_error("automountServiceAccountToken", automount, "a boolean"))
        return errs


class EndpointsStrategy(KindStrategy):
    tracks_generation = False

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        for i, subset in enumerate(check_list(obj.get("subsets"), "subsets", errs)):
            p = f"subsets[{i}]"
            subset = check_dict(subset, p, errs)
            for key in ("addresses", "notReadyAddresses"):
                for j, addr in enumerate(check_list(subset.get(key), f"{p}.{key}", errs)):
                    ap = f"{p}.{key}[{j}]"
                    addr = check_dict(addr, ap, errs)
                    ip = addr.get("ip")
                    if not ip:
                        errs.append(required(f"{ap}.ip"))
                    else:
                        errs.extend(invalid(f"{ap}.ip", ip, m) for m in is_valid_ip(str(ip)))
                    if addr.get("hostname"):
                        errs.extend(
                            invalid(f"{ap}.hostname", addr["hostname"], m)
                            for m in is_dns1123_label(str(addr["hostname"]))
                        )
            ports = check_list(subset.get("ports"), f"{p}.ports", errs)
            for j, port in enumerate(ports):
                pp = f"{p}.ports[{j}]"
                port = check_dict(port, pp, errs)
                if len(ports) > 1 and not port.get("name"):
                    errs.append(required(f"{pp}.name"))
                elif port.get("name"):
                    errs.extend(invalid(f"{pp}.name", port["name"], m) for m in is_dns1123_label(str(port["name"])))
                errs.extend(invalid(f"{pp}.port", port.get("port"), m) for m in is_valid_port_num(port.get("port")))
                protocol = port.get("protocol", "TCP")
                if protocol not in PROTOCOLS:
                    errs.append(not_supported(f"{pp}.protocol", protocol, PROTOCOLS))
        return errs


# --------------------------------------------------------------------------- PersistentVolume(Claim)


def _validate_access_modes(spec: dict[str, Any], errs: list[FieldError]) -> None:
    modes = check_list(spec.get("accessModes"), "spec.accessModes", errs)
    if not modes:
        errs.append(required("spec.accessModes"))
    for mode in modes:
        if mode not in ACCESS_MODES:
            errs.append(not_supported("spec.accessModes", mode, ACCESS_MODES))


def _validate_storage_class(spec: dict[str, Any], errs: list[FieldError]) -> None:
    sc = spec.get("storageClassName")
    if sc:
        errs.extend(invalid("spec.storageClassName", sc, m) for m in is_dns1123_subdomain(str(sc)))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in VOLUME_MODES:
        errs.append(not_supported("spec.volumeMode", mode, VOLUME_MODES))


class PersistentVolumeStrategy(KindStrategy):
    status_subresource = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
            spec.setdefault("volumeMode", "Filesystem")
        status = obj.get("status")
        if isinstance(status, dict) and not status.get("phase"):
            status["phase"] = "Pending"

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if obj.get("spec") is None:
            return [required("spec")]
        spec = check_dict(obj.get("spec"), "spec", errs)
        capacity = check_dict(spec.get("capacity"), "spec.capacity", errs)
        if not capacity:
            errs.append(required("spec.capacity"))
        elif "storage" not in capacity or len(capacity) > 1:
            errs.append(not_supported("spec.capacity", sorted(capacity), ["storage"]))
        else:
            _resource_list(capacity, "spec.capacity", errs)
        _validate_access_modes(spec, errs)
        _validate_storage_class(spec, errs)
        policy = spec.get("persistentVolumeReclaimPolicy")
        if policy is not None and policy not in RECLAIM_POLICIES:
            errs.append(not_supported("spec.persistentVolumeReclaimPolicy", policy, RECLAIM_POLICIES))
        sources = [k for k in PV_SOURCES if spec.get(k) is not None]
        if not sources:
            errs.append(required("spec", "must specify a volume type"))
        for extra in sources[1:]:
            errs.append(forbidden(f"spec.{extra}", "may not specify more than 1 volume type"))
        return errs


class PersistentVolumeClaimStrategy(KindStrategy):
    status_subresource = True

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("volumeMode", "Filesystem")
        status = obj.get("status")
        if isinstance(status, dict) and not status.get("phase"):
            status["phase"] = "Pending"

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        if obj.get("spec") is None:
            return [required("spec")]
        spec = check_dict(obj.get("spec"), "spec", errs)
        _validate_access_modes(spec, errs)
        _validate_storage_class(spec, errs)
        errs.extend(validate_label_selector(spec.get("selector"), "spec.selector"))
        resources = check_dict(spec.get("resources"), "spec.resources", errs)
        requests = check_dict(resources.get("requests"), "spec.resources.requests", errs)
        if "storage" not in requests:
            errs.append(required("spec.resources[storage]"))
        else:
            q, qerrs = _quantity_errors(requests["storage"], "spec.resources[storage]")
            errs.extend(qerrs)
            if q is not None and q <= 0:
                errs.append(invalid("spec.resources[storage]", requests["storage"], "must be greater than zero"))
        _resource_list(resources.get("limits"), "spec.resources.limits", errs)
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        """A claim's spec is fixed once made, except that the binder sets
        volumeName once and a bound claim's storage request may grow."""
        errs = self.validate(obj)
        spec, old_spec = copy.deepcopy(as_dict(obj.get("spec"))), copy.deepcopy(as_dict(old.get("spec")))
        if not old_spec.get("volumeName"):
            old_spec["volumeName"] = spec.get("volumeName")
            if old_spec["volumeName"] is None:
                old_spec.pop("volumeName")
        new_req = dig(spec, "resources", "requests")
        old_req = dig(old_spec, "resources", "requests")
        if dig(old, "status", "phase") == "Bound" and isinstance(new_req, dict) and isinstance(old_req, dict):
            new_storage, old_storage = new_req.get("storage"), old_req.get("storage")
            try:
                if parse_quantity(new_storage) < parse_quantity(old_storage):
                    errs.append(
                        forbidden("spec.resources.requests.storage", "field can not be less than previous value")
                    )
            except QuantityError:
                pass  # reported by validate()
            old_req["storage"] = new_storage
        if spec != old_spec:
            errs.append(
                forbidden("spec", "spec is immutable after creation except resources.requests for bound claims")
            )
        return errs


__all__ = [
    "ConfigMapStrategy",
    "EndpointsStrategy",
    "EventStrategy",
    "NamespaceStrategy",
    "NodeStrategy",
    "PersistentVolumeClaimStrategy",
    "PersistentVolumeStrategy",
    "SecretStrategy",
    "ServiceAccountStrategy",
    "ServiceStrategy",
    "ensure_kubernetes_finalizer",
    "validate_phase",
    "validate_spec_finalizers",
]
