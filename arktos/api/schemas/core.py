"""The other core/v1 kinds: namespaces, nodes, events, config, services, storage, bindings."""

from __future__ import annotations

from arktos.api.schemas._dsl import Group
from arktos.api.schemas.pod import CORE, IMPORTS

c = Group(CORE, IMPORTS)

c.model("ObjectReference", "A reference to another object, by kind and name.", """
    kind            string  Kind of the object.
    tenant          string  Arktos: tenant of the object.
    namespace       string  Namespace of the object.
    name            string  Name of the object.
    uid             string  UID of the object.
    apiVersion      string  API version of the object.
    resourceVersion string  Version of the object the reference was made at.
    fieldPath       string  A part of the object, e.g. spec.containers{app} for one container.
""", atomic=True)
c.model("TypedLocalObjectReference", "An object of a given kind in the same namespace.", """
    apiGroup string  API group of the kind; empty for the core group.
    kind     string @req  Kind of the object.
    name     string @req  Name of the object.
""", atomic=True)
c.model("TypedObjectReference", "An object of a given kind, possibly in another namespace.", """
    apiGroup  string  API group of the kind; empty for the core group.
    kind      string @req  Kind of the object.
    name      string @req  Name of the object.
    namespace string  Namespace of the object; the referrer's when empty.
""")

# Namespaces.
c.kind("Namespace", "A scope for names within a tenant; deleting it deletes everything in it.", """
    spec   NamespaceSpec    Finalizers that must run before the namespace disappears.
    status NamespaceStatus  Whether the namespace is active or being deleted.
""", group="", version="v1")
c.model("NamespaceSpec", "The desired state of a namespace.", """
    finalizers []string @atomic  Cleanup steps that must finish before the namespace is removed.
""")
c.model("NamespaceStatus", "The observed state of a namespace.", """
    phase      string @enum:Active|Terminating  Lifecycle phase.
    conditions []NamespaceCondition @keyed:type  Progress of the deletion.
""")
c.model("NamespaceCondition", "One condition of a namespace.", """
    type               string @req  Condition type, e.g. NamespaceContentRemaining.
    status             string @req  True, False or Unknown.
    lastTransitionTime Time    When status last changed.
    reason             string  CamelCase reason.
    message            string  Details.
""")

# Nodes.
c.kind("Node", "A machine that runs pods; registered by its node agent on a resource partition.", """
    spec   NodeSpec    How the node is configured for scheduling.
    status NodeStatus  Capacity, conditions and addresses the node agent reports.
""", group="", version="v1")
c.model("NodeSpec", "The desired state of a node.", """
    podCIDR       string  Pod address range assigned to the node.
    podCIDRs      []string @patch:merge @set  Pod address ranges, one per IP family.
    providerID    string  ID of the machine at its cloud provider.
    unschedulable bool    Keep new pods off the node (kubectl cordon).
    taints        []Taint @atomic  Taints that repel pods without a matching toleration.
    configSource  object  Deprecated dynamic configuration source.
    externalID    string  Deprecated.
""")
c.model("Taint", "A mark on a node that repels pods which do not tolerate it.", """
    key       string @req  Taint key.
    value     string  Taint value.
    effect    string @req @enum:NoSchedule|PreferNoSchedule|NoExecute  What happens to
                     pods that do not tolerate it.
    timeAdded Time    When a NoExecute taint was added.
""")
c.model("NodeStatus", "The observed state of a node.", """
    capacity        {}Quantity  Total resources of the node.
    allocatable     {}Quantity  Resources available to pods.
    phase           string  Deprecated.
    conditions      []NodeCondition @keyed:type  Ready, MemoryPressure, DiskPressure, PIDPressure, ...
    addresses       []NodeAddress @keyed:type  Addresses of the node.
    daemonEndpoints NodeDaemonEndpoints  Ports of the node agent.
    nodeInfo        NodeSystemInfo  Versions and IDs of the node's software.
    images          []ContainerImage @atomic  Images present on the node.
    volumesInUse    []string @atomic  Volumes in use by pods on the node.
    volumesAttached []AttachedVolume @atomic  Volumes attached to the node.
    config          object  Status of dynamic configuration.
    runtimeHandlers []NodeRuntimeHandler @atomic  Runtime handlers the node offers (e.g. a container
                    runtime and a VM runtime).
    features        object  Optional features the node supports.
""")
c.model("NodeCondition", "One condition of a node.", """
    type               string @req  Condition type, e.g. Ready.
    status             string @req  True, False or Unknown.
    lastHeartbeatTime  Time    When the node agent last confirmed the condition.
    lastTransitionTime Time    When status last changed.
    reason             string  CamelCase reason.
    message            string  Details.
""")
c.model("NodeAddress", "One address of a node.", """
    type    string @req  Hostname, InternalIP, ExternalIP, InternalDNS or ExternalDNS.
    address string @req  The address.
""")
c.model("NodeDaemonEndpoints", "Ports of daemons running on a node.", """
    kubeletEndpoint DaemonEndpoint  Port of the node agent.
""")
c.model("DaemonEndpoint", "A daemon's port.", """
    Port int32 @req  Port number.
""")
c.model("NodeSystemInfo", "Identifiers and versions of a node's software.", """
    machineID               string @req  Machine ID.
    systemUUID              string @req  System UUID.
    bootID                  string @req  Boot ID; changes on every reboot.
    kernelVersion           string @req  Kernel version.
    osImage                 string @req  OS image name.
    containerRuntimeVersion string @req  Runtime name and version.
    kubeletVersion          string @req  Node agent version.
    kubeProxyVersion        string @req  Deprecated.
    operatingSystem         string @req  linux or windows.
    architecture            string @req  CPU architecture.
    swap                    object  Swap information.
""")
c.model("ContainerImage", "An image on a node.", """
    names     []string @atomic  Names and digests of the image.
    sizeBytes int64    Size of the image.
""")
c.model("AttachedVolume", "A volume attached to a node.", """
    name       string @req  Name of the volume.
    devicePath string @req  Where the device appears on the node.
""")
c.model("NodeRuntimeHandler", "A runtime handler of a node.", """
    name     string  Handler name; empty for the default handler.
    features object  Features the handler supports.
""")

# Events.
c.kind("Event", "A report of something that happened to an object.", """
    involvedObject ObjectReference @req  The object the event is about.
    reason         string  Short CamelCase reason, e.g. Scheduled or BackOff.
    message        string  Human-readable description.
    source         EventSource  Component that reported it.
    firstTimestamp Time    When the event was first seen.
    lastTimestamp  Time    When it was last seen.
    count          int32   How many times it was seen.
    type           string  Normal or Warning.
    eventTime      MicroTime  When it happened, with microseconds.
    series         EventSeries  Data about a series of repeats.
    action         string  What was done or failed, e.g. Binding.
    related        ObjectReference  A second object involved.
    reportingComponent string  Component that reported it, e.g. default-scheduler.
    reportingInstance  string  Instance of that component, e.g. a host name.
""", group="", version="v1")
c.model("EventSource", "Where an event came from.", """
    component string  Reporting component.
    host      string  Node name, when the reporter runs on a node.
""")
c.model("EventSeries", "Repeats of an event.", """
    count            int32      Number of repeats.
    lastObservedTime MicroTime  When it was last seen.
""")

# Configuration.
c.kind("ConfigMap", "Non-secret configuration data as key/value pairs.", """
    data       {}string  UTF-8 values by key.
    binaryData {}bytes   Binary values by key, base64 in JSON.
    immutable  bool      When true the data can no longer change.
""", group="", version="v1")
c.kind("Secret", "Sensitive data such as passwords, tokens and keys.", """
    data       {}bytes   Values by key, base64 in JSON.
    stringData {}string  Write-only convenience: plain values merged into data on write.
    type       string    Type used to check the content, e.g. Opaque or kubernetes.io/tls.
    immutable  bool      When true the data can no longer change.
""", group="", version="v1")
c.kind("ServiceAccount", "An identity for processes running in pods.", """
    secrets          []ObjectReference @keyed:name  Secrets pods of this account may use.
    imagePullSecrets []LocalObjectReference @atomic  Registry credentials added to the account's pods.
    automountServiceAccountToken bool  Whether pods get the account token mounted by default.
""", group="", version="v1")

# Services.
c.kind("Service", "A stable name and virtual address in front of a set of pods.", """
    spec   ServiceSpec    Ports, selector and type of the service.
    status ServiceStatus  Load balancer state.
""", group="", version="v1")
c.model("ServiceSpec", "The desired state of a service.", """
    ports          []ServicePort @merge:port @map:port,protocol  Ports the service exposes.
    selector       {}string @mapatomic  Pods with these labels receive the traffic.
    clusterIP      string   Virtual IP; None makes the service headless; allocated when empty.
    clusterIPs     []string @atomic  Virtual IPs, one per IP family.
    type           string @enum:ClusterIP|NodePort|LoadBalancer|ExternalName  How the service is
                   exposed; defaults to ClusterIP.
    externalIPs    []string @atomic  Extra addresses on which nodes accept traffic for the service.
    sessionAffinity string @enum:ClientIP|None  Keep a client on one pod; defaults to None.
    loadBalancerIP string   Deprecated: requested load balancer address.
    loadBalancerSourceRanges []string @atomic  Client ranges allowed through the load balancer.
    externalName   string   DNS name returned as a CNAME, for ExternalName services.
    externalTrafficPolicy string @enum:Cluster|Local  Route external traffic to local pods only, or
                   to all.
    healthCheckNodePort int32  Node port answering health checks, for Local traffic policy.
    publishNotReadyAddresses bool  Publish addresses of pods that are not ready.
    sessionAffinityConfig SessionAffinityConfig  Settings of session affinity.
    ipFamilies     []string @atomic  IPv4, IPv6 or both, in order.
    ipFamilyPolicy string @enum:SingleStack|PreferDualStack|RequireDualStack  How many IP families.
    allocateLoadBalancerNodePorts bool  Whether LoadBalancer services get node ports.
    loadBalancerClass string  Load balancer implementation to use.
    internalTrafficPolicy string @enum:Cluster|Local  Route in-cluster traffic to local pods only.
    trafficDistribution string  Preference for how traffic is spread, e.g. PreferClose.
""")
c.model("ServicePort", "One port of a service.", """
    name        string  Name of the port; required when there are several.
    protocol    string @enum:TCP|UDP|SCTP @default:TCP  Protocol; defaults to TCP.
    appProtocol string  Application protocol, e.g. http or kubernetes.io/h2c.
    port        int32 @req  Port the service listens on.
    targetPort  IntOrString  Pod port number or name traffic goes to; defaults to port.
    nodePort    int32   Port on every node, for NodePort and LoadBalancer services.
""")
c.model("ServiceStatus", "The observed state of a service.", """
    loadBalancer LoadBalancerStatus  Load balancer addresses.
    conditions   []Condition @keyed:type  Current conditions.
""")
c.model("LoadBalancerStatus", "The state of a load balancer.", """
    ingress []LoadBalancerIngress @atomic  Entry points of the load balancer.
""")
c.model("LoadBalancerIngress", "An entry point of a load balancer.", """
    ip       string  IP address.
    hostname string  DNS name.
    ipMode   string  VIP or Proxy.
    ports    []PortStatus @atomic  Status of each port.
""")
c.model("PortStatus", "The status of one port.", """
    port     int32 @req  Port number.
    protocol string @req  Protocol.
    error    string  CamelCase error, when the port has a problem.
""")
c.model("SessionAffinityConfig", "Settings of session affinity.", """
    clientIP ClientIPConfig  Settings of ClientIP affinity.
""")
c.model("ClientIPConfig", "Settings of ClientIP session affinity.", """
    timeoutSeconds int32  How long a client sticks to a pod; defaults to 10800.
""")
c.kind("Endpoints", "The addresses behind a service.", """
    subsets []EndpointSubset @atomic  Groups of addresses sharing the same ports.
""", group="", version="v1")
c.model("EndpointSubset", "Addresses that share a set of ports.", """
    addresses         []EndpointAddress @atomic  Ready addresses.
    notReadyAddresses []EndpointAddress @atomic  Addresses not ready yet.
    ports             []EndpointPort @atomic  Ports of the addresses.
""")
c.model("EndpointAddress", "One address behind a service.", """
    ip        string @req  IP address.
    hostname  string  Hostname of the endpoint.
    nodeName  string  Node hosting the endpoint.
    targetRef ObjectReference  The pod (or other object) behind the address.
""", atomic=True)
c.model("EndpointPort", "One port of an endpoint subset.", """
    name        string  Name of the port, matching the service port name.
    port        int32 @req  Port number.
    protocol    string @enum:TCP|UDP|SCTP @default:TCP  Protocol; defaults to TCP.
    appProtocol string  Application protocol.
""", atomic=True)

# Storage.
c.kind("PersistentVolume", "A piece of storage provisioned in a tenant, to be bound to a claim.", """
    spec   PersistentVolumeSpec    Capacity, access modes and source of the volume.
    status PersistentVolumeStatus  Binding phase.
""", group="", version="v1")
c.model("PersistentVolumeSpec", "The description of a persistent volume.", """
    capacity      {}Quantity  Size of the volume, as storage: 10Gi.
    accessModes   []string @atomic  ReadWriteOnce, ReadOnlyMany, ReadWriteMany, ReadWriteOncePod.
    claimRef      ObjectReference  Claim the volume is bound to.
    persistentVolumeReclaimPolicy string @enum:Retain|Recycle|Delete  What happens when it is released.
    storageClassName string  StorageClass the volume belongs to.
    mountOptions  []string @atomic  Mount options.
    volumeMode    string @enum:Block|Filesystem  Whether the volume is a filesystem or a raw block device.
    nodeAffinity  VolumeNodeAffinity  Nodes from which the volume can be reached.
    volumeAttributesClassName string  VolumeAttributesClass of the volume.
    hostPath      HostPathVolumeSource  A directory on a node (single-node testing only).
    local         LocalVolumeSource  A disk, partition or directory of one node.
    nfs           NFSVolumeSource  An NFS export.
    csi           object  A volume managed by a CSI driver.
    iscsi         object  An iSCSI disk.
    fc            object  A Fibre Channel disk.
    rbd           object  A Ceph RBD image.
    cephfs        object  A CephFS mount.
    glusterfs     object  A GlusterFS mount.
    cinder        object  An OpenStack Cinder volume.
    gcePersistentDisk    object  A GCE persistent disk.
    awsElasticBlockStore object  An AWS EBS volume.
    azureDisk     object  An Azure data disk.
    azureFile     object  An Azure file share.
    flexVolume    object  A volume handled by an exec-based plugin.
    flocker       object  A Flocker volume.
    photonPersistentDisk object  A Photon Controller disk.
    portworxVolume object  A Portworx volume.
    quobyte       object  A Quobyte mount.
    scaleIO       object  A ScaleIO volume.
    storageos     object  A StorageOS volume.
    vsphereVolume object  A vSphere disk.
""")
c.model("LocalVolumeSource", "Storage attached to one node.", """
    path   string @req  Path of the disk, partition or directory on the node.
    fsType string  Filesystem type, for block devices.
""")
c.model("VolumeNodeAffinity", "Nodes a volume can be used from.", """
    required NodeSelector  Nodes that must match.
""")
c.model("PersistentVolumeStatus", "The observed state of a persistent volume.", """
    phase   string @enum:Pending|Available|Bound|Released|Failed  Binding phase.
    message string  Details.
    reason  string  CamelCase reason of a failure.
    lastPhaseTransitionTime Time  When phase last changed.
""")
c.kind("PersistentVolumeClaim", "A request for storage, bound to a matching persistent volume.", """
    spec   PersistentVolumeClaimSpec    What storage is requested.
    status PersistentVolumeClaimStatus  Whether and to what it is bound.
""", group="", version="v1")
c.model("PersistentVolumeClaimSpec", "The storage a claim asks for.", """
    accessModes      []string @atomic  Access modes the volume must offer.
    selector         LabelSelector  Volumes the claim may bind to.
    resources        VolumeResourceRequirements  Minimum size, as requests.storage.
    volumeName       string  Bind to this volume.
    storageClassName string  StorageClass to bind or provision from.
    volumeMode       string @enum:Block|Filesystem  Filesystem (default) or raw block.
    dataSource       TypedLocalObjectReference  A snapshot or claim to fill the new volume from.
    dataSourceRef    TypedObjectReference  A populator object to fill the new volume from.
    volumeAttributesClassName string  VolumeAttributesClass requested.
""")
c.model("VolumeResourceRequirements", "Storage size a claim requests.", """
    limits   {}Quantity  Maximum size.
    requests {}Quantity  Minimum size, e.g. storage: 1Gi.
""")
c.model("PersistentVolumeClaimStatus", "The observed state of a claim.", """
    phase        string @enum:Pending|Bound|Lost  Binding phase.
    accessModes  []string @atomic  Access modes of the bound volume.
    capacity     {}Quantity  Size of the bound volume.
    conditions   []PersistentVolumeClaimCondition @keyed:type  Current conditions, e.g. Resizing.
    allocatedResources {}Quantity  Size being allocated during an expansion.
    allocatedResourceStatuses {}string @mapatomic  Progress of expansions by resource.
    currentVolumeAttributesClassName string  VolumeAttributesClass in effect.
    modifyVolumeStatus object  Progress of a volume attribute change.
""")
c.model("PersistentVolumeClaimCondition", "One condition of a claim.", """
    type               string @req  Condition type.
    status             string @req  True, False or Unknown.
    lastProbeTime      Time    When it was last checked.
    lastTransitionTime Time    When status last changed.
    reason             string  CamelCase reason.
    message            string  Details.
""")

# Quotas and limit ranges.
c.kind("ResourceQuota", "Limits on what a namespace may use in total.", """
    spec   ResourceQuotaSpec    The limits.
    status ResourceQuotaStatus  The limits enforced and what is used, kept by the quota controller.
""", group="", version="v1")
c.model("ResourceQuotaSpec", "The limits of a quota.", """
    hard          {}Quantity  Hard limit per resource name (pods, requests.cpu, count/deployments.apps, ...).
    scopes        []string @atomic  Only objects (pods) matching every scope are tracked.
    scopeSelector ScopeSelector  Scopes as expressions, ANDed with scopes.
""")
c.model("ScopeSelector", "Scopes as expressions.", """
    matchExpressions []ScopedResourceSelectorRequirement @atomic  Requirements, ANDed.
""", atomic=True)
c.model("ScopedResourceSelectorRequirement", "One scope requirement.", """
    scopeName string @req  The scope, e.g. PriorityClass.
    operator  string @req @enum:In|NotIn|Exists|DoesNotExist  How the scope's values are tested.
    values    []string @atomic  Values for In and NotIn.
""")
c.model("ResourceQuotaStatus", "What a quota enforces and what is used.", """
    hard {}Quantity  The limits enforced.
    used {}Quantity  Current use in the namespace.
""")
c.kind("LimitRange", "Per-object bounds and defaults for containers, pods and claims in a namespace.", """
    spec LimitRangeSpec  The limits.
""", group="", version="v1")
c.model("LimitRangeSpec", "The limits of a limit range.", """
    limits []LimitRangeItem @req @atomic  One item per type of object.
""")
c.model("LimitRangeItem", "Bounds and defaults for one type of object.", """
    type                 string @req  Container, Pod or PersistentVolumeClaim.
    max                  {}Quantity  Most an object may use, per resource.
    min                  {}Quantity  Least an object must ask for, per resource.
    default              {}Quantity  Limit given to containers that set none.
    defaultRequest       {}Quantity  Request given to containers that set none.
    maxLimitRequestRatio {}Quantity  Largest limit/request ratio allowed, per resource.
""")

c.kind("Binding", "Binds a pod to a node; posted by the scheduler to pods/binding.", """
    target ObjectReference @req  The node, by name.
""", group="", version="v1", listed=False)
