"""Arktos's own kinds: Tenant, Action (and the CustomAction request), ControllerInstance."""

from __future__ import annotations

from arktos.api.schemas._dsl import Group
from arktos.api.schemas.pod import CORE, IMPORTS

a = Group("io.arktos.api.core.v1", (CORE, *IMPORTS))

a.kind("Tenant", "A tenant: the level above namespaces that isolates one customer's objects.", """
    spec   TenantSpec    Storage placement and finalizers of the tenant.
    status TenantStatus  Whether the tenant is active or being deleted.
""", group="", version="v1")
a.model("TenantSpec", "The desired state of a tenant.", """
    finalizers       []string @atomic  Cleanup steps that must finish before the tenant is removed;
                                       the tenant controller deletes every object of the tenant first.
    storageClusterId string  Storage cluster that holds the tenant's data.
""")
a.model("TenantStatus", "The observed state of a tenant.", """
    phase string @enum:Active|Terminating  Lifecycle phase.
""")

a.kind("Action", "A request to act on a VM pod (reboot, snapshot, restore), carried out by the node agent.",
       """
    spec   ActionSpec    Which pod, which node, and what to do.
    status ActionStatus  Outcome, written by the node agent.
""", group="", version="v1")
a.model("ActionSpec", "What an action should do and where.", """
    nodeName       string  Node that runs the pod; the node agent there watches for the action.
    podName        string  Name of the target pod.
    podID          string  UID of the target pod.
    rebootAction   RebootAction    Reboot the VM.
    snapshotAction SnapshotAction  Take a snapshot of the VM.
    restoreAction  RestoreAction   Restore the VM from a snapshot.
""")
a.model("RebootAction", "Parameters of a reboot.", """
    delayInSeconds int32  Seconds to wait before rebooting.
""")
a.model("SnapshotAction", "Parameters of a snapshot.", """
    snapshotName string  Name to give the snapshot.
""")
a.model("RestoreAction", "Parameters of a restore.", """
    snapshotID string  Snapshot to restore.
""")
a.model("ActionStatus", "The outcome of an action.", """
    complete       bool    Whether the node agent has finished the action.
    error          string  Why the action failed; empty on success.
    message        string  How the action was carried out, when there is more to tell than success
                           (a reboot the guest did itself, or a VM reset because it ignored the request).
    podName        string  Name of the pod acted on.
    podID          string  UID of the pod acted on.
    rebootStatus   RebootStatus    Outcome of a reboot.
    snapshotStatus SnapshotStatus  Outcome of a snapshot.
    restoreStatus  RestoreStatus   Outcome of a restore.
""")
a.model("RebootStatus", "Outcome of a reboot.", """
    rebootSuccessful bool  Whether the VM rebooted.
""")
a.model("SnapshotStatus", "Outcome of a snapshot.", """
    snapshotID string  ID of the snapshot taken.
""")
a.model("RestoreStatus", "Outcome of a restore.", """
    restoreSuccessful bool  Whether the VM was restored.
""")

a.kind("CustomAction", "The body posted to pods/{name}/action; the server turns it into an Action.", """
    operation      string @req @enum:reboot|snapshot|restore  What to do.
    rebootParams   RebootParams    Parameters of a reboot.
    snapshotParams SnapshotParams  Parameters of a snapshot.
    restoreParams  RestoreParams   Parameters of a restore.
""", group="", version="v1", listed=False)
a.model("RebootParams", "Parameters of a requested reboot.", """
    delayInSeconds int32  Seconds to wait before rebooting.
""")
a.model("SnapshotParams", "Parameters of a requested snapshot.", """
    snapshotName string  Name to give the snapshot.
""")
a.model("RestoreParams", "Parameters of a requested restore.", """
    snapshotID string  Snapshot to restore.
""")

a.kind("ControllerInstance", "One running instance of a partitioned workload controller and its share of work.",
       """
    controllerType string  Controller type, e.g. replicaset or deployment.
    controllerKey  int64   Upper bound of the hashKey range the instance owns; the range starts just
                           above the next lower instance's key.
    workloadNum    int32   Number of objects the instance currently manages.
    isLocked       bool    True while the instance is still taking over its range and must not act.
""", group="", version="v1")
