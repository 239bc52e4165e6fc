"""Pods: the spec, containers and everything a container refers to, and the status.

Arktos's unified pod adds `spec.virtualMachine`, `spec.nics`, `spec.vpc` and
`status.virtualMachineStatus`.  List semantics and merge keys follow what
Kubernetes publishes, because `kubectl apply` and strategic merge patches
depend on them: containers merge by name, ports by containerPort, mounts by
mountPath, volumes by name with retainKeys, tolerations are atomic.
"""

from __future__ import annotations

from arktos.api.schemas._dsl import Group
from arktos.api.schemas.meta import META

CORE = "io.k8s.api.core.v1"
IMPORTS = (META, "io.k8s.apimachinery.pkg.api.resource", "io.k8s.apimachinery.pkg.util.intstr")

c = Group(CORE, IMPORTS)

c.kind("Pod", "One or more containers, or one virtual machine, scheduled together onto a node.", """
    spec   PodSpec    What the pod should run and how it is scheduled.
    status PodStatus  What the pod is doing now; written by the node agent and the scheduler.
""", group="", version="v1")

c.model("PodTemplateSpec", "The pod a workload controller stamps out: metadata and spec.", """
    metadata ObjectMeta  Labels and annotations given to each pod made from the template.
    spec     PodSpec     Spec of each pod made from the template.
""")

c.model("PodSpec", "The desired state of a pod.", """
    containers       []Container @keyed:name  Containers of the pod. A pod has containers or a
                                 virtualMachine, not both.
    initContainers   []Container @keyed:name  Containers run one after another, each to completion,
                                 before the regular containers start.
    ephemeralContainers []EphemeralContainer @keyed:name  Debugging containers added to a running pod
                                 through the ephemeralcontainers subresource.
    virtualMachine   VirtualMachine  Arktos: the virtual machine this pod runs instead of containers.
    nics             []Nic @merge:name @patch:merge,retainKeys  Arktos: network interfaces of the pod,
                                 used by VM pods and available to container pods.
    vpc              string      Arktos: the VPC the pod's VM is attached to.
    volumes          []Volume @keyed:name @patch:merge,retainKeys  Volumes the containers can mount.
    restartPolicy    string @enum:Always|OnFailure|Never  When containers are restarted; defaults to Always.
    terminationGracePeriodSeconds int64  Seconds between the stop signal and the kill on deletion;
                                 defaults to 30.
    activeDeadlineSeconds int64  Seconds the pod may run on a node before it is failed.
    dnsPolicy        string @enum:ClusterFirst|ClusterFirstWithHostNet|Default|None
                                 How the pod's resolv.conf is made; defaults to ClusterFirst.
    nodeSelector     {}string @mapatomic  Labels a node must have for the pod to run there.
    serviceAccountName string    Service account whose identity the pod runs with.
    serviceAccount   string      Deprecated alias of serviceAccountName.
    automountServiceAccountToken bool  Whether the service account token is mounted into the containers.
    nodeName         string      Node the pod is bound to; set by the scheduler through the binding
                                 subresource, or by the user to bypass scheduling.
    hostNetwork      bool        Use the node's network namespace.
    hostPID          bool        Use the node's process namespace.
    hostIPC          bool        Use the node's IPC namespace.
    hostUsers        bool        Run in the node's user namespace (true, the default) or in a new one.
    shareProcessNamespace bool   Let the containers of the pod see each other's processes.
    securityContext  PodSecurityContext  Security settings shared by all containers.
    imagePullSecrets []LocalObjectReference @keyed:name  Secrets with registry credentials for pulls.
    hostname         string      Hostname of the pod; defaults to the pod name.
    subdomain        string      With hostname, gives the pod a DNS name under a headless service.
    setHostnameAsFQDN bool       Make the kernel hostname the fully qualified domain name.
    hostnameOverride string      Hostname to set inside the pod, overriding hostname and subdomain.
    affinity         Affinity    Node and inter-pod affinity and anti-affinity rules.
    schedulerName    string      Scheduler that places the pod; defaults to default-scheduler.
    tolerations      []Toleration @atomic  Taints the pod tolerates.
    hostAliases      []HostAlias @keyed:ip  Extra /etc/hosts entries.
    priorityClassName string     Name of the PriorityClass that gives the pod its priority.
    priority         int32       Priority value, filled from priorityClassName by admission.
    preemptionPolicy string @enum:Never|PreemptLowerPriority  Whether the pod may preempt lower
                                 priority pods.
    dnsConfig        PodDNSConfig  Extra DNS settings merged into those from dnsPolicy.
    readinessGates   []PodReadinessGate @atomic  Extra conditions that must be True for readiness.
    runtimeClassName string      RuntimeClass used to run the pod.
    enableServiceLinks bool      Inject environment variables describing services; defaults to true.
    overhead         {}Quantity  Resources the pod's sandbox costs on top of its containers.
    topologySpreadConstraints []TopologySpreadConstraint @merge:topologyKey
                     @map:topologyKey,whenUnsatisfiable  How pods are spread across topology domains.
    os               PodOS       Operating system the containers need.
    schedulingGates  []PodSchedulingGate @keyed:name  While any gate is present the pod is not scheduled.
    resourceClaims   []PodResourceClaim @keyed:name @patch:merge,retainKeys
                                 Dynamically allocated resources the containers may use.
    resources        ResourceRequirements  Pod-level requests and limits shared by its containers.
""")

_CONTAINER = """
    name             string @req  Name of the container, a DNS label unique within the pod.
    image            string      Image reference to run, e.g. nginx:1.27.
    command          []string @atomic  Entrypoint; replaces the image's ENTRYPOINT and is not run in a
                                 shell. $(VAR) references to environment variables are expanded.
    args             []string @atomic  Arguments to the entrypoint; replace the image's CMD.
    workingDir       string      Working directory; defaults to the image's.
    ports            []ContainerPort @merge:containerPort @map:containerPort,protocol
                                 Ports the container listens on; informational, but names can be
                                 referred to by probes and services.
    envFrom          []EnvFromSource @atomic  ConfigMaps and Secrets whose keys all become variables.
    env              []EnvVar @keyed:name  Environment variables.
    resources        ResourceRequirements  CPU, memory and other resources requested and limited.
    resizePolicy     []ContainerResizePolicy @atomic  Whether a resource change needs a restart.
    restartPolicy    string      Always makes an init container a sidecar that keeps running.
    restartPolicyRules []object @atomic  Exit-code rules that decide whether the container restarts.
    volumeMounts     []VolumeMount @keyed:mountPath  Volumes mounted into the container's filesystem.
    volumeDevices    []VolumeDevice @keyed:devicePath  Raw block volumes exposed as devices.
    livenessProbe    Probe       Check that restarts the container when it fails.
    readinessProbe   Probe       Check that removes the pod from service endpoints when it fails.
    startupProbe     Probe       Check that holds back the other probes until it first succeeds.
    lifecycle        Lifecycle   Hooks run after start and before stop.
    terminationMessagePath string  File whose content becomes the termination message;
                                 defaults to /dev/termination-log.
    terminationMessagePolicy string @enum:File|FallbackToLogsOnError  Where the termination message
                                 comes from.
    imagePullPolicy  string @enum:Always|IfNotPresent|Never  When to pull the image; defaults to
                                 Always for :latest and IfNotPresent otherwise.
    securityContext  SecurityContext  Security settings of this container; override the pod's.
    stdin            bool        Allocate a stdin buffer for the container.
    stdinOnce        bool        Close stdin after the first attach disconnects.
    tty              bool        Allocate a terminal; needs stdin.
"""
c.model("Container", "One application container of a pod.", _CONTAINER)
c.model("EphemeralContainer", "A temporary container added to a running pod, usually for debugging.",
        _CONTAINER + """
    targetContainerName string   Container whose process namespace the ephemeral container joins.
""")

c.model("VirtualMachine", "Arktos: the virtual machine a VM pod runs.", """
    name             string @req  Name of the VM, a DNS label.
    image            string      Disk image to boot.
    imagePullPolicy  string @enum:Always|IfNotPresent|Never  When to fetch the image.
    resources        ResourceRequirements  CPU and memory of the VM; the scheduler uses them as it
                                 uses container requests.
    resourcesAllocated {}Quantity  Resources the node granted to the VM.
    resizePolicy     []ContainerResizePolicy @atomic  Whether a resource change needs a restart.
    volumeMounts     []VolumeMount @keyed:mountPath  Pod volumes attached to the VM.
    volumeDevices    []VolumeDevice @keyed:devicePath  Block volumes attached as devices.
    keyPairName      string      Name of a registered key pair allowed to log in; this or publicKey is required.
    publicKey        string      SSH public key allowed to log in; this or keyPairName is required.
    userData         bytes       Data handed to the guest at first boot, base64, at most 65535 bytes.
    cloudInitUserDataScript string  A cloud-init user-data script run at first boot.
    trustedImageCertificate []string @atomic  IDs of certificates allowed to have signed the image.
    powerSpec        string @enum:Running|Paused|Shutdown|Suspended  Desired power state; defaults to Running.
    shutdownBehavior string @enum:stop|terminate  Whether a guest-initiated shutdown stops the VM or
                                 ends the pod; defaults to stop.
    bootVolume       string      Name of the volume to boot from; defaults to the first volume.
""")
c.model("Nic", "Arktos: one network interface of a pod.", """
    name        string  Interface name inside the VM or container.
    subnetName  string  Subnet the interface attaches to; defaults to the VM's subnet.
    portId      string  ID of a port created in advance in the network layer, to use as is.
    ipAddress   string  Fixed IP address to give the interface instead of an allocated one.
    tag         string  Free-form data attached to the interface.
    ipv6Enabled bool    Also give the interface an IPv6 address.
""")

c.model("ContainerPort", "A network port of a container.", """
    name          string  Name other objects may use to refer to the port (an IANA service name).
    containerPort int32 @req  Port number inside the container's network namespace.
    protocol      string @enum:TCP|UDP|SCTP @default:TCP  Protocol; defaults to TCP.
    hostPort      int32   Port to open on the node and forward to containerPort.
    hostIP        string  Node address to bind hostPort to.
""")
c.model("EnvVar", "One environment variable.", """
    name      string @req  Variable name.
    value     string  Value; $(VAR) references to earlier variables are expanded. Use either this or
                      valueFrom.
    valueFrom EnvVarSource  Where to read the value from.
""")
c.model("EnvVarSource", "A source of an environment variable's value; exactly one field is set.", """
    fieldRef         ObjectFieldSelector    A field of the pod, e.g. metadata.name or status.podIP.
    resourceFieldRef ResourceFieldSelector  A resource request or limit of a container.
    configMapKeyRef  ConfigMapKeySelector   A key of a ConfigMap in the pod's namespace.
    secretKeyRef     SecretKeySelector      A key of a Secret in the pod's namespace.
    fileKeyRef       object                 A key read from a file in a volume (alpha).
""")
c.model("ObjectFieldSelector", "A field of the enclosing object, by path.", """
    apiVersion string  Version the path is written against; defaults to v1.
    fieldPath  string @req  Path of the field, e.g. metadata.labels['app'].
""", atomic=True)
c.model("ResourceFieldSelector", "A resource value of a container, e.g. limits.memory.", """
    containerName string    Container to read from; optional for env vars (the container itself).
    resource      string @req  requests.cpu, limits.memory, ...
    divisor       Quantity  Unit to express the value in; defaults to 1.
""", atomic=True)
c.model("ConfigMapKeySelector", "One key of a ConfigMap.", """
    name     string  Name of the ConfigMap.
    key      string @req  Key to read.
    optional bool    Whether the ConfigMap or key may be missing.
""", atomic=True)
c.model("SecretKeySelector", "One key of a Secret.", """
    name     string  Name of the Secret.
    key      string @req  Key to read.
    optional bool    Whether the Secret or key may be missing.
""", atomic=True)
c.model("EnvFromSource", "A ConfigMap or Secret whose every key becomes an environment variable.", """
    prefix       string           Prefix prepended to each key.
    configMapRef ConfigMapEnvSource  The ConfigMap.
    secretRef    SecretEnvSource     The Secret.
""")
c.model("ConfigMapEnvSource", "A ConfigMap used for environment variables.", """
    name     string  Name of the ConfigMap.
    optional bool    Whether it may be missing.
""")
c.model("SecretEnvSource", "A Secret used for environment variables.", """
    name     string  Name of the Secret.
    optional bool    Whether it may be missing.
""")
c.model("ResourceRequirements", "Compute resources a container (or VM, or pod) requests and may not exceed.", """
    limits   {}Quantity  Maximum amounts, e.g. cpu: 500m, memory: 256Mi.
    requests {}Quantity  Amounts the scheduler reserves; default to the limits when only those are set.
    claims   []ResourceClaim @map:name  Names of the pod's resourceClaims this container uses.
""")
c.model("ResourceClaim", "A reference to one of the pod's resource claims.", """
    name    string @req  Name of an entry in spec.resourceClaims.
    request string  A request within the claim; empty for all of it.
""")
c.model("ContainerResizePolicy", "How a container reacts to a change of one resource.", """
    resourceName  string @req  cpu or memory.
    restartPolicy string @req  NotRequired or RestartContainer.
""")
c.model("VolumeMount", "A volume mounted into a container.", """
    name             string @req  Name of a volume of the pod.
    mountPath        string @req  Path inside the container; must not contain ':'.
    readOnly         bool    Mount read-only.
    recursiveReadOnly string  Disabled, IfPossible or Enabled: make sub-mounts read-only as well.
    subPath          string  Path within the volume to mount instead of its root.
    subPathExpr      string  Like subPath, with $(VAR) expanded from the container's environment.
    mountPropagation string @enum:None|HostToContainer|Bidirectional  How mounts propagate.
    bindMountOptions []string @atomic  Extra options for the bind mount.
""")
c.model("VolumeDevice", "A raw block volume mapped into a container.", """
    name       string @req  Name of a PersistentVolumeClaim volume of the pod.
    devicePath string @req  Device path inside the container.
""")

c.model("Probe", "A periodic health check of a container.", """
    exec             ExecAction       Run a command; exit code 0 is success.
    httpGet          HTTPGetAction    GET a URL; a 2xx or 3xx status is success.
    tcpSocket        TCPSocketAction  Open a TCP connection; success if it connects.
    grpc             GRPCAction       Call the gRPC health checking service.
    initialDelaySeconds int32  Seconds after start before the first check.
    timeoutSeconds   int32     Seconds before a check times out; defaults to 1.
    periodSeconds    int32     Seconds between checks; defaults to 10.
    successThreshold int32     Consecutive successes to count as healthy after a failure; defaults to 1.
    failureThreshold int32     Consecutive failures to count as unhealthy; defaults to 3.
    terminationGracePeriodSeconds int64  Grace period for a kill caused by this probe.
""")
c.model("ExecAction", "A command run inside the container.", """
    command []string @atomic  The command and its arguments; not run in a shell.
""")
c.model("HTTPGetAction", "An HTTP GET request against the container.", """
    path        string       Path to request.
    port        IntOrString @req  Port number or name.
    host        string       Host to connect to; defaults to the pod IP.
    scheme      string @enum:HTTP|HTTPS  Scheme; defaults to HTTP.
    httpHeaders []HTTPHeader @atomic  Extra request headers.
""")
c.model("HTTPHeader", "One HTTP header.", """
    name  string @req  Header name.
    value string @req  Header value.
""")
c.model("TCPSocketAction", "A TCP connection attempt.", """
    port IntOrString @req  Port number or name.
    host string       Host to connect to; defaults to the pod IP.
""")
c.model("GRPCAction", "A gRPC health check.", """
    port    int32 @req  Port of the gRPC service.
    service string  Service name sent in the health check request.
""")
c.model("SleepAction", "A pause of a number of seconds.", """
    seconds int64 @req  Seconds to sleep.
""")
c.model("Lifecycle", "Hooks the node agent runs around a container's start and stop.", """
    postStart  LifecycleHandler  Run right after the container is created.
    preStop    LifecycleHandler  Run before the container is stopped.
    stopSignal string            Signal used to stop the container, e.g. SIGTERM.
""")
c.model("LifecycleHandler", "What a lifecycle hook does; exactly one field is set.", """
    exec      ExecAction       Run a command.
    httpGet   HTTPGetAction    Send an HTTP GET.
    tcpSocket TCPSocketAction  Deprecated; accepted for compatibility.
    sleep     SleepAction      Wait.
""")

c.model("SecurityContext", "Security settings of one container.", """
    capabilities           Capabilities  Linux capabilities to add and drop.
    privileged             bool     Run as privileged (root on the host, in effect).
    seLinuxOptions         SELinuxOptions  SELinux context.
    windowsOptions         WindowsSecurityContextOptions  Windows-specific settings.
    runAsUser              int64    UID of the entrypoint process.
    runAsGroup             int64    GID of the entrypoint process.
    runAsNonRoot           bool     Refuse to start the container if it would run as UID 0.
    readOnlyRootFilesystem bool     Mount the root filesystem read-only.
    allowPrivilegeEscalation bool   Whether a process may gain more privileges than its parent.
    procMount              string   Default or Unmasked /proc.
    seccompProfile         SeccompProfile  Seccomp filter.
    appArmorProfile        AppArmorProfile AppArmor profile.
""")
c.model("PodSecurityContext", "Security settings that apply to the whole pod.", """
    seLinuxOptions      SELinuxOptions  SELinux context of all containers.
    windowsOptions      WindowsSecurityContextOptions  Windows-specific settings.
    runAsUser           int64    Default UID of the containers' processes.
    runAsGroup          int64    Default GID of the containers' processes.
    runAsNonRoot        bool     Refuse to start containers that would run as UID 0.
    supplementalGroups  []int64 @atomic  Extra groups of the first process of each container.
    supplementalGroupsPolicy string  Merge or Strict: whether image-defined groups are added.
    fsGroup             int64    Group that owns supported volumes and is added to every container.
    fsGroupChangePolicy string @enum:OnRootMismatch|Always  When volume ownership is changed.
    sysctls             []Sysctl @atomic  Namespaced kernel parameters.
    seccompProfile      SeccompProfile   Seccomp filter.
    appArmorProfile     AppArmorProfile  AppArmor profile.
    seLinuxChangePolicy string   How SELinux labels are applied to volumes.
""")
c.model("Capabilities", "Linux capabilities to add to or drop from the runtime's default set.", """
    add  []string @atomic  Capabilities to add, e.g. NET_ADMIN.
    drop []string @atomic  Capabilities to drop, e.g. ALL.
""")
c.model("SELinuxOptions", "An SELinux label.", """
    user  string  SELinux user.
    role  string  SELinux role.
    type  string  SELinux type.
    level string  SELinux level.
""")
c.model("SeccompProfile", "A seccomp profile.", """
    type             string @req @enum:RuntimeDefault|Unconfined|Localhost  Kind of profile.
    localhostProfile string  Path of a profile on the node, for Localhost.
""")
c.model("AppArmorProfile", "An AppArmor profile.", """
    type             string @req @enum:RuntimeDefault|Unconfined|Localhost  Kind of profile.
    localhostProfile string  Name of a profile loaded on the node, for Localhost.
""")
c.model("WindowsSecurityContextOptions", "Windows-specific security settings.", """
    gmsaCredentialSpecName string  Name of the GMSA credential spec to use.
    gmsaCredentialSpec     string  Content of the GMSA credential spec.
    runAsUserName          string  User name of the entrypoint process.
    hostProcess            bool    Run as a Windows host process.
""")
c.model("Sysctl", "One kernel parameter.", """
    name  string @req  Parameter name, e.g. net.core.somaxconn.
    value string @req  Value to set.
""")

c.model("Volume", "A named volume of a pod; exactly one source field is set besides the name.", """
    name                  string @req  Name of the volume, unique within the pod; mounts refer to it.
    hostPath              HostPathVolumeSource  A file or directory of the node.
    emptyDir              EmptyDirVolumeSource  A scratch directory that lives as long as the pod.
    secret                SecretVolumeSource    The keys of a Secret as files.
    configMap             ConfigMapVolumeSource The keys of a ConfigMap as files.
    persistentVolumeClaim PersistentVolumeClaimVolumeSource  The volume bound to a claim.
    projected             ProjectedVolumeSource Several sources merged into one directory.
    downwardAPI           DownwardAPIVolumeSource  Pod fields as files.
    nfs                   NFSVolumeSource       An NFS export.
    csi                   CSIVolumeSource       An ephemeral volume of a CSI driver.
    ephemeral             EphemeralVolumeSource A claim made for the pod and deleted with it.
    image                 ImageVolumeSource     The content of an OCI image or artifact, read-only.
    iscsi                 object  An iSCSI disk.
    gcePersistentDisk     object  A GCE persistent disk (deprecated in-tree driver).
    awsElasticBlockStore  object  An AWS EBS volume (deprecated in-tree driver).
    azureDisk             object  An Azure data disk (deprecated in-tree driver).
    azureFile             object  An Azure file share (deprecated in-tree driver).
    cephfs                object  A CephFS mount.
    cinder                object  An OpenStack Cinder volume (deprecated in-tree driver).
    fc                    object  A Fibre Channel disk.
    flexVolume            object  A volume handled by an exec-based plugin.
    flocker               object  A Flocker volume.
    gitRepo               object  A git checkout (deprecated).
    glusterfs             object  A GlusterFS mount.
    photonPersistentDisk  object  A Photon Controller disk.
    portworxVolume        object  A Portworx volume.
    quobyte               object  A Quobyte mount.
    rbd                   object  A Ceph RBD image.
    scaleIO               object  A ScaleIO volume.
    storageos             object  A StorageOS volume.
    vsphereVolume         object  A vSphere disk (deprecated in-tree driver).
""")
c.model("HostPathVolumeSource", "A path on the node.", """
    path string @req  Path on the node; a symlink is followed.
    type string  Check made before mounting: "", DirectoryOrCreate, Directory, FileOrCreate, File,
                 Socket, CharDevice or BlockDevice.
""")
c.model("EmptyDirVolumeSource", "A directory created empty for the pod.", """
    medium    string    "" for the node's disk or Memory for a tmpfs.
    sizeLimit Quantity  Most the volume may hold; the pod is evicted beyond it.
""")
c.model("SecretVolumeSource", "A Secret projected as files.", """
    secretName  string  Name of the Secret in the pod's namespace.
    items       []KeyToPath @atomic  Which keys to project and where; all keys when empty.
    defaultMode int32   File mode bits (octal 0644 is 420 in JSON); defaults to 0644.
    optional    bool    Whether the Secret may be missing.
    defaultUser int64  Owner UID of the files.
""")
c.model("ConfigMapVolumeSource", "A ConfigMap projected as files.", """
    name        string  Name of the ConfigMap in the pod's namespace.
    items       []KeyToPath @atomic  Which keys to project and where; all keys when empty.
    defaultMode int32   File mode bits; defaults to 0644.
    optional    bool    Whether the ConfigMap may be missing.
    defaultUser int64  Owner UID of the files.
""")
c.model("KeyToPath", "One key projected to a file.", """
    key  string @req  Key to project.
    path string @req  Relative path of the file.
    mode int32   File mode bits of this file.
    user int64  Owner UID of the file.
""")
c.model("PersistentVolumeClaimVolumeSource", "A claim whose bound volume the pod mounts.", """
    claimName string @req  Name of a PersistentVolumeClaim in the pod's namespace.
    readOnly  bool    Force read-only mounts.
""")
c.model("ProjectedVolumeSource", "Several sources projected into one directory.", """
    sources     []VolumeProjection @atomic  The sources.
    defaultMode int32  File mode bits; defaults to 0644.
    defaultUser int64  Owner UID of the files.
""")
c.model("VolumeProjection", "One source of a projected volume; exactly one field is set.", """
    secret              SecretProjection     Keys of a Secret.
    configMap           ConfigMapProjection  Keys of a ConfigMap.
    downwardAPI         DownwardAPIProjection  Pod fields.
    serviceAccountToken ServiceAccountTokenProjection  A token of the pod's service account.
    clusterTrustBundle  object  Certificates from ClusterTrustBundle objects.
    podCertificate      object  A certificate issued for the pod.
""")
c.model("SecretProjection", "Keys of a Secret in a projected volume.", """
    name     string  Name of the Secret.
    items    []KeyToPath @atomic  Keys to project; all when empty.
    optional bool    Whether the Secret may be missing.
""")
c.model("ConfigMapProjection", "Keys of a ConfigMap in a projected volume.", """
    name     string  Name of the ConfigMap.
    items    []KeyToPath @atomic  Keys to project; all when empty.
    optional bool    Whether the ConfigMap may be missing.
""")
c.model("DownwardAPIProjection", "Pod fields in a projected volume.", """
    items []DownwardAPIVolumeFile @atomic  Files to create.
""")
c.model("DownwardAPIVolumeSource", "Pod fields as files.", """
    items       []DownwardAPIVolumeFile @atomic  Files to create.
    defaultMode int32  File mode bits; defaults to 0644.
    defaultUser int64  Owner UID of the files.
""")
c.model("DownwardAPIVolumeFile", "A file holding one field of the pod.", """
    path             string @req  Relative path of the file.
    fieldRef         ObjectFieldSelector    Pod field to write.
    resourceFieldRef ResourceFieldSelector  Container resource to write.
    mode             int32  File mode bits.
    user int64  Owner UID of the file.
""")
c.model("ServiceAccountTokenProjection", "A token of the pod's service account, refreshed before it expires.", """
    path              string @req  Relative path of the token file.
    audience          string  Intended audience; defaults to the API server's.
    expirationSeconds int64   Requested lifetime; defaults to one hour.
    user int64  Owner UID of the file.
""")
c.model("NFSVolumeSource", "An NFS export.", """
    server   string @req  Host name or address of the NFS server.
    path     string @req  Exported path.
    readOnly bool    Mount read-only.
""")
c.model("CSIVolumeSource", "An ephemeral volume provided by a CSI driver.", """
    driver               string @req  Name of the CSI driver.
    readOnly             bool     Mount read-only.
    fsType               string   Filesystem type, e.g. ext4.
    volumeAttributes     {}string Driver-specific parameters.
    nodePublishSecretRef LocalObjectReference  Secret passed to the driver's publish calls.
""")
c.model("EphemeralVolumeSource", "A claim created from a template for the pod and removed with it.", """
    volumeClaimTemplate PersistentVolumeClaimTemplate  Template of the claim.
""")
c.model("PersistentVolumeClaimTemplate", "Metadata and spec of a claim made for an ephemeral volume.", """
    metadata ObjectMeta                 Labels and annotations of the claim.
    spec     PersistentVolumeClaimSpec @req  Spec of the claim.
""")
c.model("ImageVolumeSource", "An OCI image or artifact mounted as a volume.", """
    reference  string  Image reference.
    pullPolicy string @enum:Always|IfNotPresent|Never  When to pull.
""")

c.model("Affinity", "Scheduling constraints relative to nodes and to other pods.", """
    nodeAffinity    NodeAffinity    Which nodes the pod may or prefers to run on.
    podAffinity     PodAffinity     Pods this pod should run near.
    podAntiAffinity PodAntiAffinity Pods this pod should run away from.
""")
c.model("NodeAffinity", "Node constraints of a pod.", """
    requiredDuringSchedulingIgnoredDuringExecution NodeSelector  Hard constraint: a node must match.
    preferredDuringSchedulingIgnoredDuringExecution []PreferredSchedulingTerm @atomic
        Soft constraints; nodes matching more weight are preferred.
""")
c.model("NodeSelector", "Node selector terms; a node matching any term matches (they are ORed).", """
    nodeSelectorTerms []NodeSelectorTerm @req @atomic  The terms.
""", atomic=True)
c.model("NodeSelectorTerm", "Requirements that must all hold (they are ANDed).", """
    matchExpressions []NodeSelectorRequirement @atomic  Requirements on node labels.
    matchFields      []NodeSelectorRequirement @atomic  Requirements on node fields (metadata.name).
""", atomic=True)
c.model("NodeSelectorRequirement", "A requirement on a node label or field.", """
    key      string @req  Label key or field name.
    operator string @req @enum:In|NotIn|Exists|DoesNotExist|Gt|Lt  How values are compared.
    values   []string @atomic  Values; one integer for Gt and Lt, none for Exists and DoesNotExist.
""")
c.model("PreferredSchedulingTerm", "A weighted soft node preference.", """
    weight     int32 @req  Weight from 1 to 100.
    preference NodeSelectorTerm @req  Nodes to prefer.
""")
c.model("PodAffinity", "Pods to be scheduled near.", """
    requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm @atomic  Hard rules.
    preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm @atomic  Soft rules.
""")
c.model("PodAntiAffinity", "Pods to be scheduled away from.", """
    requiredDuringSchedulingIgnoredDuringExecution []PodAffinityTerm @atomic  Hard rules.
    preferredDuringSchedulingIgnoredDuringExecution []WeightedPodAffinityTerm @atomic  Soft rules.
""")
c.model("PodAffinityTerm", "A set of pods and the topology domain they are counted in.", """
    labelSelector     LabelSelector  Pods the term is about.
    namespaces        []string @atomic  Namespaces to look in; the pod's own when empty.
    namespaceSelector LabelSelector  Namespaces to look in, by label.
    topologyKey       string @req  Node label whose value defines a domain, e.g. kubernetes.io/hostname.
    matchLabelKeys    []string @atomic  Label keys whose values from this pod are added to the selector.
    mismatchLabelKeys []string @atomic  Label keys whose values from this pod must differ.
""")
c.model("WeightedPodAffinityTerm", "A pod affinity term with a weight.", """
    weight          int32 @req  Weight from 1 to 100.
    podAffinityTerm PodAffinityTerm @req  The term.
""")
c.model("Toleration", "Lets a pod run on nodes with a matching taint.", """
    key               string  Taint key to match; empty with Exists matches every taint.
    operator          string @enum:Exists|Equal  Exists ignores value; defaults to Equal.
    value             string  Taint value to match.
    effect            string @enum:NoSchedule|PreferNoSchedule|NoExecute  Effect to match; all when empty.
    tolerationSeconds int64   For NoExecute: how long the pod stays after the taint appears.
""")
c.model("TopologySpreadConstraint", "How evenly matching pods must be spread over topology domains.", """
    maxSkew            int32 @req  Largest allowed difference in matching pods between two domains.
    topologyKey        string @req  Node label that defines the domains.
    whenUnsatisfiable  string @req @enum:DoNotSchedule|ScheduleAnyway  What to do if the skew
                                  cannot be met.
    labelSelector      LabelSelector  Pods counted.
    minDomains         int32   Minimum number of eligible domains.
    nodeAffinityPolicy string  Honor or Ignore: whether node affinity limits the domains.
    nodeTaintsPolicy   string  Honor or Ignore: whether node taints limit the domains.
    matchLabelKeys     []string @atomic  Label keys whose values from this pod narrow the selector.
""")
c.model("HostAlias", "An /etc/hosts entry.", """
    ip        string @req  IP address.
    hostnames []string @atomic  Names for the address.
""")
c.model("PodDNSConfig", "DNS settings added to those derived from the DNS policy.", """
    nameservers []string @atomic  Extra name servers.
    searches    []string @atomic  Extra search domains.
    options     []PodDNSConfigOption @atomic  Resolver options.
""")
c.model("PodDNSConfigOption", "One resolver option.", """
    name  string  Option name, e.g. ndots.
    value string  Option value.
""")
c.model("PodReadinessGate", "An extra pod condition required for readiness.", """
    conditionType string @req  Type of a condition in status.conditions.
""")
c.model("PodOS", "The operating system of a pod.", """
    name string @req  linux or windows.
""")
c.model("PodSchedulingGate", "A gate that keeps a pod from being scheduled until removed.", """
    name string @req  Name of the gate.
""")
c.model("PodResourceClaim", "A dynamically allocated resource the pod uses.", """
    name                      string @req  Name containers use to refer to the claim.
    resourceClaimName         string  An existing ResourceClaim.
    resourceClaimTemplateName string  A template from which a claim is made for this pod.
""")
c.model("LocalObjectReference", "The name of an object in the same namespace.", """
    name string  Name of the object.
""", atomic=True)

c.model("PodStatus", "The observed state of a pod.", """
    phase          string @enum:Pending|Running|Succeeded|Failed|Unknown  Coarse lifecycle stage.
    conditions     []PodCondition @keyed:type  Current conditions (PodScheduled, Initialized,
                   ContainersReady, Ready, and VirtualMachineReady for VM pods).
    message        string  Human-readable reason for the current state.
    reason         string  CamelCase reason, e.g. Evicted.
    nominatedNodeName string  Node the pod is expected to go to after a preemption.
    hostIP         string  Primary address of the node the pod runs on.
    hostIPs        []HostIP @merge:ip @atomic  Addresses of the node.
    podIP          string  Primary address of the pod.
    podIPs         []PodIP @keyed:ip  Addresses of the pod, one per IP family.
    startTime      Time    When the node agent accepted the pod.
    initContainerStatuses []ContainerStatus @atomic  One entry per init container.
    containerStatuses []ContainerStatus @atomic  One entry per container.
    ephemeralContainerStatuses []ContainerStatus @atomic  One entry per ephemeral container.
    virtualMachineStatus VirtualMachineStatus  Arktos: state of the pod's virtual machine.
    qosClass       string @enum:Guaranteed|Burstable|BestEffort  Quality of service class.
    resize         string  State of a requested in-place resize.
    resourceClaimStatuses []PodResourceClaimStatus @keyed:name @patch:merge,retainKeys
                   Names of the ResourceClaims made for the pod.
    observedGeneration int64  metadata.generation this status was computed from.
    resources      ResourceRequirements  Pod-level resources currently applied.
    allocatedResources {}Quantity  Pod-level resources the node allocated.
""")
c.model("PodCondition", "One condition of a pod.", """
    type               string @req  Condition type.
    status             string @req  True, False or Unknown.
    observedGeneration int64   metadata.generation the condition was computed from.
    lastProbeTime      Time    When the condition was last checked.
    lastTransitionTime Time    When status last changed.
    reason             string  CamelCase reason of the last transition.
    message            string  Human-readable details.
""")
c.model("PodIP", "One IP address of a pod.", """
    ip string @req  The address.
""")
c.model("HostIP", "One IP address of a node hosting a pod.", """
    ip string @req  The address.
""")
c.model("PodResourceClaimStatus", "The ResourceClaim made for one of the pod's claims.", """
    name              string @req  Name of the entry in spec.resourceClaims.
    resourceClaimName string  Name of the generated ResourceClaim.
""")
c.model("ContainerStatus", "The observed state of one container.", """
    name         string @req  Container name.
    state        ContainerState  Current state.
    lastState    ContainerState  State of the previous run, if it was restarted.
    ready        bool @req  Whether the readiness probe passes.
    restartCount int32 @req  Number of restarts.
    image        string @req  Image the container runs.
    imageID      string @req  Digest of the image.
    containerID  string  Runtime ID, as <runtime>://<id>.
    started      bool    Whether the startup probe has passed.
    resources    ResourceRequirements  Resources currently applied to the container.
    allocatedResources {}Quantity  Resources the node allocated.
    allocatedResourcesStatus []object @keyed:name  Health of allocated devices.
    user         object  User and groups the process runs as.
    volumeMounts []object @keyed:mountPath  Mounts as the runtime made them.
    stopSignal   string  Signal the container is stopped with.
""")
c.model("ContainerState", "The state of a container; exactly one field is set.", """
    waiting    ContainerStateWaiting     Not running yet.
    running    ContainerStateRunning     Running.
    terminated ContainerStateTerminated  Exited.
""")
c.model("ContainerStateWaiting", "A container that is not running yet.", """
    reason  string  Why, e.g. ContainerCreating or ImagePullBackOff.
    message string  Details.
""")
c.model("ContainerStateRunning", "A running container.", """
    startedAt Time  When it last started.
""")
c.model("ContainerStateTerminated", "A container that exited.", """
    exitCode    int32 @req  Exit code.
    signal      int32   Signal that ended it.
    reason      string  Why, e.g. Completed or OOMKilled.
    message     string  Details, such as the termination message.
    startedAt   Time    When it started.
    finishedAt  Time    When it exited.
    containerID string  Runtime ID.
""")
c.model("VirtualMachineStatus", "Arktos: the observed state of a pod's virtual machine.", """
    name             string @req  Name of the VM.
    virtualMachineId string  ID the VM runtime gave the VM.
    imageId          string  ID of the image the VM booted from.
    image            string  Image the VM runs.
    state            string  Life-cycle state: active, paused, suspended, stopped, error, ...
    lastTerminationState string  State the VM was in when it last stopped.
    powerState       string @enum:nostate|running|paused|shutdown|crashed|suspended
                             Power state the hypervisor reports.
    ready            bool    Whether the VM is up and ready.
    restartCount     int32   Number of times the VM was restarted.
    resources        ResourceRequirements  Resources currently applied to the VM.
""")
