"""Kubernetes protobuf request bodies, decoded to the JSON-shaped dicts the rest of the server takes.

kubectl 1.32+ sends the bodies of its typed-client requests (`create
deployment`, `create secret`, `create token`, `auth can-i`, `autoscale`,
`drain`'s evictions, ...) as `application/vnd.kubernetes.protobuf` and never
falls back to JSON.  This module turns such a body into exactly the dict the
JSON of the same object would have parsed to, so validation, defaulting,
admission and managed fields run unchanged.  Responses stay JSON (kubectl
accepts them): nothing here encodes.

The wire format: the 4 bytes `k8s\\x00`, then a `runtime.Unknown` message
(typeMeta=1 {apiVersion=1, kind=2}, raw=2, contentEncoding=3,
contentType=4) whose `raw` is the protobuf of the typed object, with the field
numbers of k8s.io/api's `generated.proto` files, described by `_MESSAGES`.

Why a hand-written decoder rather than the `protobuf` package: the output is
not a protobuf message but Kubernetes' JSON, which differs from protobuf's own
JSON mapping in every way that matters here (embedded structs are inlined,
`omitempty` drops zero scalars except behind pointers, Time is RFC 3339,
Quantity and IntOrString are bare values, maps of bytes are base64), so a
table walk to dicts would be needed after the package's parse anyway.  The
wire format itself is four cases (varint, 64-bit, length-delimited, 32-bit),
and walking it directly also lets an unknown field number be refused with its
message and path instead of being carried silently in an unknown-field set.

The table: message -> "jsonName number type; ...", where type is
  string | bytes | bool | int32 | int64 | double | float   a scalar
  Time | MicroTime | Quantity | IntOrString | FieldsV1 | ExtraValue | Duration
                                   the apimachinery types with their own JSON
  Name                             another message of the table
  *type                            repeated (packed or not)
  {type}                           map<string, type> (entries key=1, value=2)
  ^Name                            an embedded struct: its fields go inline
  type?                            kept when zero: a pointer field in Go (or one
                                   without omitempty), where 0, "" and false are
                                   what the client set; other zero scalars are
                                   dropped as `omitempty` drops them.
Messages are always kept when present: Go writes a struct field that is not a
pointer even when empty, and its JSON has `{}` there too.  The numbers are
those of Kubernetes 1.33 (`tools/check_protobuf_table.py` compares the table
with the descriptors compiled into a kubectl binary).

Errors: a kind or a field number the table does not know is 415 with a
message naming it and asking for JSON (decoding around it would lose what
the client sent); malformed bytes are 400.
"""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from arktos.api import errors

__all__ = ["KINDS", "MAGIC", "MEDIA_TYPE", "decode"]

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
MAX_DEPTH = 100

# (apiVersion, kind) -> message.  DeleteOptions is taken under any apiVersion:
# clients send it in the group version of the resource being deleted.
KINDS: dict[tuple[str, str], str] = {
    ("v1", "Namespace"): "Namespace",
    ("v1", "Secret"): "Secret",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Service"): "Service",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Pod"): "Pod",
    ("v1", "Binding"): "Binding",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("apps/v1", "Deployment"): "Deployment",
    ("apps/v1", "ReplicaSet"): "ReplicaSet",
    ("coordination.k8s.io/v1", "Lease"): "Lease",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "ClusterRoleBinding",
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("policy/v1", "Eviction"): "Eviction",
    ("scheduling.k8s.io/v1", "PriorityClass"): "PriorityClass",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    ("autoscaling/v1", "Scale"): "Scale",
    ("autoscaling/v1", "HorizontalPodAutoscaler"): "HorizontalPodAutoscalerV1",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "HorizontalPodAutoscaler",
}

_MESSAGES: dict[str, str] = {
    "DeleteOptions": "gracePeriodSeconds 1 int64?; preconditions 2 Preconditions; orphanDependents 3 bool?;"
                     " propagationPolicy 4 string?; dryRun 5 *string;"
                     " ignoreStoreReadErrorWithClusterBreakingPotential 6 bool?",
    "Namespace": "metadata 1 ObjectMeta; spec 2 NamespaceSpec; status 3 NamespaceStatus",
    "Secret": "metadata 1 ObjectMeta; immutable 5 bool?; data 2 {bytes}; stringData 4 {string}; type 3 string",
    "ConfigMap": "metadata 1 ObjectMeta; immutable 4 bool?; data 2 {string}; binaryData 3 {bytes}",
    "Service": "metadata 1 ObjectMeta; spec 2 ServiceSpec; status 3 ServiceStatus",
    "ServiceAccount": "metadata 1 ObjectMeta; secrets 2 *ObjectReference; imagePullSecrets 3 *LocalObjectReference;"
                      " automountServiceAccountToken 4 bool?",
    "Pod": "metadata 1 ObjectMeta; spec 2 PodSpec; status 3 PodStatus",
    "Binding": "metadata 1 ObjectMeta; target 2 ObjectReference",
    "ResourceQuota": "metadata 1 ObjectMeta; spec 2 ResourceQuotaSpec; status 3 ResourceQuotaStatus",
    "Deployment": "metadata 1 ObjectMeta; spec 2 DeploymentSpec; status 3 DeploymentStatus",
    "ReplicaSet": "metadata 1 ObjectMeta; spec 2 ReplicaSetSpec; status 3 ReplicaSetStatus",
    "Lease": "metadata 1 ObjectMeta; spec 2 LeaseSpec",
    "Job": "metadata 1 ObjectMeta; spec 2 JobSpec; status 3 JobStatus",
    "CronJob": "metadata 1 ObjectMeta; spec 2 CronJobSpec; status 3 CronJobStatus",
    "Role": "metadata 1 ObjectMeta; rules 2 *PolicyRule?",
    "RoleBinding": "metadata 1 ObjectMeta; subjects 2 *Subject; roleRef 3 RoleRef",
    "ClusterRole": "metadata 1 ObjectMeta; rules 2 *PolicyRule?; aggregationRule 3 AggregationRule",
    "ClusterRoleBinding": "metadata 1 ObjectMeta; subjects 2 *Subject; roleRef 3 RoleRef",
    "PodDisruptionBudget": "metadata 1 ObjectMeta; spec 2 PodDisruptionBudgetSpec;"
                           " status 3 PodDisruptionBudgetStatus",
    "Eviction": "metadata 1 ObjectMeta; deleteOptions 2 DeleteOptions",
    "PriorityClass": "metadata 1 ObjectMeta; value 2 int32?; globalDefault 3 bool; description 4 string;"
                     " preemptionPolicy 5 string?",
    "Ingress": "metadata 1 ObjectMeta; spec 2 IngressSpec; status 3 IngressStatus",
    "TokenRequest": "metadata 1 ObjectMeta; spec 2 TokenRequestSpec; status 3 TokenRequestStatus",
    "SelfSubjectReview": "metadata 1 ObjectMeta; status 2 SelfSubjectReviewStatus",
    "SelfSubjectAccessReview": "metadata 1 ObjectMeta; spec 2 SelfSubjectAccessReviewSpec;"
                               " status 3 SubjectAccessReviewStatus",
    "SelfSubjectRulesReview": "metadata 1 ObjectMeta; spec 2 SelfSubjectRulesReviewSpec;"
                              " status 3 SubjectRulesReviewStatus",
    "Scale": "metadata 1 ObjectMeta; spec 2 ScaleSpec; status 3 ScaleStatus",
    "HorizontalPodAutoscalerV1": "metadata 1 ObjectMeta; spec 2 HorizontalPodAutoscalerSpecV1;"
                                 " status 3 HorizontalPodAutoscalerStatusV1",
    "HorizontalPodAutoscaler": "metadata 1 ObjectMeta; spec 2 HorizontalPodAutoscalerSpec;"
                               " status 3 HorizontalPodAutoscalerStatus",
    "Preconditions": "uid 1 string?; resourceVersion 2 string?",
    "ObjectMeta": "name 1 string; generateName 2 string; namespace 3 string; selfLink 4 string; uid 5 string;"
                  " resourceVersion 6 string; generation 7 int64; creationTimestamp 8 Time; deletionTimestamp 9 Time;"
                  " deletionGracePeriodSeconds 10 int64?; labels 11 {string}; annotations 12 {string};"
                  " ownerReferences 13 *OwnerReference; finalizers 14 *string; managedFields 17 *ManagedFieldsEntry",
    "NamespaceSpec": "finalizers 1 *string",
    "NamespaceStatus": "phase 1 string; conditions 2 *NamespaceCondition",
    "ServiceSpec": "ports 1 *ServicePort; selector 2 {string}; clusterIP 3 string; clusterIPs 18 *string;"
                   " type 4 string; externalIPs 5 *string; sessionAffinity 7 string; loadBalancerIP 8 string;"
                   " loadBalancerSourceRanges 9 *string; externalName 10 string; externalTrafficPolicy 11 string;"
                   " healthCheckNodePort 12 int32; publishNotReadyAddresses 13 bool;"
                   " sessionAffinityConfig 14 SessionAffinityConfig; ipFamilies 19 *string; ipFamilyPolicy 17 string?;"
                   " allocateLoadBalancerNodePorts 20 bool?; loadBalancerClass 21 string?;"
                   " internalTrafficPolicy 22 string?; trafficDistribution 23 string?",
    "ServiceStatus": "loadBalancer 1 LoadBalancerStatus; conditions 2 *Condition",
    "ObjectReference": "kind 1 string; namespace 2 string; name 3 string; uid 4 string; apiVersion 5 string;"
                       " resourceVersion 6 string; fieldPath 7 string",
    "LocalObjectReference": "name 1 string",
    "PodSpec": "volumes 1 *Volume; initContainers 20 *Container; containers 2 *Container?;"
               " ephemeralContainers 34 *EphemeralContainer; restartPolicy 3 string;"
               " terminationGracePeriodSeconds 4 int64?; activeDeadlineSeconds 5 int64?; dnsPolicy 6 string;"
               " nodeSelector 7 {string}; serviceAccountName 8 string; serviceAccount 9 string;"
               " automountServiceAccountToken 21 bool?; nodeName 10 string; hostNetwork 11 bool; hostPID 12 bool;"
               " hostIPC 13 bool; shareProcessNamespace 27 bool?; securityContext 14 PodSecurityContext;"
               " imagePullSecrets 15 *LocalObjectReference; hostname 16 string; subdomain 17 string;"
               " affinity 18 Affinity; schedulerName 19 string; tolerations 22 *Toleration; hostAliases 23 *HostAlias;"
               " priorityClassName 24 string; priority 25 int32?; dnsConfig 26 PodDNSConfig;"
               " readinessGates 28 *PodReadinessGate; runtimeClassName 29 string?; enableServiceLinks 30 bool?;"
               " preemptionPolicy 31 string?; overhead 32 {Quantity};"
               " topologySpreadConstraints 33 *TopologySpreadConstraint; setHostnameAsFQDN 35 bool?; os 36 PodOS;"
               " hostUsers 37 bool?; schedulingGates 38 *PodSchedulingGate; resourceClaims 39 *PodResourceClaim;"
               " resources 40 ResourceRequirements",
    "PodStatus": "observedGeneration 17 int64; phase 1 string; conditions 2 *PodCondition; message 3 string;"
                 " reason 4 string; nominatedNodeName 11 string; hostIP 5 string; hostIPs 16 *HostIP; podIP 6 string;"
                 " podIPs 12 *PodIP; startTime 7 Time; initContainerStatuses 10 *ContainerStatus;"
                 " containerStatuses 8 *ContainerStatus; qosClass 9 string;"
                 " ephemeralContainerStatuses 13 *ContainerStatus; resize 14 string;"
                 " resourceClaimStatuses 15 *PodResourceClaimStatus",
    "ResourceQuotaSpec": "hard 1 {Quantity}; scopes 2 *string; scopeSelector 3 ScopeSelector",
    "ResourceQuotaStatus": "hard 1 {Quantity}; used 2 {Quantity}",
    "DeploymentSpec": "replicas 1 int32?; selector 2 LabelSelector; template 3 PodTemplateSpec;"
                      " strategy 4 DeploymentStrategy; minReadySeconds 5 int32; revisionHistoryLimit 6 int32?;"
                      " paused 7 bool; progressDeadlineSeconds 9 int32?",
    "DeploymentStatus": "observedGeneration 1 int64; replicas 2 int32; updatedReplicas 3 int32;"
                        " readyReplicas 7 int32; availableReplicas 4 int32; unavailableReplicas 5 int32;"
                        " terminatingReplicas 9 int32?; conditions 6 *DeploymentCondition; collisionCount 8 int32?",
    "ReplicaSetSpec": "replicas 1 int32?; minReadySeconds 4 int32; selector 2 LabelSelector;"
                      " template 3 PodTemplateSpec",
    "ReplicaSetStatus": "replicas 1 int32?; fullyLabeledReplicas 2 int32; readyReplicas 4 int32;"
                        " availableReplicas 5 int32; terminatingReplicas 7 int32?; observedGeneration 3 int64;"
                        " conditions 6 *ReplicaSetCondition",
    "LeaseSpec": "holderIdentity 1 string?; leaseDurationSeconds 2 int32?; acquireTime 3 MicroTime;"
                 " renewTime 4 MicroTime; leaseTransitions 5 int32?; strategy 6 string?; preferredHolder 7 string?",
    "JobSpec": "parallelism 1 int32?; completions 2 int32?; activeDeadlineSeconds 3 int64?;"
               " podFailurePolicy 11 PodFailurePolicy; successPolicy 16 SuccessPolicy; backoffLimit 7 int32?;"
               " backoffLimitPerIndex 12 int32?; maxFailedIndexes 13 int32?; selector 4 LabelSelector;"
               " manualSelector 5 bool?; template 6 PodTemplateSpec; ttlSecondsAfterFinished 8 int32?;"
               " completionMode 9 string?; suspend 10 bool?; podReplacementPolicy 14 string?; managedBy 15 string?",
    "JobStatus": "conditions 1 *JobCondition; startTime 2 Time; completionTime 3 Time; active 4 int32;"
                 " succeeded 5 int32; failed 6 int32; terminating 11 int32?; completedIndexes 7 string;"
                 " failedIndexes 10 string?; uncountedTerminatedPods 8 UncountedTerminatedPods; ready 9 int32?",
    "CronJobSpec": "schedule 1 string; timeZone 8 string?; startingDeadlineSeconds 2 int64?;"
                   " concurrencyPolicy 3 string; suspend 4 bool?; jobTemplate 5 JobTemplateSpec;"
                   " successfulJobsHistoryLimit 6 int32?; failedJobsHistoryLimit 7 int32?",
    "CronJobStatus": "active 1 *ObjectReference; lastScheduleTime 4 Time; lastSuccessfulTime 5 Time",
    "PolicyRule": "verbs 1 *string?; apiGroups 2 *string; resources 3 *string; resourceNames 4 *string;"
                  " nonResourceURLs 5 *string",
    "Subject": "kind 1 string; apiGroup 2 string; name 3 string; namespace 4 string",
    "RoleRef": "apiGroup 1 string; kind 2 string; name 3 string",
    "AggregationRule": "clusterRoleSelectors 1 *LabelSelector",
    "PodDisruptionBudgetSpec": "minAvailable 1 IntOrString; selector 2 LabelSelector; maxUnavailable 3 IntOrString;"
                               " unhealthyPodEvictionPolicy 4 string?",
    "PodDisruptionBudgetStatus": "observedGeneration 1 int64; disruptedPods 2 {Time}; disruptionsAllowed 3 int32?;"
                                 " currentHealthy 4 int32?; desiredHealthy 5 int32?; expectedPods 6 int32?;"
                                 " conditions 7 *Condition",
    "IngressSpec": "ingressClassName 4 string?; defaultBackend 1 IngressBackend; tls 2 *IngressTLS;"
                   " rules 3 *IngressRule",
    "IngressStatus": "loadBalancer 1 IngressLoadBalancerStatus",
    "TokenRequestSpec": "audiences 1 *string?; expirationSeconds 4 int64?; boundObjectRef 3 BoundObjectReference",
    "TokenRequestStatus": "token 1 string?; expirationTimestamp 2 Time",
    "SelfSubjectReviewStatus": "userInfo 1 UserInfo",
    "SelfSubjectAccessReviewSpec": "resourceAttributes 1 ResourceAttributes;"
                                   " nonResourceAttributes 2 NonResourceAttributes",
    "SubjectAccessReviewStatus": "allowed 1 bool?; denied 4 bool; reason 2 string; evaluationError 3 string",
    "SelfSubjectRulesReviewSpec": "namespace 1 string",
    "SubjectRulesReviewStatus": "resourceRules 1 *ResourceRule?; nonResourceRules 2 *NonResourceRule?;"
                                " incomplete 3 bool?; evaluationError 4 string",
    "ScaleSpec": "replicas 1 int32",
    "ScaleStatus": "replicas 1 int32?; selector 2 string",
    "HorizontalPodAutoscalerSpecV1": "scaleTargetRef 1 CrossVersionObjectReference; minReplicas 2 int32?;"
                                     " maxReplicas 3 int32?; targetCPUUtilizationPercentage 4 int32?",
    "HorizontalPodAutoscalerStatusV1": "observedGeneration 1 int64?; lastScaleTime 2 Time; currentReplicas 3 int32?;"
                                       " desiredReplicas 4 int32?; currentCPUUtilizationPercentage 5 int32?",
    "HorizontalPodAutoscalerSpec": "scaleTargetRef 1 CrossVersionObjectReference; minReplicas 2 int32?;"
                                   " maxReplicas 3 int32?; metrics 4 *MetricSpec;"
                                   " behavior 5 HorizontalPodAutoscalerBehavior",
    "HorizontalPodAutoscalerStatus": "observedGeneration 1 int64?; lastScaleTime 2 Time; currentReplicas 3 int32;"
                                     " desiredReplicas 4 int32?; currentMetrics 5 *MetricStatus?;"
                                     " conditions 6 *HorizontalPodAutoscalerCondition",
    "OwnerReference": "apiVersion 5 string; kind 1 string; name 3 string; uid 4 string; controller 6 bool?;"
                      " blockOwnerDeletion 7 bool?",
    "ManagedFieldsEntry": "manager 1 string; operation 2 string; apiVersion 3 string; time 4 Time;"
                          " fieldsType 6 string; fieldsV1 7 FieldsV1; subresource 8 string",
    "NamespaceCondition": "type 1 string; status 2 string; lastTransitionTime 4 Time; reason 5 string;"
                          " message 6 string",
    "ServicePort": "name 1 string; protocol 2 string; appProtocol 6 string?; port 3 int32?; targetPort 4 IntOrString;"
                   " nodePort 5 int32",
    "SessionAffinityConfig": "clientIP 1 ClientIPConfig",
    "LoadBalancerStatus": "ingress 1 *LoadBalancerIngress",
    "Condition": "type 1 string; status 2 string; observedGeneration 3 int64; lastTransitionTime 4 Time;"
                 " reason 5 string; message 6 string",
    "Volume": "name 1 string; volumeSource 2 ^VolumeSource",
    "Container": "name 1 string; image 2 string; command 3 *string; args 4 *string; workingDir 5 string;"
                 " ports 6 *ContainerPort; envFrom 19 *EnvFromSource; env 7 *EnvVar; resources 8 ResourceRequirements;"
                 " resizePolicy 23 *ContainerResizePolicy; restartPolicy 24 string?; volumeMounts 9 *VolumeMount;"
                 " volumeDevices 21 *VolumeDevice; livenessProbe 10 Probe; readinessProbe 11 Probe;"
                 " startupProbe 22 Probe; lifecycle 12 Lifecycle; terminationMessagePath 13 string;"
                 " terminationMessagePolicy 20 string; imagePullPolicy 14 string; securityContext 15 SecurityContext;"
                 " stdin 16 bool; stdinOnce 17 bool; tty 18 bool",
    "EphemeralContainer": "ephemeralContainerCommon 1 ^EphemeralContainerCommon; targetContainerName 2 string",
    "PodSecurityContext": "seLinuxOptions 1 SELinuxOptions; windowsOptions 8 WindowsSecurityContextOptions;"
                          " runAsUser 2 int64?; runAsGroup 6 int64?; runAsNonRoot 3 bool?;"
                          " supplementalGroups 4 *int64; supplementalGroupsPolicy 12 string?; fsGroup 5 int64?;"
                          " sysctls 7 *Sysctl; fsGroupChangePolicy 9 string?; seccompProfile 10 SeccompProfile;"
                          " appArmorProfile 11 AppArmorProfile; seLinuxChangePolicy 13 string?",
    "Affinity": "nodeAffinity 1 NodeAffinity; podAffinity 2 PodAffinity; podAntiAffinity 3 PodAntiAffinity",
    "Toleration": "key 1 string; operator 2 string; value 3 string; effect 4 string; tolerationSeconds 5 int64?",
    "HostAlias": "ip 1 string; hostnames 2 *string",
    "PodDNSConfig": "nameservers 1 *string; searches 2 *string; options 3 *PodDNSConfigOption",
    "PodReadinessGate": "conditionType 1 string",
    "TopologySpreadConstraint": "maxSkew 1 int32?; topologyKey 2 string; whenUnsatisfiable 3 string;"
                                " labelSelector 4 LabelSelector; minDomains 5 int32?; nodeAffinityPolicy 6 string?;"
                                " nodeTaintsPolicy 7 string?; matchLabelKeys 8 *string",
    "PodOS": "name 1 string",
    "PodSchedulingGate": "name 1 string",
    "PodResourceClaim": "name 1 string; resourceClaimName 3 string?; resourceClaimTemplateName 4 string?",
    "ResourceRequirements": "limits 1 {Quantity}; requests 2 {Quantity}; claims 3 *ResourceClaim",
    "PodCondition": "type 1 string; observedGeneration 7 int64; status 2 string; lastProbeTime 3 Time;"
                    " lastTransitionTime 4 Time; reason 5 string; message 6 string",
    "HostIP": "ip 1 string",
    "PodIP": "ip 1 string",
    "ContainerStatus": "name 1 string; state 2 ContainerState; lastState 3 ContainerState; ready 4 bool?;"
                       " restartCount 5 int32?; image 6 string; imageID 7 string; containerID 8 string;"
                       " started 9 bool?; allocatedResources 10 {Quantity}; resources 11 ResourceRequirements;"
                       " volumeMounts 12 *VolumeMountStatus; user 13 ContainerUser;"
                       " allocatedResourcesStatus 14 *ResourceStatus; stopSignal 15 string?",
    "PodResourceClaimStatus": "name 1 string; resourceClaimName 2 string",
    "ScopeSelector": "matchExpressions 1 *ScopedResourceSelectorRequirement",
    "LabelSelector": "matchLabels 1 {string}; matchExpressions 2 *LabelSelectorRequirement",
    "PodTemplateSpec": "metadata 1 ObjectMeta; spec 2 PodSpec",
    "DeploymentStrategy": "type 1 string; rollingUpdate 2 RollingUpdateDeployment",
    "DeploymentCondition": "type 1 string; status 2 string; lastUpdateTime 6 Time; lastTransitionTime 7 Time;"
                           " reason 4 string; message 5 string",
    "ReplicaSetCondition": "type 1 string; status 2 string; lastTransitionTime 3 Time; reason 4 string;"
                           " message 5 string",
    "PodFailurePolicy": "rules 1 *PodFailurePolicyRule?",
    "SuccessPolicy": "rules 1 *SuccessPolicyRule?",
    "JobCondition": "type 1 string; status 2 string; lastProbeTime 3 Time; lastTransitionTime 4 Time;"
                    " reason 5 string; message 6 string",
    "UncountedTerminatedPods": "succeeded 1 *string; failed 2 *string",
    "JobTemplateSpec": "metadata 1 ObjectMeta; spec 2 JobSpec",
    "IngressBackend": "service 4 IngressServiceBackend; resource 3 TypedLocalObjectReference",
    "IngressTLS": "hosts 1 *string; secretName 2 string",
    "IngressRule": "host 1 string; ingressRuleValue 2 ^IngressRuleValue",
    "IngressLoadBalancerStatus": "ingress 1 *IngressLoadBalancerIngress",
    "BoundObjectReference": "kind 1 string; apiVersion 2 string; name 3 string; uid 4 string",
    "UserInfo": "username 1 string; uid 2 string; groups 3 *string; extra 4 {ExtraValue}",
    "ResourceAttributes": "namespace 1 string; verb 2 string; group 3 string; version 4 string; resource 5 string;"
                          " subresource 6 string; name 7 string; fieldSelector 8 FieldSelectorAttributes;"
                          " labelSelector 9 LabelSelectorAttributes",
    "NonResourceAttributes": "path 1 string; verb 2 string",
    "ResourceRule": "verbs 1 *string?; apiGroups 2 *string; resources 3 *string; resourceNames 4 *string",
    "NonResourceRule": "verbs 1 *string?; nonResourceURLs 2 *string",
    "CrossVersionObjectReference": "kind 1 string; name 2 string; apiVersion 3 string",
    "MetricSpec": "type 1 string; object 2 ObjectMetricSource; pods 3 PodsMetricSource;"
                  " resource 4 ResourceMetricSource; containerResource 7 ContainerResourceMetricSource;"
                  " external 5 ExternalMetricSource",
    "HorizontalPodAutoscalerBehavior": "scaleUp 1 HPAScalingRules; scaleDown 2 HPAScalingRules",
    "MetricStatus": "type 1 string; object 2 ObjectMetricStatus; pods 3 PodsMetricStatus;"
                    " resource 4 ResourceMetricStatus; containerResource 7 ContainerResourceMetricStatus;"
                    " external 5 ExternalMetricStatus",
    "HorizontalPodAutoscalerCondition": "type 1 string; status 2 string; lastTransitionTime 3 Time; reason 4 string;"
                                        " message 5 string",
    "ClientIPConfig": "timeoutSeconds 1 int32?",
    "LoadBalancerIngress": "ip 1 string; hostname 2 string; ipMode 3 string?; ports 4 *PortStatus",
    "VolumeSource": "hostPath 1 HostPathVolumeSource; emptyDir 2 EmptyDirVolumeSource;"
                    " gcePersistentDisk 3 GCEPersistentDiskVolumeSource;"
                    " awsElasticBlockStore 4 AWSElasticBlockStoreVolumeSource; gitRepo 5 GitRepoVolumeSource;"
                    " secret 6 SecretVolumeSource; nfs 7 NFSVolumeSource; iscsi 8 ISCSIVolumeSource;"
                    " glusterfs 9 GlusterfsVolumeSource; persistentVolumeClaim 10 PersistentVolumeClaimVolumeSource;"
                    " rbd 11 RBDVolumeSource; flexVolume 12 FlexVolumeSource; cinder 13 CinderVolumeSource;"
                    " cephfs 14 CephFSVolumeSource; flocker 15 FlockerVolumeSource;"
                    " downwardAPI 16 DownwardAPIVolumeSource; fc 17 FCVolumeSource;"
                    " azureFile 18 AzureFileVolumeSource; configMap 19 ConfigMapVolumeSource;"
                    " vsphereVolume 20 VsphereVirtualDiskVolumeSource; quobyte 21 QuobyteVolumeSource;"
                    " azureDisk 22 AzureDiskVolumeSource; photonPersistentDisk 23 PhotonPersistentDiskVolumeSource;"
                    " projected 26 ProjectedVolumeSource; portworxVolume 24 PortworxVolumeSource;"
                    " scaleIO 25 ScaleIOVolumeSource; storageos 27 StorageOSVolumeSource; csi 28 CSIVolumeSource;"
                    " ephemeral 29 EphemeralVolumeSource; image 30 ImageVolumeSource",
    "ContainerPort": "name 1 string; hostPort 2 int32; containerPort 3 int32?; protocol 4 string; hostIP 5 string",
    "EnvFromSource": "prefix 1 string; configMapRef 2 ConfigMapEnvSource; secretRef 3 SecretEnvSource",
    "EnvVar": "name 1 string; value 2 string; valueFrom 3 EnvVarSource",
    "ContainerResizePolicy": "resourceName 1 string; restartPolicy 2 string",
    "VolumeMount": "name 1 string; readOnly 2 bool; recursiveReadOnly 7 string?; mountPath 3 string;"
                   " subPath 4 string; mountPropagation 5 string?; subPathExpr 6 string",
    "VolumeDevice": "name 1 string; devicePath 2 string",
    "Probe": "handler 1 ^ProbeHandler; initialDelaySeconds 2 int32; timeoutSeconds 3 int32; periodSeconds 4 int32;"
             " successThreshold 5 int32; failureThreshold 6 int32; terminationGracePeriodSeconds 7 int64?",
    "Lifecycle": "postStart 1 LifecycleHandler; preStop 2 LifecycleHandler; stopSignal 3 string?",
    "SecurityContext": "capabilities 1 Capabilities; privileged 2 bool?; seLinuxOptions 3 SELinuxOptions;"
                       " windowsOptions 10 WindowsSecurityContextOptions; runAsUser 4 int64?; runAsGroup 8 int64?;"
                       " runAsNonRoot 5 bool?; readOnlyRootFilesystem 6 bool?; allowPrivilegeEscalation 7 bool?;"
                       " procMount 9 string?; seccompProfile 11 SeccompProfile; appArmorProfile 12 AppArmorProfile",
    "EphemeralContainerCommon": "name 1 string; image 2 string; command 3 *string; args 4 *string;"
                                " workingDir 5 string; ports 6 *ContainerPort; envFrom 19 *EnvFromSource;"
                                " env 7 *EnvVar; resources 8 ResourceRequirements;"
                                " resizePolicy 23 *ContainerResizePolicy; restartPolicy 24 string?;"
                                " volumeMounts 9 *VolumeMount; volumeDevices 21 *VolumeDevice; livenessProbe 10 Probe;"
                                " readinessProbe 11 Probe; startupProbe 22 Probe; lifecycle 12 Lifecycle;"
                                " terminationMessagePath 13 string; terminationMessagePolicy 20 string;"
                                " imagePullPolicy 14 string; securityContext 15 SecurityContext; stdin 16 bool;"
                                " stdinOnce 17 bool; tty 18 bool",
    "SELinuxOptions": "user 1 string; role 2 string; type 3 string; level 4 string",
    "WindowsSecurityContextOptions": "gmsaCredentialSpecName 1 string?; gmsaCredentialSpec 2 string?;"
                                     " runAsUserName 3 string?; hostProcess 4 bool?",
    "Sysctl": "name 1 string; value 2 string",
    "SeccompProfile": "type 1 string; localhostProfile 2 string?",
    "AppArmorProfile": "type 1 string; localhostProfile 2 string?",
    "NodeAffinity": "requiredDuringSchedulingIgnoredDuringExecution 1 NodeSelector;"
                    " preferredDuringSchedulingIgnoredDuringExecution 2 *PreferredSchedulingTerm",
    "PodAffinity": "requiredDuringSchedulingIgnoredDuringExecution 1 *PodAffinityTerm;"
                   " preferredDuringSchedulingIgnoredDuringExecution 2 *WeightedPodAffinityTerm",
    "PodAntiAffinity": "requiredDuringSchedulingIgnoredDuringExecution 1 *PodAffinityTerm;"
                       " preferredDuringSchedulingIgnoredDuringExecution 2 *WeightedPodAffinityTerm",
    "PodDNSConfigOption": "name 1 string; value 2 string?",
    "ResourceClaim": "name 1 string; request 2 string",
    "ContainerState": "waiting 1 ContainerStateWaiting; running 2 ContainerStateRunning;"
                      " terminated 3 ContainerStateTerminated",
    "VolumeMountStatus": "name 1 string; mountPath 2 string; readOnly 3 bool; recursiveReadOnly 4 string",
    "ContainerUser": "linux 1 LinuxContainerUser",
    "ResourceStatus": "name 1 string; resources 2 *ResourceHealth",
    "ScopedResourceSelectorRequirement": "scopeName 1 string; operator 2 string; values 3 *string",
    "LabelSelectorRequirement": "key 1 string; operator 2 string; values 3 *string",
    "RollingUpdateDeployment": "maxUnavailable 1 IntOrString; maxSurge 2 IntOrString",
    "PodFailurePolicyRule": "action 1 string; onExitCodes 2 PodFailurePolicyOnExitCodesRequirement;"
                            " onPodConditions 3 *PodFailurePolicyOnPodConditionsPattern",
    "SuccessPolicyRule": "succeededIndexes 1 string?; succeededCount 2 int32?",
    "IngressServiceBackend": "name 1 string; port 2 ServiceBackendPort",
    "TypedLocalObjectReference": "apiGroup 1 string?; kind 2 string; name 3 string",
    "IngressRuleValue": "http 1 HTTPIngressRuleValue",
    "IngressLoadBalancerIngress": "ip 1 string; hostname 2 string; ports 4 *IngressPortStatus",
    "FieldSelectorAttributes": "rawSelector 1 string; requirements 2 *FieldSelectorRequirement",
    "LabelSelectorAttributes": "rawSelector 1 string; requirements 2 *LabelSelectorRequirement",
    "ObjectMetricSource": "describedObject 1 CrossVersionObjectReference; target 2 MetricTarget;"
                          " metric 3 MetricIdentifier",
    "PodsMetricSource": "metric 1 MetricIdentifier; target 2 MetricTarget",
    "ResourceMetricSource": "name 1 string; target 2 MetricTarget",
    "ContainerResourceMetricSource": "name 1 string; target 2 MetricTarget; container 3 string",
    "ExternalMetricSource": "metric 1 MetricIdentifier; target 2 MetricTarget",
    "HPAScalingRules": "stabilizationWindowSeconds 3 int32?; selectPolicy 1 string?; policies 2 *HPAScalingPolicy;"
                       " tolerance 4 Quantity",
    "ObjectMetricStatus": "metric 1 MetricIdentifier; current 2 MetricValueStatus;"
                          " describedObject 3 CrossVersionObjectReference",
    "PodsMetricStatus": "metric 1 MetricIdentifier; current 2 MetricValueStatus",
    "ResourceMetricStatus": "name 1 string; current 2 MetricValueStatus",
    "ContainerResourceMetricStatus": "name 1 string; current 2 MetricValueStatus; container 3 string",
    "ExternalMetricStatus": "metric 1 MetricIdentifier; current 2 MetricValueStatus",
    "PortStatus": "port 1 int32?; protocol 2 string; error 3 string?",
    "HostPathVolumeSource": "path 1 string; type 2 string?",
    "EmptyDirVolumeSource": "medium 1 string; sizeLimit 2 Quantity",
    "GCEPersistentDiskVolumeSource": "pdName 1 string; fsType 2 string; partition 3 int32; readOnly 4 bool",
    "AWSElasticBlockStoreVolumeSource": "volumeID 1 string; fsType 2 string; partition 3 int32; readOnly 4 bool",
    "GitRepoVolumeSource": "repository 1 string; revision 2 string; directory 3 string",
    "SecretVolumeSource": "secretName 1 string; items 2 *KeyToPath; defaultMode 3 int32?; optional 4 bool?",
    "NFSVolumeSource": "server 1 string; path 2 string; readOnly 3 bool",
    "ISCSIVolumeSource": "targetPortal 1 string; iqn 2 string; lun 3 int32?; iscsiInterface 4 string;"
                         " fsType 5 string; readOnly 6 bool; portals 7 *string; chapAuthDiscovery 8 bool;"
                         " chapAuthSession 11 bool; secretRef 10 LocalObjectReference; initiatorName 12 string?",
    "GlusterfsVolumeSource": "endpoints 1 string; path 2 string; readOnly 3 bool",
    "PersistentVolumeClaimVolumeSource": "claimName 1 string; readOnly 2 bool",
    "RBDVolumeSource": "monitors 1 *string; image 2 string; fsType 3 string; pool 4 string; user 5 string;"
                       " keyring 6 string; secretRef 7 LocalObjectReference; readOnly 8 bool",
    "FlexVolumeSource": "driver 1 string; fsType 2 string; secretRef 3 LocalObjectReference; readOnly 4 bool;"
                        " options 5 {string}",
    "CinderVolumeSource": "volumeID 1 string; fsType 2 string; readOnly 3 bool; secretRef 4 LocalObjectReference",
    "CephFSVolumeSource": "monitors 1 *string; path 2 string; user 3 string; secretFile 4 string;"
                          " secretRef 5 LocalObjectReference; readOnly 6 bool",
    "FlockerVolumeSource": "datasetName 1 string; datasetUUID 2 string",
    "DownwardAPIVolumeSource": "items 1 *DownwardAPIVolumeFile; defaultMode 2 int32?",
    "FCVolumeSource": "targetWWNs 1 *string; lun 2 int32?; fsType 3 string; readOnly 4 bool; wwids 5 *string",
    "AzureFileVolumeSource": "secretName 1 string; shareName 2 string; readOnly 3 bool",
    "ConfigMapVolumeSource": "localObjectReference 1 ^LocalObjectReference; items 2 *KeyToPath; defaultMode 3 int32?;"
                             " optional 4 bool?",
    "VsphereVirtualDiskVolumeSource": "volumePath 1 string; fsType 2 string; storagePolicyName 3 string;"
                                      " storagePolicyID 4 string",
    "QuobyteVolumeSource": "registry 1 string; volume 2 string; readOnly 3 bool; user 4 string; group 5 string;"
                           " tenant 6 string",
    "AzureDiskVolumeSource": "diskName 1 string; diskURI 2 string; cachingMode 3 string?; fsType 4 string?;"
                             " readOnly 5 bool?; kind 6 string?",
    "PhotonPersistentDiskVolumeSource": "pdID 1 string; fsType 2 string",
    "ProjectedVolumeSource": "sources 1 *VolumeProjection?; defaultMode 2 int32?",
    "PortworxVolumeSource": "volumeID 1 string; fsType 2 string; readOnly 3 bool",
    "ScaleIOVolumeSource": "gateway 1 string; system 2 string; secretRef 3 LocalObjectReference; sslEnabled 4 bool;"
                           " protectionDomain 5 string; storagePool 6 string; storageMode 7 string;"
                           " volumeName 8 string; fsType 9 string; readOnly 10 bool",
    "StorageOSVolumeSource": "volumeName 1 string; volumeNamespace 2 string; fsType 3 string; readOnly 4 bool;"
                             " secretRef 5 LocalObjectReference",
    "CSIVolumeSource": "driver 1 string; readOnly 2 bool?; fsType 3 string?; volumeAttributes 4 {string};"
                       " nodePublishSecretRef 5 LocalObjectReference",
    "EphemeralVolumeSource": "volumeClaimTemplate 1 PersistentVolumeClaimTemplate",
    "ImageVolumeSource": "reference 1 string; pullPolicy 2 string",
    "ConfigMapEnvSource": "localObjectReference 1 ^LocalObjectReference; optional 2 bool?",
    "SecretEnvSource": "localObjectReference 1 ^LocalObjectReference; optional 2 bool?",
    "EnvVarSource": "fieldRef 1 ObjectFieldSelector; resourceFieldRef 2 ResourceFieldSelector;"
                    " configMapKeyRef 3 ConfigMapKeySelector; secretKeyRef 4 SecretKeySelector",
    "ProbeHandler": "exec 1 ExecAction; httpGet 2 HTTPGetAction; tcpSocket 3 TCPSocketAction; grpc 4 GRPCAction",
    "LifecycleHandler": "exec 1 ExecAction; httpGet 2 HTTPGetAction; tcpSocket 3 TCPSocketAction;"
                        " sleep 4 SleepAction",
    "Capabilities": "add 1 *string; drop 2 *string",
    "NodeSelector": "nodeSelectorTerms 1 *NodeSelectorTerm?",
    "PreferredSchedulingTerm": "weight 1 int32?; preference 2 NodeSelectorTerm",
    "PodAffinityTerm": "labelSelector 1 LabelSelector; namespaces 2 *string; topologyKey 3 string;"
                       " namespaceSelector 4 LabelSelector; matchLabelKeys 5 *string; mismatchLabelKeys 6 *string",
    "WeightedPodAffinityTerm": "weight 1 int32?; podAffinityTerm 2 PodAffinityTerm",
    "ContainerStateWaiting": "reason 1 string; message 2 string",
    "ContainerStateRunning": "startedAt 1 Time",
    "ContainerStateTerminated": "exitCode 1 int32?; signal 2 int32; reason 3 string; message 4 string;"
                                " startedAt 5 Time; finishedAt 6 Time; containerID 7 string",
    "LinuxContainerUser": "uid 1 int64?; gid 2 int64?; supplementalGroups 3 *int64",
    "ResourceHealth": "resourceID 1 string; health 2 string",
    "PodFailurePolicyOnExitCodesRequirement": "containerName 1 string?; operator 2 string; values 3 *int32?",
    "PodFailurePolicyOnPodConditionsPattern": "type 1 string; status 2 string",
    "ServiceBackendPort": "name 1 string; number 2 int32",
    "HTTPIngressRuleValue": "paths 1 *HTTPIngressPath?",
    "IngressPortStatus": "port 1 int32?; protocol 2 string; error 3 string?",
    "FieldSelectorRequirement": "key 1 string; operator 2 string; values 3 *string",
    "MetricTarget": "type 1 string; value 2 Quantity; averageValue 3 Quantity; averageUtilization 4 int32?",
    "MetricIdentifier": "name 1 string; selector 2 LabelSelector",
    "HPAScalingPolicy": "type 1 string; value 2 int32?; periodSeconds 3 int32?",
    "MetricValueStatus": "value 1 Quantity; averageValue 2 Quantity; averageUtilization 3 int32?",
    "KeyToPath": "key 1 string; path 2 string; mode 3 int32?",
    "DownwardAPIVolumeFile": "path 1 string; fieldRef 2 ObjectFieldSelector;"
                             " resourceFieldRef 3 ResourceFieldSelector; mode 4 int32?",
    "VolumeProjection": "secret 1 SecretProjection; downwardAPI 2 DownwardAPIProjection;"
                        " configMap 3 ConfigMapProjection; serviceAccountToken 4 ServiceAccountTokenProjection;"
                        " clusterTrustBundle 5 ClusterTrustBundleProjection",
    "PersistentVolumeClaimTemplate": "metadata 1 ObjectMeta; spec 2 PersistentVolumeClaimSpec",
    "ObjectFieldSelector": "apiVersion 1 string; fieldPath 2 string",
    "ResourceFieldSelector": "containerName 1 string; resource 2 string; divisor 3 Quantity",
    "ConfigMapKeySelector": "localObjectReference 1 ^LocalObjectReference; key 2 string; optional 3 bool?",
    "SecretKeySelector": "localObjectReference 1 ^LocalObjectReference; key 2 string; optional 3 bool?",
    "ExecAction": "command 1 *string",
    "HTTPGetAction": "path 1 string; port 2 IntOrString; host 3 string; scheme 4 string; httpHeaders 5 *HTTPHeader",
    "TCPSocketAction": "port 1 IntOrString; host 2 string",
    "GRPCAction": "port 1 int32?; service 2 string?",
    "SleepAction": "seconds 1 int64?",
    "NodeSelectorTerm": "matchExpressions 1 *NodeSelectorRequirement; matchFields 2 *NodeSelectorRequirement",
    "HTTPIngressPath": "path 1 string; pathType 3 string?; backend 2 IngressBackend",
    "SecretProjection": "localObjectReference 1 ^LocalObjectReference; items 2 *KeyToPath; optional 4 bool?",
    "DownwardAPIProjection": "items 1 *DownwardAPIVolumeFile",
    "ConfigMapProjection": "localObjectReference 1 ^LocalObjectReference; items 2 *KeyToPath; optional 4 bool?",
    "ServiceAccountTokenProjection": "audience 1 string; expirationSeconds 2 int64?; path 3 string",
    "ClusterTrustBundleProjection": "name 1 string?; signerName 2 string?; labelSelector 3 LabelSelector;"
                                    " optional 5 bool?; path 4 string",
    "PersistentVolumeClaimSpec": "accessModes 1 *string; selector 4 LabelSelector;"
                                 " resources 2 VolumeResourceRequirements; volumeName 3 string;"
                                 " storageClassName 5 string?; volumeMode 6 string?;"
                                 " dataSource 7 TypedLocalObjectReference; dataSourceRef 8 TypedObjectReference;"
                                 " volumeAttributesClassName 9 string?",
    "HTTPHeader": "name 1 string; value 2 string",
    "NodeSelectorRequirement": "key 1 string; operator 2 string; values 3 *string",
    "VolumeResourceRequirements": "limits 1 {Quantity}; requests 2 {Quantity}",
    "TypedObjectReference": "apiGroup 1 string?; kind 2 string; name 3 string; namespace 4 string?",
}

_SCALARS = frozenset({"string", "bytes", "bool", "int32", "int64", "double", "float"})
_SPECIAL = frozenset({"Time", "MicroTime", "Quantity", "IntOrString", "FieldsV1", "ExtraValue", "Duration"})
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_WIRE = {"string": _LEN, "bytes": _LEN, "bool": _VARINT, "int32": _VARINT, "int64": _VARINT, "double": _I64,
         "float": _I32}


class _Field:
    __slots__ = ("inline", "keep", "kind", "map", "name", "repeated")

    def __init__(self, spec: str) -> None:
        self.name, _, kind = spec.split()
        self.repeated = kind.startswith("*")
        self.map = kind.startswith("{")
        self.inline = kind.startswith("^")
        self.keep = kind.endswith("?")
        self.kind = kind.strip("*{}^?")


def _parse_table(table: dict[str, str]) -> dict[str, dict[int, _Field]]:
    parsed: dict[str, dict[int, _Field]] = {}
    for message, text in table.items():
        fields: dict[int, _Field] = {}
        for spec in filter(None, (s.strip() for s in text.split(";"))):
            fields[int(spec.split()[1])] = _Field(spec)
        parsed[message] = fields
    for message, fields in parsed.items():
        for f in fields.values():
            if f.kind not in _SCALARS and f.kind not in _SPECIAL and f.kind not in parsed:
                raise ValueError(f"{message}.{f.name}: unknown type {f.kind}")
    return parsed


_TABLE = _parse_table(_MESSAGES)
# Lists and maps without omitempty: Go writes `null` for them when they are empty.
_NULLS = {m: [f.name for f in fields.values() if f.keep and (f.repeated or f.map)] for m, fields in _TABLE.items()}


class _Malformed(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Malformed("a varint runs past the end")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Malformed("a varint is longer than 10 bytes")


def _fields(buf: bytes):
    """(number, wire type, value) for each field: an int for varints, bytes otherwise."""
    pos, end = 0, len(buf)
    while pos < end:
        tag, pos = _varint(buf, pos)
        num, wire = tag >> 3, tag & 7
        if num == 0:
            raise _Malformed("field number 0")
        if wire == _VARINT:
            value, pos = _varint(buf, pos)
            yield num, wire, value
            continue
        if wire == _LEN:
            size, pos = _varint(buf, pos)
            stop = pos + size
        elif wire == _I64:
            stop = pos + 8
        elif wire == _I32:
            stop = pos + 4
        else:
            raise _Malformed(f"wire type {wire} (groups are not used by Kubernetes)")
        if stop > end:
            raise _Malformed(f"field {num} runs past the end of its message")
        yield num, wire, buf[pos:stop]
        pos = stop


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _scalar(kind: str, wire: int, value: Any) -> Any:
    if kind == "string":
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise _Malformed("a string field is not valid UTF-8") from None
    if kind == "bytes":
        return base64.b64encode(value).decode()
    if kind == "bool":
        return value != 0
    if kind == "int32":
        return _signed(value, 32)
    if kind == "int64":
        return _signed(value, 64)
    if kind == "double":
        return struct.unpack("<d", value)[0]
    return struct.unpack("<f", value)[0]


def _packed(kind: str, buf: bytes) -> list[Any]:
    out: list[Any] = []
    pos = 0
    if kind in ("double", "float"):
        size = 8 if kind == "double" else 4
        if len(buf) % size:
            raise _Malformed("a packed field has a partial element")
        return [_scalar(kind, 0, buf[i:i + size]) for i in range(0, len(buf), size)]
    while pos < len(buf):
        value, pos = _varint(buf, pos)
        out.append(_scalar(kind, _VARINT, value))
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(buf: bytes, micro: bool) -> str | None:
    if not buf:
        return None  # Go's zero Time: JSON null
    seconds = nanos = 0
    for num, wire, value in _fields(buf):
        if wire != _VARINT:
            raise _Malformed("a Time field is not a varint")
        if num == 1:
            seconds = _signed(value, 64)
        elif num == 2:
            nanos = _signed(value, 32)
    try:
        when = _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        raise _Malformed(f"a Time is out of range ({seconds} s)") from None
    if not 1 <= when.year <= 9999:
        raise _Malformed(f"a Time is out of range ({seconds} s)")
    if micro:
        return when.strftime("%Y-%m-%dT%H:%M:%S") + f".{max(nanos, 0) // 1000:06d}Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(nanos: int) -> str:
    """Go's time.Duration.String(), which is what metav1.Duration's JSON is."""
    if nanos == 0:
        return "0s"
    sign, n = ("-", -nanos) if nanos < 0 else ("", nanos)
    if n < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                text = f"{n / size:.9f}".rstrip("0").rstrip(".") if n % size else str(n // size)
                return sign + text + unit
    hours, rest = divmod(n, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    secs = f"{rest / 1e9:.9f}".rstrip("0").rstrip(".") if rest % 1_000_000_000 else str(rest // 1_000_000_000)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


def _special(kind: str, buf: bytes) -> Any:
    if kind in ("Time", "MicroTime"):
        return _time(buf, kind == "MicroTime")
    if kind == "Quantity":
        text = "0"
        for num, wire, value in _fields(buf):
            if num == 1 and wire == _LEN:
                text = _scalar("string", wire, value)
        return text
    if kind == "IntOrString":
        type_, int_val, str_val = 0, 0, ""
        for num, wire, value in _fields(buf):
            if num == 1 and wire == _VARINT:
                type_ = value
            elif num == 2 and wire == _VARINT:
                int_val = _signed(value, 32)
            elif num == 3 and wire == _LEN:
                str_val = _scalar("string", wire, value)
        return str_val if type_ == 1 else int_val
    if kind == "FieldsV1":
        raw = b"".join(value for num, wire, value in _fields(buf) if num == 1 and wire == _LEN)
        try:
            return orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            raise _Malformed("a FieldsV1 is not JSON") from None
    if kind == "ExtraValue":
        return [_scalar("string", wire, value) for num, wire, value in _fields(buf) if num == 1 and wire == _LEN]
    # Duration
    nanos = 0
    for num, wire, value in _fields(buf):
        if num == 1 and wire == _VARINT:
            nanos = _signed(value, 64)
    return _duration(nanos)


class _Unknown(Exception):
    def __init__(self, message: str, num: int, path: str) -> None:
        super().__init__(message, num, path)
        self.message, self.num, self.path = message, num, path


def _zero(value: Any) -> bool:
    return value in (0, "")  # 0.0 and False compare equal to 0


def _value(f: _Field, wire: int, value: Any, depth: int, path: str) -> Any:
    kind = f.kind
    if kind in _SCALARS:
        if wire != _WIRE[kind]:
            raise _Malformed(f"{path} has wire type {wire}, not that of a {kind}")
        return _scalar(kind, wire, value)
    if wire != _LEN:
        raise _Malformed(f"{path} has wire type {wire}, not that of a message")
    if kind in _SPECIAL:
        return _special(kind, value)
    return _message(kind, value, depth + 1, path)


def _empty(kind: str) -> tuple[int, Any]:
    """(wire type, value) of an absent value of `kind`."""
    wire = _WIRE.get(kind, _LEN)
    return wire, {_VARINT: 0, _LEN: b"", _I64: bytes(8), _I32: bytes(4)}[wire]


def _message(message: str, buf: bytes, depth: int, path: str) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise _Malformed(f"messages are nested deeper than {MAX_DEPTH}")
    table = _TABLE[message]
    out: dict[str, Any] = {}
    for num, wire, value in _fields(buf):
        f = table.get(num)
        if f is None:
            raise _Unknown(message, num, path)
        where = f"{path}.{f.name}" if path else f.name
        if f.map:
            key, item, have_item = "", None, False
            if wire != _LEN:
                raise _Malformed(f"{where} has wire type {wire}, not that of a map entry")
            for enum, ewire, evalue in _fields(value):
                if enum == 1 and ewire == _LEN:
                    key = _scalar("string", ewire, evalue)
                elif enum == 2:
                    item, have_item = _value(f, ewire, evalue, depth, where), True
                else:
                    raise _Malformed(f"{where} has a map entry with field {enum}")
            if not have_item:  # protobuf leaves a zero value out
                item = _value(f, *_empty(f.kind), depth, where)
            out.setdefault(f.name, {})[key] = item
        elif f.repeated:
            items = out.setdefault(f.name, [])
            if wire == _LEN and f.kind in _SCALARS and _WIRE[f.kind] != _LEN:
                items.extend(_packed(f.kind, value))
            else:
                items.append(_value(f, wire, value, depth, f"{where}[{len(items)}]"))
        elif f.inline:
            out.update(_value(f, wire, value, depth, path))
        else:
            decoded = _value(f, wire, value, depth, where)
            if f.kind in _SCALARS and not f.keep and _zero(decoded):
                out.pop(f.name, None)
            else:
                out[f.name] = decoded
    for name in _NULLS[message]:
        out.setdefault(name, None)
    return out


def _envelope(data: bytes) -> tuple[str, str, bytes, str, str]:
    api_version = kind = encoding = content_type = ""
    raw = b""
    for num, wire, value in _fields(data[len(MAGIC):]):
        if wire != _LEN:
            continue
        if num == 1:
            for tnum, twire, tvalue in _fields(value):
                if twire == _LEN and tnum == 1:
                    api_version = _scalar("string", twire, tvalue)
                elif twire == _LEN and tnum == 2:
                    kind = _scalar("string", twire, tvalue)
        elif num == 2:
            raw = value
        elif num == 3:
            encoding = _scalar("string", wire, value)
        elif num == 4:
            content_type = _scalar("string", wire, value)
    return api_version, kind, raw, encoding, content_type


def decode(data: bytes) -> dict[str, Any]:
    """The JSON-shaped object of a Kubernetes protobuf body; APIError 400/415 when it cannot be."""
    if not data.startswith(MAGIC):
        raise errors.bad_request(f"the {MEDIA_TYPE} body does not start with the k8s\\x00 prefix")
    try:
        api_version, kind, raw, encoding, content_type = _envelope(data)
    except _Malformed as exc:
        raise errors.bad_request(f"the protobuf body is malformed: {exc}") from None
    if not kind:
        raise errors.bad_request("the protobuf body does not name its kind (runtime.Unknown.typeMeta.kind)")
    if encoding or content_type not in ("", MEDIA_TYPE):
        raise _unsupported(f"the protobuf body of {kind} is wrapped as {content_type or '-'}/{encoding or '-'}, "
                           "which this server does not read")
    message = "DeleteOptions" if kind == "DeleteOptions" else KINDS.get((api_version, kind))
    if message is None:
        raise _unsupported(f"this server does not decode {kind} ({api_version}) from protobuf")
    try:
        obj = _message(message, raw, 0, "")
    except _Malformed as exc:
        raise errors.bad_request(f"the protobuf body of {kind} is malformed: {exc}") from None
    except _Unknown as exc:
        where = f" (at {exc.path})" if exc.path else ""
        raise _unsupported(f"the protobuf body of {kind} ({api_version}) has field number {exc.num} of "
                           f"{exc.message}{where}, which this server does not know; decoding around it would "
                           "drop what was sent") from None
    return {"kind": kind, "apiVersion": api_version, **obj}


def _unsupported(message: str) -> errors.APIError:
    return errors.APIError(415, "UnsupportedMediaType", f"{message}; send the object as JSON (application/json)")
