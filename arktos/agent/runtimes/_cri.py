"""A client of the Container Runtime Interface (runtime.v1), the gRPC API containerd serves to kubelets.

The messages are built at import time from the table below (names, field
numbers and types of CRI's `api.proto`), so there is no generated code and no
protoc step at install time.  Only the part of CRI the node agent uses is
described; protobuf skips the fields a newer containerd adds, and fields left
out here are simply never sent.  The table is the wire contract: a wrong field
number would make containerd read a different field, so keep it to the proto.

Call `CRIClient.call("RunPodSandbox", config=...)`: keyword arguments become
the request message (nested dicts for nested messages), the response comes back
as a protobuf message.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.json_format import ParseDict
from google.protobuf.message import Message

__all__ = ["CONTAINER_STATES", "SANDBOX_READY", "CRIClient", "CRIError", "message"]

_PACKAGE = "runtime.v1"

# Scalar types by their proto names; anything else names a message or an enum of the table.
_SCALARS = {
    "string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
    "bytes": descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
    "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
    "int32": descriptor_pb2.FieldDescriptorProto.TYPE_INT32,
    "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
    "uint32": descriptor_pb2.FieldDescriptorProto.TYPE_UINT32,
    "uint64": descriptor_pb2.FieldDescriptorProto.TYPE_UINT64,
}

_ENUMS: dict[str, list[str]] = {
    "Protocol": ["TCP", "UDP", "SCTP"],
    "MountPropagation": ["PROPAGATION_PRIVATE", "PROPAGATION_HOST_TO_CONTAINER", "PROPAGATION_BIDIRECTIONAL"],
    "NamespaceMode": ["POD", "CONTAINER", "NODE", "TARGET"],
    "PodSandboxState": ["SANDBOX_READY", "SANDBOX_NOTREADY"],
    "ContainerState": ["CONTAINER_CREATED", "CONTAINER_RUNNING", "CONTAINER_EXITED", "CONTAINER_UNKNOWN"],
}

# message -> fields "name number type"; "*type" is repeated, "map" is map<string, string>.
_MESSAGES: dict[str, str] = {
    "VersionRequest": "version 1 string",
    "VersionResponse": "version 1 string; runtime_name 2 string; runtime_version 3 string;"
                       " runtime_api_version 4 string",
    "DNSConfig": "servers 1 *string; searches 2 *string; options 3 *string",
    "PortMapping": "protocol 1 Protocol; container_port 2 int32; host_port 3 int32; host_ip 4 string",
    "Mount": "container_path 1 string; host_path 2 string; readonly 3 bool; selinux_relabel 4 bool;"
             " propagation 5 MountPropagation",
    "NamespaceOption": "network 1 NamespaceMode; pid 2 NamespaceMode; ipc 3 NamespaceMode; target_id 4 string",
    "Int64Value": "value 1 int64",
    "LinuxSandboxSecurityContext": "namespace_options 1 NamespaceOption; run_as_user 3 Int64Value;"
                                   " readonly_rootfs 4 bool; privileged 6 bool; run_as_group 8 Int64Value",
    "LinuxPodSandboxConfig": "cgroup_parent 1 string; security_context 2 LinuxSandboxSecurityContext; sysctls 3 map",
    "PodSandboxMetadata": "name 1 string; uid 2 string; namespace 3 string; attempt 4 uint32",
    "PodSandboxConfig": "metadata 1 PodSandboxMetadata; hostname 2 string; log_directory 3 string;"
                        " dns_config 4 DNSConfig; port_mappings 5 *PortMapping; labels 6 map; annotations 7 map;"
                        " linux 8 LinuxPodSandboxConfig",
    "RunPodSandboxRequest": "config 1 PodSandboxConfig; runtime_handler 2 string",
    "RunPodSandboxResponse": "pod_sandbox_id 1 string",
    "StopPodSandboxRequest": "pod_sandbox_id 1 string",
    "StopPodSandboxResponse": "",
    "RemovePodSandboxRequest": "pod_sandbox_id 1 string",
    "RemovePodSandboxResponse": "",
    "PodSandboxStatusRequest": "pod_sandbox_id 1 string; verbose 2 bool",
    "PodIP": "ip 1 string",
    "PodSandboxNetworkStatus": "ip 1 string; additional_ips 2 *PodIP",
    "PodSandboxStatus": "id 1 string; metadata 2 PodSandboxMetadata; state 3 PodSandboxState; created_at 4 int64;"
                        " network 5 PodSandboxNetworkStatus; labels 7 map; annotations 8 map; runtime_handler 9 string",
    "PodSandboxStatusResponse": "status 1 PodSandboxStatus; info 2 map",
    "PodSandboxStateValue": "state 1 PodSandboxState",
    "PodSandboxFilter": "id 1 string; state 2 PodSandboxStateValue; label_selector 3 map",
    "ListPodSandboxRequest": "filter 1 PodSandboxFilter",
    "PodSandbox": "id 1 string; metadata 2 PodSandboxMetadata; state 3 PodSandboxState; created_at 4 int64;"
                  " labels 5 map; annotations 6 map; runtime_handler 7 string",
    "ListPodSandboxResponse": "items 1 *PodSandbox",
    "ImageSpec": "image 1 string; annotations 2 map",
    "KeyValue": "key 1 string; value 2 string",
    "LinuxContainerResources": "cpu_period 1 int64; cpu_quota 2 int64; cpu_shares 3 int64;"
                               " memory_limit_in_bytes 4 int64; oom_score_adj 5 int64",
    "Capability": "add_capabilities 1 *string; drop_capabilities 2 *string",
    "LinuxContainerSecurityContext": "capabilities 1 Capability; privileged 2 bool;"
                                     " namespace_options 3 NamespaceOption; run_as_user 5 Int64Value;"
                                     " run_as_username 6 string; readonly_rootfs 7 bool;"
                                     " run_as_group 12 Int64Value",
    "LinuxContainerConfig": "resources 1 LinuxContainerResources; security_context 2 LinuxContainerSecurityContext",
    "ContainerMetadata": "name 1 string; attempt 2 uint32",
    "ContainerConfig": "metadata 1 ContainerMetadata; image 2 ImageSpec; command 3 *string; args 4 *string;"
                       " working_dir 5 string; envs 6 *KeyValue; mounts 7 *Mount; labels 9 map; annotations 10 map;"
                       " log_path 11 string; stdin 12 bool; stdin_once 13 bool; tty 14 bool;"
                       " linux 15 LinuxContainerConfig",
    "CreateContainerRequest": "pod_sandbox_id 1 string; config 2 ContainerConfig; sandbox_config 3 PodSandboxConfig",
    "CreateContainerResponse": "container_id 1 string",
    "StartContainerRequest": "container_id 1 string",
    "StartContainerResponse": "",
    "StopContainerRequest": "container_id 1 string; timeout 2 int64",
    "StopContainerResponse": "",
    "RemoveContainerRequest": "container_id 1 string",
    "RemoveContainerResponse": "",
    "ContainerStateValue": "state 1 ContainerState",
    "ContainerFilter": "id 1 string; state 2 ContainerStateValue; pod_sandbox_id 3 string; label_selector 4 map",
    "ListContainersRequest": "filter 1 ContainerFilter",
    "Container": "id 1 string; pod_sandbox_id 2 string; metadata 3 ContainerMetadata; image 4 ImageSpec;"
                 " image_ref 5 string; state 6 ContainerState; created_at 7 int64; labels 8 map; annotations 9 map",
    "ListContainersResponse": "containers 1 *Container",
    "ContainerStatusRequest": "container_id 1 string; verbose 2 bool",
    "ContainerStatus": "id 1 string; metadata 2 ContainerMetadata; state 3 ContainerState; created_at 4 int64;"
                       " started_at 5 int64; finished_at 6 int64; exit_code 7 int32; image 8 ImageSpec;"
                       " image_ref 9 string; reason 10 string; message 11 string; labels 12 map; annotations 13 map;"
                       " log_path 15 string",
    "ContainerStatusResponse": "status 1 ContainerStatus; info 2 map",
    "ExecSyncRequest": "container_id 1 string; cmd 2 *string; timeout 3 int64",
    "ExecSyncResponse": "stdout 1 bytes; stderr 2 bytes; exit_code 3 int32",
    "ExecRequest": "container_id 1 string; cmd 2 *string; tty 3 bool; stdin 4 bool; stdout 5 bool; stderr 6 bool",
    "ExecResponse": "url 1 string",
    "AttachRequest": "container_id 1 string; stdin 2 bool; tty 3 bool; stdout 4 bool; stderr 5 bool",
    "AttachResponse": "url 1 string",
    "PortForwardRequest": "pod_sandbox_id 1 string; port 2 *int32",
    "PortForwardResponse": "url 1 string",
    "Image": "id 1 string; repo_tags 2 *string; repo_digests 3 *string; size 4 uint64; uid 5 Int64Value;"
             " username 6 string",
    "ImageFilter": "image 1 ImageSpec",
    "ListImagesRequest": "filter 1 ImageFilter",
    "ListImagesResponse": "images 1 *Image",
    "ImageStatusRequest": "image 1 ImageSpec; verbose 2 bool",
    "ImageStatusResponse": "image 1 Image; info 2 map",
    "AuthConfig": "username 1 string; password 2 string; auth 3 string; server_address 4 string;"
                  " identity_token 5 string; registry_token 6 string",
    "PullImageRequest": "image 1 ImageSpec; auth 2 AuthConfig; sandbox_config 3 PodSandboxConfig",
    "PullImageResponse": "image_ref 1 string",
    "RuntimeCondition": "type 1 string; status 2 bool; reason 3 string; message 4 string",
    "RuntimeStatus": "conditions 1 *RuntimeCondition",
    "StatusRequest": "verbose 1 bool",
    "StatusResponse": "status 1 RuntimeStatus; info 2 map",
}

# RPC -> service; each takes <RPC>Request and answers <RPC>Response.
_RPCS: dict[str, str] = {
    **{name: "RuntimeService" for name in (
        "Version", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus", "ListPodSandbox",
        "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer", "ListContainers",
        "ContainerStatus", "ExecSync", "Exec", "Attach", "PortForward", "Status")},
    **{name: "ImageService" for name in ("ListImages", "ImageStatus", "PullImage")},
}


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    fdp = descriptor_pb2.FileDescriptorProto(name="arktos/cri/runtime_v1.proto", package=_PACKAGE, syntax="proto3")
    for name, values in _ENUMS.items():
        enum = fdp.enum_type.add(name=name)
        for number, value in enumerate(values):
            enum.value.add(name=value, number=number)
    field_type = descriptor_pb2.FieldDescriptorProto
    for name, spec in _MESSAGES.items():
        msg = fdp.message_type.add(name=name)
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            fname, number, ftype = part.split()
            field = msg.field.add(name=fname, number=int(number), json_name=fname)
            field.label = field_type.LABEL_OPTIONAL
            if ftype == "map":
                entry = msg.nested_type.add(name="".join(w.title() for w in fname.split("_")) + "Entry")
                entry.options.map_entry = True
                for key, num in (("key", 1), ("value", 2)):
                    entry.field.add(name=key, number=num, json_name=key, label=field_type.LABEL_OPTIONAL,
                                    type=field_type.TYPE_STRING)
                field.label = field_type.LABEL_REPEATED
                field.type = field_type.TYPE_MESSAGE
                field.type_name = f".{_PACKAGE}.{name}.{entry.name}"
                continue
            if ftype.startswith("*"):
                field.label = field_type.LABEL_REPEATED
                ftype = ftype[1:]
            if ftype in _SCALARS:
                field.type = _SCALARS[ftype]
            elif ftype in _ENUMS:
                field.type, field.type_name = field_type.TYPE_ENUM, f".{_PACKAGE}.{ftype}"
            elif ftype in _MESSAGES:
                field.type, field.type_name = field_type.TYPE_MESSAGE, f".{_PACKAGE}.{ftype}"
            else:
                raise ValueError(f"CRI table: {name}.{fname} has unknown type {ftype!r}")
    return fdp


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file_descriptor())
_CLASSES: dict[str, type[Message]] = {
    name: message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}")) for name in _MESSAGES
}

SANDBOX_READY = 0
CONTAINER_STATES = {i: name.removeprefix("CONTAINER_").lower() for i, name in enumerate(_ENUMS["ContainerState"])}


def message(name: str, **fields: Any) -> Message:
    """A CRI message from keyword arguments (nested messages as dicts, maps as dicts, enums by number or name)."""
    return ParseDict(fields, _CLASSES[name]())


class CRIError(Exception):
    """A CRI call failed; `code` is the gRPC status code (NOT_FOUND for a missing container, ...)."""

    def __init__(self, method: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{method}: {details or code.name}")
        self.method, self.code, self.details = method, code, details


class CRIClient:
    """One gRPC channel to a CRI endpoint (a unix socket path or `unix:///...` address)."""

    def __init__(self, endpoint: str, *, timeout: float = 30.0) -> None:
        self.endpoint = endpoint if "://" in endpoint else f"unix://{endpoint}"
        self.timeout = timeout
        self._channel = grpc.aio.insecure_channel(
            self.endpoint, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)])
        self._stubs: dict[str, Any] = {}

    async def close(self) -> None:
        await self._channel.close()

    async def call(self, rpc: str, *, deadline: float | None = None, **fields: Any) -> Any:
        """Call `rpc` with a request built from `fields`, waiting at most `deadline` seconds (default
        the client's `timeout`); CRIError on any gRPC failure.  (`deadline`, because some requests
        have a field called `timeout`.)"""
        stub = self._stubs.get(rpc)
        if stub is None:
            service = _RPCS[rpc]
            stub = self._channel.unary_unary(
                f"/{_PACKAGE}.{service}/{rpc}",
                request_serializer=_CLASSES[f"{rpc}Request"].SerializeToString,
                response_deserializer=_CLASSES[f"{rpc}Response"].FromString,
            )
            self._stubs[rpc] = stub
        request = message(f"{rpc}Request", **fields)
        try:
            return await stub(request, timeout=deadline or self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise CRIError(rpc, exc.code(), exc.details() or "") from None
