"""apimachinery types: object and list metadata, Status, options, scalar wrappers.

ObjectMeta and OwnerReference carry Arktos's `tenant` and `hashKey`; the rest
has the shape every Kubernetes client already decodes.
"""

from __future__ import annotations

from arktos.api.schemas._dsl import INT_OR_STRING, Group

META = "io.k8s.apimachinery.pkg.apis.meta.v1"
m = Group(META, ("io.k8s.apimachinery.pkg.runtime",))
runtime = Group("io.k8s.apimachinery.pkg.runtime")
resource = Group("io.k8s.apimachinery.pkg.api.resource")
intstr = Group("io.k8s.apimachinery.pkg.util.intstr")

resource.raw("Quantity", {
    "description": (
        "An amount of a resource as a decimal number with an optional suffix: binary (Ki, Mi, Gi, "
        "Ti, Pi, Ei), decimal SI (m, k, M, G, T, P, E) or an exponent (1e3). '500m' CPU is half a "
        "core, '128Mi' memory is 128 * 2^20 bytes. Plain numbers are accepted too."
    ),
    "oneOf": [{"type": "string"}, {"type": "number"}],
})
_ios = intstr.raw("IntOrString", {
    "description": (
        "A value that is either a whole number or a string; for ports, a string names a port, "
        "for surge and budget fields it is a percentage such as '25%'."
    ),
    "format": "int-or-string",
    "oneOf": [{"type": "integer"}, {"type": "string"}],
    "x-kubernetes-int-or-string": True,
})
if _ios != INT_OR_STRING:
    raise RuntimeError("the DSL's IntOrString name is out of date")
runtime.raw("RawExtension", {
    "description": "An embedded object of any kind, kept as the client sent it.",
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
})
m.raw("Time", {
    "description": "A timestamp in RFC 3339 form with second precision, in UTC, e.g. 2024-01-31T12:00:00Z.",
    "type": "string",
    "format": "date-time",
})
m.raw("MicroTime", {
    "description": "A timestamp in RFC 3339 form with microsecond precision.",
    "type": "string",
    "format": "date-time",
})
m.raw("FieldsV1", {
    "description": "The set of fields a manager owns, as a nested map of field and key selectors.",
    "type": "object",
    "x-kubernetes-preserve-unknown-fields": True,
})
m.raw("Patch", {
    "description": "A patch document; its format is given by the request's Content-Type.",
    "type": "object",
})

m.model("ObjectMeta", "Data every stored object has: identity, ownership, labels and versioning.", """
    name                       string  Unique name within the namespace (or tenant, for kinds that are not
                                       namespaced). Required on create unless generateName is set.
    generateName               string  A prefix from which the server makes a unique name when name is empty.
    namespace                  string  Namespace the object lives in; empty for kinds that are not namespaced.
    tenant                     string  Arktos tenant that owns the object. Filled from the request path or the
                                       caller's tenant; empty for kinds above tenants, such as nodes.
    hashKey                    int64   Arktos partitioning key (0 to 2^63-1) derived from the uid when the
                                       object is created and never changed; controllers split work by its range.
    selfLink                   string  Deprecated URL of the object; not filled by this server.
    uid                        string  Identifier the server assigns at creation, unique over time and space.
    resourceVersion            string  Opaque version of the object used for optimistic concurrency and watches.
    generation                 int64   Sequence number of the desired state, bumped when the spec changes.
    creationTimestamp          Time    When the server stored the object. Read-only.
    deletionTimestamp          Time    When graceful deletion was requested; set by the server, read-only.
    deletionGracePeriodSeconds int64   Seconds left for graceful termination once deletionTimestamp is set.
    labels                     {}string  Key/value pairs used to select and group objects.
    annotations                {}string  Arbitrary, non-identifying key/value data for tools and people.
    ownerReferences            []OwnerReference @keyed:uid
                                       Objects this one depends on; when all owners are gone the garbage
                                       collector deletes it.
    finalizers                 []string @patch:merge @set
                                       Names of pending cleanup steps; deletion completes once the list is empty.
                                       Each entry is removed by the component that handles it.
    managedFields              []ManagedFieldsEntry @atomic
                                       Which manager set which fields, kept for server-side apply.
""")
m.model("OwnerReference", "A pointer to an owning object, which must be in the same namespace and tenant.", """
    apiVersion         string @req  API version of the owner.
    kind               string @req  Kind of the owner.
    name               string @req  Name of the owner.
    uid                string @req  UID of the owner; a reference to a re-created owner with a new uid is stale.
    controller         bool         True when the owner is the managing controller (at most one per object).
    blockOwnerDeletion bool         When true, a foreground deletion of the owner waits for this object.
    hashKey            int64        Arktos: the owner's metadata.hashKey, so partitioned controllers can filter
                                    dependants by their owner's range.
""", atomic=True)
# "continue" is a Python keyword but only a string here, so the table needs no escape.
m.model("ListMeta", "Metadata of a list response.", """
    selfLink           string  Deprecated; not filled.
    resourceVersion    string  Store revision the list was read at; start a watch from it to see later changes.
    continue           string  Opaque token for the next page; empty on the last page.
    remainingItemCount int64   Estimate of how many items follow this page, when the server knows.
""")
m.model("ManagedFieldsEntry", "One field manager's claim on part of an object.", """
    manager     string    Name of the manager (usually the client's user agent or --field-manager).
    operation   string    Apply or Update: how the fields came to be owned.
    apiVersion  string    Version of the object schema the field set refers to.
    time        Time      When the entry was last changed.
    fieldsType  string    Format of fieldsV1; always FieldsV1.
    fieldsV1    FieldsV1  The owned fields.
    subresource string    Subresource the write went to, such as status; empty for the main resource.
""")
m.model("LabelSelector", "A label query; all of its parts must match (they are ANDed). Empty matches everything.", """
    matchLabels      {}string                    Labels that must equal the given values.
    matchExpressions []LabelSelectorRequirement @atomic  Set-based requirements on labels.
""", atomic=True)
m.model("LabelSelectorRequirement", "One set-based requirement of a label selector.", """
    key      string @req  Label key the requirement applies to.
    operator string @req  In, NotIn, Exists or DoesNotExist.
    values   []string @atomic  Values for In and NotIn; must be empty for Exists and DoesNotExist.
""")
m.model("Condition", "A generic observation of one aspect of an object's state.", """
    type               string @req  Condition type in CamelCase, e.g. Available.
    status             string @req  True, False or Unknown.
    observedGeneration int64        metadata.generation the condition was computed from.
    lastTransitionTime Time @req    When status last changed.
    reason             string @req  CamelCase machine-readable reason for the last transition.
    message            string @req  Human-readable details; may be empty.
""")
m.kind("Status", "The outcome of a call that does not return an object, and the body of every error.", """
    metadata ListMeta     Unused; present for symmetry with lists.
    status  string        Success or Failure.
    message string        Human-readable description of the outcome.
    reason  string        Machine-readable reason in CamelCase (NotFound, AlreadyExists, Conflict, Invalid...).
    details StatusDetails Extra data about the affected object, depending on the reason.
    code    int32         HTTP status code of the response.
""", group="", version="v1", listed=False, metadata=False)
m.model("StatusDetails", "Which object a Status is about and why a request failed.", """
    name              string        Name of the object, when there is one.
    group             string        API group of the object.
    kind              string        Kind (or resource) of the object.
    uid               string        UID of the object, when known.
    causes            []StatusCause @atomic  Individual causes, e.g. one per invalid field.
    retryAfterSeconds int32         Seconds to wait before retrying, for throttling and timeouts.
""")
m.model("StatusCause", "One reason a request failed.", """
    reason  string  Machine-readable cause, e.g. FieldValueRequired.
    message string  Human-readable explanation.
    field   string  Path of the field at fault, e.g. spec.containers[0].name.
""")
_DELETE_GVKS = [
    {"group": g, "kind": "DeleteOptions", "version": v}
    for g, v in (
        ("", "v1"), ("apps", "v1"), ("autoscaling", "v1"), ("batch", "v1"), ("coordination.k8s.io", "v1"),
        ("rbac.authorization.k8s.io", "v1"), ("apiextensions.k8s.io", "v1"), ("meta.k8s.io", "v1"),
    )
]
m.model("DeleteOptions", "Options of a delete or deletecollection call, sent as the request body.", """
    apiVersion         string  Versioned schema of this object.
    kind               string  DeleteOptions.
    gracePeriodSeconds int64   Seconds before the object is deleted; 0 means now. Defaults per kind.
    preconditions      Preconditions  Must hold for the delete to proceed.
    orphanDependents   bool    Deprecated: use propagationPolicy.
    propagationPolicy  string  Orphan, Background or Foreground: what happens to dependants.
    dryRun             []string @atomic  All means process the request without persisting anything.
    ignoreStoreReadErrorWithClusterBreakingPotential bool
                               Delete an object that cannot be decoded from storage; dangerous.
""", gvk=_DELETE_GVKS)
m.model("Preconditions", "Conditions that must hold before a delete is carried out.", """
    uid             string  Delete only if the stored object has this uid.
    resourceVersion string  Delete only if the stored object has this resourceVersion.
""")
m.model("WatchEvent", "One change delivered on a watch stream.", """
    type   string       @req ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    object RawExtension @req The object after the change; for ERROR a Status; for BOOKMARK only its
                             resourceVersion is meaningful.
""", gvk=[{"group": "", "kind": "WatchEvent", "version": "v1"}])

# Discovery documents.
m.kind("APIVersions", "The core API versions the server serves, answered at /api.", """
    versions                   []string @req @atomic  Served versions of the core group.
    serverAddressByClientCIDRs []ServerAddressByClientCIDR @atomic
                                         Server address to use, by client network.
""", group="", version="v1", listed=False, metadata=False)
m.model("ServerAddressByClientCIDR", "Which server address a client in a network should use.", """
    clientCIDR    string @req  Client network, e.g. 0.0.0.0/0.
    serverAddress string @req  host:port to reach the server from that network.
""")
m.kind("APIGroupList", "Every API group the server serves, answered at /apis.", """
    groups []APIGroup @req @atomic  The groups.
""", group="", version="v1", listed=False, metadata=False)
m.kind("APIGroup", "One API group, its versions and the version clients should prefer.", """
    name             string @req  Group name.
    versions         []GroupVersionForDiscovery @req @atomic  Served versions.
    preferredVersion GroupVersionForDiscovery  Version clients should use when they have no preference.
    serverAddressByClientCIDRs []ServerAddressByClientCIDR @atomic  Server address by client network.
""", group="", version="v1", listed=False, metadata=False)
m.model("GroupVersionForDiscovery", "One served version of a group.", """
    groupVersion string @req  group/version, or just the version for the core group.
    version      string @req  The version.
""")
m.kind("APIResourceList", "The resources of one group version, answered at /api/v1 or /apis/<g>/<v>.", """
    groupVersion string @req  group/version the resources belong to.
    resources    []APIResource @req @atomic  The resources and subresources.
""", group="", version="v1", listed=False, metadata=False)
m.model("APIResource", "One resource (or subresource) as discovery describes it.", """
    name               string @req  Plural resource name, or resource/subresource.
    singularName       string @req  Singular name, used by kubectl for display.
    namespaced         bool @req    Whether objects live in namespaces.
    group              string       Group of the kind when it differs from the list's (subresources).
    version            string       Version of the kind when it differs from the list's.
    kind               string @req  Kind of the objects.
    verbs              []string @req  Allowed verbs: get, list, watch, create, update, patch, delete...
    shortNames         []string @atomic  Abbreviations kubectl accepts.
    categories         []string @atomic  Groupings such as all.
    storageVersionHash string       Hash of the version objects are stored in; changes on a storage migration.
""")
