"""Run-to-completion workloads (batch/v1): Job and CronJob."""

from __future__ import annotations

from arktos.api.schemas._dsl import Group
from arktos.api.schemas.pod import CORE, IMPORTS

batch = Group("io.k8s.api.batch.v1", (CORE, *IMPORTS))

batch.kind("Job", "Runs pods until a number of them complete successfully.", """
    spec   JobSpec    Pods to run and when the job is done.
    status JobStatus  Progress of the job.
""", group="batch", version="v1")
batch.model("JobSpec", "The desired behaviour of a job.", """
    parallelism     int32  Most pods running at once; defaults to 1.
    completions     int32  Successful pods needed; defaults to 1. Unset means any one success ends
                           the job once all pods finished.
    activeDeadlineSeconds int64  Seconds from the job's start before it is failed with
                           DeadlineExceeded and its pods are killed.
    podFailurePolicy PodFailurePolicy  How pod failures count toward backoffLimit.
    successPolicy   SuccessPolicy  When an Indexed job counts as succeeded early.
    backoffLimit    int32  Failed pods tolerated before the job fails; defaults to 6.
    backoffLimitPerIndex int32  Failures tolerated per index of an Indexed job.
    maxFailedIndexes int32  Failed indexes tolerated before an Indexed job fails.
    selector        LabelSelector  Pods the job counts; generated from the job's uid unless
                           manualSelector is true.
    manualSelector  bool   Whether the selector is the user's (true) or generated (false, the default).
    template        PodTemplateSpec @req  Pod each attempt is made from; restartPolicy Never or OnFailure.
    ttlSecondsAfterFinished int32  Seconds after the job finished before it is deleted.
    completionMode  string @enum:NonIndexed|Indexed  NonIndexed (the default): pods are
                           interchangeable; Indexed: each completion has an index.
    suspend         bool   While true no pods are created and running ones are deleted.
    podReplacementPolicy string @enum:TerminatingOrFailed|Failed  When a replacement pod is created.
    managedBy       string  Controller that manages the job, when not the built-in one.
""")
batch.model("PodFailurePolicy", "Rules that decide what a pod failure means for its job.", """
    rules []PodFailurePolicyRule @atomic @req  Rules, first match wins.
""")
batch.model("PodFailurePolicyRule", "One rule of a pod failure policy.", """
    action          string @req @enum:FailJob|FailIndex|Ignore|Count  What a matching failure does.
    onExitCodes     PodFailurePolicyOnExitCodesRequirement  Exit codes that match.
    onPodConditions []PodFailurePolicyOnPodConditionsPattern @atomic  Pod conditions that match.
""")
batch.model("PodFailurePolicyOnExitCodesRequirement", "Exit codes a pod failure rule matches.", """
    containerName string  Only this container's exit code; any container when unset.
    operator      string @req @enum:In|NotIn  Whether the code must be in the values or not.
    values        []int32 @set @req  Exit codes.
""")
batch.model("PodFailurePolicyOnPodConditionsPattern", "A pod condition a pod failure rule matches.", """
    type   string @req  Condition type.
    status string  Condition status; defaults to True.
""")
batch.model("SuccessPolicy", "When an Indexed job succeeds before all indexes did.", """
    rules []SuccessPolicyRule @atomic @req  Rules, any one met suffices.
""")
batch.model("SuccessPolicyRule", "One success rule.", """
    succeededIndexes string  Indexes that must succeed, e.g. "1,3-5".
    succeededCount   int32   Number of indexes that must succeed.
""")
batch.model("JobStatus", "The observed state of a job.", """
    conditions     []JobCondition @merge:type @atomic  Suspended, Complete, Failed, FailureTarget.
    startTime      Time   When the controller first started the job.
    completionTime Time   When the job completed successfully.
    active         int32  Pods pending or running.
    succeeded      int32  Pods that succeeded.
    failed         int32  Pods that failed.
    terminating    int32  Pods being deleted.
    completedIndexes string  Completed indexes of an Indexed job, in interval form.
    failedIndexes  string  Failed indexes of an Indexed job.
    uncountedTerminatedPods UncountedTerminatedPods  Finished pods not yet counted in the status.
    ready          int32  Active pods that are ready.
""")
batch.model("JobCondition", "One condition of a job.", """
    type               string @req  Complete, Failed, Suspended, FailureTarget, SuccessCriteriaMet.
    status             string @req  True, False or Unknown.
    lastProbeTime      Time    When the condition was last checked.
    lastTransitionTime Time    When status last changed.
    reason             string  CamelCase reason, e.g. BackoffLimitExceeded.
    message            string  Details.
""")
batch.model("UncountedTerminatedPods", "UIDs of finished pods the job status does not count yet.", """
    succeeded []string @set  Succeeded pods.
    failed    []string @set  Failed pods.
""")
batch.model("JobTemplateSpec", "The job a cron job creates at each scheduled time.", """
    metadata ObjectMeta  Labels and annotations given to each job.
    spec     JobSpec     Spec of each job.
""")

batch.kind("CronJob", "Creates jobs on a repeating schedule.", """
    spec   CronJobSpec    Schedule and the job to create.
    status CronJobStatus  Running jobs and last scheduled times.
""", group="batch", version="v1")
batch.model("CronJobSpec", "The desired behaviour of a cron job.", """
    schedule        string @req  Cron schedule: five fields (minute hour day-of-month month
                           day-of-week) or a macro (hourly, daily, weekly, monthly, yearly).
    timeZone        string  Time zone the schedule is read in (an IANA name); defaults to UTC.
    startingDeadlineSeconds int64  Seconds after a missed scheduled time during which the job may
                           still start.
    concurrencyPolicy string @enum:Allow|Forbid|Replace  What to do when a job is still running at
                           the next scheduled time; defaults to Allow.
    suspend         bool   While true no new jobs are created.
    jobTemplate     JobTemplateSpec @req  The job to create.
    successfulJobsHistoryLimit int32  Finished successful jobs kept; defaults to 3.
    failedJobsHistoryLimit int32  Finished failed jobs kept; defaults to 1.
""")
batch.model("CronJobStatus", "The observed state of a cron job.", """
    active             []ObjectReference @atomic  Jobs running now.
    lastScheduleTime   Time  When a job was last scheduled.
    lastSuccessfulTime Time  When a job last completed successfully.
""")
