"""Workloads (apps/v1), the Scale subresource (autoscaling/v1), leases (coordination/v1)."""

from __future__ import annotations

from arktos.api.schemas._dsl import Group
from arktos.api.schemas.pod import CORE, IMPORTS

apps = Group("io.k8s.api.apps.v1", (CORE, *IMPORTS))

apps.kind("Deployment", "Declarative updates of a replicated, stateless set of pods through ReplicaSets.", """
    spec   DeploymentSpec    Desired pods and how to roll out changes to them.
    status DeploymentStatus  Progress of the rollout.
""", group="apps", version="v1")
apps.model("DeploymentSpec", "The desired state of a deployment.", """
    replicas        int32  Number of pods wanted; defaults to 1.
    selector        LabelSelector @req  Pods the deployment manages; must match the template's labels
                           and cannot change once set.
    template        PodTemplateSpec @req  Pod each replica is made from.
    strategy        DeploymentStrategy @patch:retainKeys  How old pods are replaced by new ones.
    minReadySeconds int32  Seconds a new pod must be ready before it counts as available.
    revisionHistoryLimit int32  Old ReplicaSets kept for rollback; defaults to 10.
    paused          bool   Stop rolling out template changes while true.
    progressDeadlineSeconds int32  Seconds without progress before the rollout is reported as
                           failed; defaults to 600.
""")
apps.model("DeploymentStrategy", "How a deployment replaces pods.", """
    type          string @enum:Recreate|RollingUpdate  Recreate kills all old pods first;
                         RollingUpdate (the default) replaces them gradually.
    rollingUpdate RollingUpdateDeployment  Surge and unavailability limits, for RollingUpdate.
""")
apps.model("RollingUpdateDeployment", "Pace of a rolling update.", """
    maxUnavailable IntOrString  Pods that may be unavailable during the update, a number or a
                               percentage of replicas; defaults to 25%.
    maxSurge       IntOrString  Pods that may be created above replicas, a number or a percentage;
                               defaults to 25%.
""")
apps.model("DeploymentStatus", "The observed state of a deployment.", """
    observedGeneration  int64  Generation the controller last acted on.
    replicas            int32  Pods targeted by the deployment (old and new).
    updatedReplicas     int32  Pods with the current template.
    readyReplicas       int32  Pods that are ready.
    availableReplicas   int32  Pods ready for at least minReadySeconds.
    unavailableReplicas int32  Pods still needed for full availability.
    terminatingReplicas int32  Pods being deleted.
    conditions          []DeploymentCondition @keyed:type  Available, Progressing, ReplicaFailure.
    collisionCount      int32  Counter used to avoid ReplicaSet name collisions.
""")
apps.model("DeploymentCondition", "One condition of a deployment.", """
    type               string @req  Condition type.
    status             string @req  True, False or Unknown.
    lastUpdateTime     Time    When the condition was last updated.
    lastTransitionTime Time    When status last changed.
    reason             string  CamelCase reason.
    message            string  Details.
""")

apps.kind("ReplicaSet", "Keeps a number of identical pods running.", """
    spec   ReplicaSetSpec    Desired pods.
    status ReplicaSetStatus  Pods observed.
""", group="apps", version="v1")
apps.model("ReplicaSetSpec", "The desired state of a replica set.", """
    replicas        int32  Number of pods wanted; defaults to 1.
    minReadySeconds int32  Seconds a new pod must be ready before it counts as available.
    selector        LabelSelector @req  Pods the replica set manages; must match the template's labels.
    template        PodTemplateSpec  Pod each replica is made from.
""")
apps.model("ReplicaSetStatus", "The observed state of a replica set.", """
    replicas             int32 @req  Pods currently matching.
    fullyLabeledReplicas int32  Pods whose labels match the template's.
    readyReplicas        int32  Pods that are ready.
    availableReplicas    int32  Pods ready for at least minReadySeconds.
    terminatingReplicas  int32  Pods being deleted.
    observedGeneration   int64  Generation the controller last acted on.
    conditions           []ReplicaSetCondition @keyed:type  Current conditions.
""")
apps.model("ReplicaSetCondition", "One condition of a replica set.", """
    type               string @req  Condition type, e.g. ReplicaFailure.
    status             string @req  True, False or Unknown.
    lastTransitionTime Time    When status last changed.
    reason             string  CamelCase reason.
    message            string  Details.
""")

apps.kind("DaemonSet", "Runs one copy of a pod on every eligible node.", """
    spec   DaemonSetSpec    Desired pods and how to update them.
    status DaemonSetStatus  Pods observed on the nodes.
""", group="apps", version="v1")
apps.model("DaemonSetSpec", "The desired state of a daemon set.", """
    selector        LabelSelector @req  Pods the daemon set manages; must match the template's labels
                           and cannot change once set.
    template        PodTemplateSpec @req  Pod run on each eligible node.
    updateStrategy  DaemonSetUpdateStrategy  How old pods are replaced after a template change.
    minReadySeconds int32  Seconds a new pod must be ready before it counts as available.
    revisionHistoryLimit int32  Old revisions kept for rollback; defaults to 10.
""")
apps.model("DaemonSetUpdateStrategy", "How a daemon set replaces pods.", """
    type          string @enum:OnDelete|RollingUpdate  RollingUpdate (the default) or OnDelete.
    rollingUpdate RollingUpdateDaemonSet  Pace of a rolling update.
""")
apps.model("RollingUpdateDaemonSet", "Pace of a daemon set's rolling update.", """
    maxUnavailable IntOrString  Nodes whose pod may be unavailable during the update; defaults to 1.
    maxSurge       IntOrString  Nodes that may run an old and a new pod at once; defaults to 0.
""")
apps.model("DaemonSetStatus", "The observed state of a daemon set.", """
    currentNumberScheduled int32 @req  Nodes running at least one daemon pod that should.
    numberMisscheduled     int32 @req  Nodes running a daemon pod that should not.
    desiredNumberScheduled int32 @req  Nodes that should run the daemon pod.
    numberReady            int32 @req  Nodes whose daemon pod is ready.
    observedGeneration     int64  Generation the controller last acted on.
    updatedNumberScheduled int32  Nodes running the updated daemon pod.
    numberAvailable        int32  Nodes whose daemon pod is available.
    numberUnavailable      int32  Nodes whose daemon pod is missing or unavailable.
    collisionCount         int32  Counter used to avoid revision name collisions.
    conditions             []DaemonSetCondition @keyed:type  Current conditions.
""")
apps.model("DaemonSetCondition", "One condition of a daemon set.", """
    type               string @req  Condition type.
    status             string @req  True, False or Unknown.
    lastTransitionTime Time    When status last changed.
    reason             string  CamelCase reason.
    message            string  Details.
""")

apps.kind("StatefulSet", "Pods with stable names and storage, created and updated in order.", """
    spec   StatefulSetSpec    Desired pods, their claims and update policy.
    status StatefulSetStatus  Pods observed.
""", group="apps", version="v1")
apps.model("StatefulSetSpec", "The desired state of a stateful set.", """
    replicas        int32  Number of pods wanted; defaults to 1.
    selector        LabelSelector @req  Pods the stateful set manages; must match the template's labels
                           and cannot change once set.
    template        PodTemplateSpec @req  Pod each ordinal is made from.
    volumeClaimTemplates []PersistentVolumeClaim @atomic  Claims each pod gets, named
                           <claim>-<set>-<ordinal>.
    serviceName     string  Governing headless service; pods get <pod>.<serviceName> names.
    podManagementPolicy string @enum:OrderedReady|Parallel  Create and delete pods one at a time
                           (OrderedReady, the default) or all at once (Parallel).
    updateStrategy  StatefulSetUpdateStrategy  How pods are replaced after a template change.
    revisionHistoryLimit int32  Old revisions kept; defaults to 10.
    minReadySeconds int32  Seconds a new pod must be ready before it counts as available.
    persistentVolumeClaimRetentionPolicy StatefulSetPersistentVolumeClaimRetentionPolicy  What happens
                           to the claims when the set is deleted or scaled down.
    ordinals        StatefulSetOrdinals  Where ordinals start.
""")
apps.model("StatefulSetUpdateStrategy", "How a stateful set replaces pods.", """
    type          string @enum:OnDelete|RollingUpdate  RollingUpdate (the default) or OnDelete.
    rollingUpdate RollingUpdateStatefulSetStrategy  Partition of a rolling update.
""")
apps.model("RollingUpdateStatefulSetStrategy", "Partition of a stateful set's rolling update.", """
    partition      int32  Ordinals at or above it are updated; defaults to 0.
    maxUnavailable IntOrString  Pods that may be unavailable during the update.
""")
apps.model("StatefulSetPersistentVolumeClaimRetentionPolicy", "Claim retention of a stateful set.", """
    whenDeleted string  Retain (default) or Delete.
    whenScaled  string  Retain (default) or Delete.
""")
apps.model("StatefulSetOrdinals", "Ordinal numbering of a stateful set.", """
    start int32  The first ordinal; defaults to 0.
""")
apps.model("StatefulSetStatus", "The observed state of a stateful set.", """
    observedGeneration int64  Generation the controller last acted on.
    replicas           int32 @req  Pods created.
    readyReplicas      int32  Pods that are ready.
    currentReplicas    int32  Pods at currentRevision.
    updatedReplicas    int32  Pods at updateRevision.
    availableReplicas  int32  Pods ready for at least minReadySeconds.
    currentRevision    string  Revision of the pods before the update.
    updateRevision     string  Revision the pods are being updated to.
    collisionCount     int32  Counter used to avoid revision name collisions.
    conditions         []StatefulSetCondition @keyed:type  Current conditions.
""")
apps.model("StatefulSetCondition", "One condition of a stateful set.", """
    type               string @req  Condition type.
    status             string @req  True, False or Unknown.
    lastTransitionTime Time    When status last changed.
    reason             string  CamelCase reason.
    message            string  Details.
""")

apps.kind("ControllerRevision", "An immutable snapshot of a DaemonSet's or StatefulSet's pod template; "
          "rollout history and undo read them.", """
    data     any  The state of the revision: a patch that restores the template.
    revision int64 @req  Revision number, increasing per owner.
""", group="apps", version="v1")

autoscaling = Group("io.k8s.api.autoscaling.v1", IMPORTS)
autoscaling.kind("Scale", "The replica count of a scalable object, read and written through its scale "
                 "subresource.", """
    spec   ScaleSpec    Wanted replicas.
    status ScaleStatus  Current replicas.
""", group="autoscaling", version="v1", listed=False)
autoscaling.model("ScaleSpec", "Wanted size of a scalable object.", """
    replicas int32  Number of replicas wanted.
""")
autoscaling.model("ScaleStatus", "Current size of a scalable object.", """
    replicas int32 @req  Number of replicas observed.
    selector string  Label selector of the pods, in query string form.
""")

coordination = Group("io.k8s.api.coordination.v1", IMPORTS)
coordination.kind("Lease", "A lease held by one party at a time: node heartbeats and leader election.", """
    spec LeaseSpec  Holder and timing of the lease.
""", group="coordination.k8s.io", version="v1")
coordination.model("LeaseSpec", "Holder and timing of a lease.", """
    holderIdentity       string     Who holds the lease.
    leaseDurationSeconds int32      Seconds after renewTime before others may take the lease.
    acquireTime          MicroTime  When the current holder acquired it.
    renewTime            MicroTime  When the holder last renewed it.
    leaseTransitions     int32      Number of times the holder changed.
    strategy             string     Strategy for picking a leader in coordinated elections.
    preferredHolder      string     Holder that should take over next, in coordinated elections.
""")
