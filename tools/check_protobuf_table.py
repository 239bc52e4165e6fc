"""Compare arktos/api/protobuf.py's field table with the protobuf descriptors compiled into a kubectl binary.

Go binaries built from k8s.io/api carry each generated.proto as a gzipped
FileDescriptorProto; this finds them, and for every message of the table
reports field numbers whose name, type or repetition differ, and fields the
binary knows that the table lacks (new in that Kubernetes release).  Pointer
(`?`) and inline (`^`) marks are Go facts the descriptors do not hold: they
are not checked here.

    .venv/bin/python tools/check_protobuf_table.py /usr/lib/google-cloud-sdk/bin/kubectl.1.33
"""

from __future__ import annotations

import re
import sys
import zlib

from google.protobuf import descriptor_pb2 as D

sys.path.insert(0, ".")
from arktos.api.protobuf import _TABLE

T = D.FieldDescriptorProto
SCALARS = {T.TYPE_STRING: "string", T.TYPE_BYTES: "bytes", T.TYPE_BOOL: "bool", T.TYPE_INT32: "int32",
           T.TYPE_INT64: "int64", T.TYPE_DOUBLE: "double", T.TYPE_FLOAT: "float"}
SPECIAL = {"meta.v1.Time": "Time", "meta.v1.MicroTime": "MicroTime", "resource.Quantity": "Quantity",
           "intstr.IntOrString": "IntOrString", "meta.v1.FieldsV1": "FieldsV1",
           "authentication.v1.ExtraValue": "ExtraValue", "meta.v1.Duration": "Duration"}
# JSON names that differ from the proto field names.
JSON_NAMES = {("BoundObjectReference", "uID"): "uid"}
PACKAGES = ("meta.v1", "core.v1", "apps.v1", "batch.v1", "rbac.v1", "policy.v1", "scheduling.v1", "networking.v1",
            "coordination.v1", "authentication.v1", "authorization.v1", "autoscaling.v1", "autoscaling.v2")


def descriptors(binary: str) -> dict[str, D.DescriptorProto]:
    with open(binary, "rb") as f:
        data = f.read()
    messages: dict[str, D.DescriptorProto] = {}
    for match in re.finditer(rb"\x1f\x8b\x08\x00\x00(?:\x00|\x09)", data):
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data[match.start():match.start() + (1 << 20)])
        except zlib.error:
            continue
        if b"generated.proto" not in raw[:200]:
            continue
        fd = D.FileDescriptorProto.FromString(raw)
        pkg = fd.package.replace("k8s.io.api.", "").replace("k8s.io.apimachinery.pkg.apis.", "").replace(
            "k8s.io.apimachinery.pkg.api.", "").replace("k8s.io.apimachinery.pkg.util.", "")

        def walk(prefix: str, m: D.DescriptorProto) -> None:
            messages[f"{prefix}.{m.name}"] = m
            for n in m.nested_type:
                walk(f"{prefix}.{m.name}", n)

        for m in fd.message_type:
            walk(pkg, m)
    return messages


def short(type_name: str) -> str:
    for prefix in ("k8s.io.api.", "k8s.io.apimachinery.pkg.apis.", "k8s.io.apimachinery.pkg.api.",
                   "k8s.io.apimachinery.pkg.util.", "k8s.io.apimachinery.pkg."):
        type_name = type_name.lstrip(".").replace(prefix, "")
    return SPECIAL.get(type_name, type_name.rsplit(".", 1)[-1])


def find(messages: dict[str, D.DescriptorProto], name: str) -> tuple[str, D.DescriptorProto] | None:
    base, packages = name, PACKAGES
    if name.endswith("V1") and name.startswith("HorizontalPodAutoscaler"):
        base, packages = name[:-2], ("autoscaling.v1",)
    elif name.startswith(("HorizontalPodAutoscaler", "HPA", "Metric")) or "Metric" in name:
        packages = ("autoscaling.v2",)
    for pkg in packages:
        if f"{pkg}.{base}" in messages:
            return pkg, messages[f"{pkg}.{base}"]
    return None


def main(binary: str) -> int:
    messages = descriptors(binary)
    problems = 0
    for name, fields in _TABLE.items():
        found = find(messages, name)
        if found is None:
            print(f"{name}: not in {binary}")
            problems += 1
            continue
        pkg, desc = found
        for f in desc.field:
            json_name = JSON_NAMES.get((name, f.name), f.name)
            ours = fields.get(f.number)
            if f.type == T.TYPE_MESSAGE:
                sub = messages.get(short_full(f.type_name))
                if sub is not None and sub.options.map_entry:
                    value = sub.field[1]
                    kind, repeated, is_map = SCALARS.get(value.type) or short(value.type_name), False, True
                else:
                    kind, repeated, is_map = short(f.type_name), f.label == T.LABEL_REPEATED, False
            else:
                kind, repeated, is_map = SCALARS[f.type], f.label == T.LABEL_REPEATED, False
            if pkg == "autoscaling.v1" and kind.startswith("HorizontalPodAutoscaler"):
                kind += "V1"
            if ours is None:
                print(f"{name}: field {f.number} {json_name} ({kind}) is missing from the table")
                problems += 1
            elif (ours.name, ours.kind, ours.repeated, ours.map) != (json_name, kind, repeated, is_map):
                print(f"{name}: field {f.number} is {json_name} {kind} (repeated={repeated}, map={is_map}) in "
                      f"{pkg}, the table has {ours.name} {ours.kind} (repeated={ours.repeated}, map={ours.map})")
                problems += 1
        extra = set(fields) - {f.number for f in desc.field}
        for num in sorted(extra):
            print(f"{name}: field {num} ({fields[num].name}) of the table is not in {binary}")
            problems += 1
    print(f"{len(_TABLE)} messages checked, {problems} difference(s)")
    return 1 if problems else 0


def short_full(type_name: str) -> str:
    name = type_name.lstrip(".")
    for prefix in ("k8s.io.api.", "k8s.io.apimachinery.pkg.apis.", "k8s.io.apimachinery.pkg.api.",
                   "k8s.io.apimachinery.pkg.util."):
        name = name.replace(prefix, "")
    return name


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"))
