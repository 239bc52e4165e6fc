"""batch/v1: Job and CronJob, with Kubernetes' defaults and validation.

A Job's selector is generated unless `spec.manualSelector` is true: on create
the server labels the pod template with `batch.kubernetes.io/controller-uid`
(and the legacy `controller-uid`) = the job's uid, `batch.kubernetes.io/job-name`
(and `job-name`) = its name, and selects on the controller-uid label, so pods
of a deleted job and a new one of the same name never mix.  A selector the
user wrote next to a generated one is refused ("`selector` not auto-generated").

Pods of a job run to completion, so the template's restartPolicy is Never or
OnFailure (Always, the pod default, is refused).  The template, selector and
completions are fixed once created.  A CronJob's schedule must parse as cron
does (five fields or a macro); its time zone must be a known IANA name.
"""

from __future__ import annotations

from typing import Any

from arktos.api import cron
from arktos.api.errors import FieldError, invalid, not_supported, required
from arktos.api.strategies._base import KindStrategy, as_dict, check_dict, dig, is_int, type_error
from arktos.api.strategies.pods import default_pod_template, validate_pod_spec
from arktos.api.strategy import Obj
from arktos.api.validation import (
    label_selector_matches,
    validate_immutable,
    validate_label_selector,
    validate_labels,
    validate_nonnegative,
)

CONTROLLER_UID_LABEL = "batch.kubernetes.io/controller-uid"
LEGACY_CONTROLLER_UID_LABEL = "controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
LEGACY_JOB_NAME_LABEL = "job-name"
DEFAULT_BACKOFF_LIMIT = 6
COMPLETION_MODES = ["NonIndexed", "Indexed"]
JOB_RESTART_POLICIES = ["OnFailure", "Never"]
REPLACEMENT_POLICIES = ["TerminatingOrFailed", "Failed"]
CONCURRENCY_POLICIES = ["Allow", "Forbid", "Replace"]
MAX_INDEXED_COMPLETIONS = 100_000
CRONJOB_NAME_MAX = 52  # a job name is <cronjob>-<minutes since epoch>, within 63


# --------------------------------------------------------------------------- shared


def _check_bool(spec: dict[str, Any], key: str, path: str, errs: list[FieldError]) -> None:
    if spec.get(key) is not None and not isinstance(spec[key], bool):
        errs.append(type_error(f"{path}.{key}", spec[key], "a boolean"))


def default_job_spec(spec: Any) -> None:
    """SetDefaults_Job on a spec (a Job's, not a CronJob's template: Kubernetes leaves that one alone)."""
    if not isinstance(spec, dict):
        return
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2**31 - 1 if spec.get("backoffLimitPerIndex") is not None else DEFAULT_BACKOFF_LIMIT
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed")
    spec.setdefault("manualSelector", False)


def validate_job_spec(spec: Any, path: str, *, template_of_cronjob: bool = False) -> list[FieldError]:
    errs: list[FieldError] = []
    spec = check_dict(spec, path, errs)
    for key in ("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "ttlSecondsAfterFinished",
                "backoffLimitPerIndex", "maxFailedIndexes"):
        errs.extend(validate_nonnegative(spec.get(key), f"{path}.{key}"))
    deadline = spec.get("activeDeadlineSeconds")
    if is_int(deadline) and deadline == 0:
        errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline, "must be greater than 0"))
    for key in ("manualSelector", "suspend"):
        _check_bool(spec, key, path, errs)
    mode = spec.get("completionMode")
    if mode is not None and mode not in COMPLETION_MODES:
        errs.append(not_supported(f"{path}.completionMode", mode, COMPLETION_MODES))
    if mode == "Indexed":
        completions, parallelism = spec.get("completions"), spec.get("parallelism")
        if completions is None:
            errs.append(required(f"{path}.completions", "when completion mode is Indexed"))
        elif is_int(completions) and completions > MAX_INDEXED_COMPLETIONS:
            errs.append(invalid(f"{path}.completions", completions,
                                f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode "
                                "is Indexed"))
        if is_int(parallelism) and parallelism > MAX_INDEXED_COMPLETIONS:
            errs.append(invalid(f"{path}.parallelism", parallelism,
                                f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode "
                                "is Indexed"))
    elif spec.get("backoffLimitPerIndex") is not None:
        errs.append(required(f"{path}.completionMode", "when backoffLimitPerIndex is specified, completionMode "
                                                       "must be Indexed"))
    policy = spec.get("podReplacementPolicy")
    if policy is not None and policy not in REPLACEMENT_POLICIES:
        errs.append(not_supported(f"{path}.podReplacementPolicy", policy, REPLACEMENT_POLICIES))
    selector = spec.get("selector")
    if selector is None:
        if not template_of_cronjob:
            errs.append(required(f"{path}.selector"))
    else:
        errs.extend(validate_label_selector(selector, f"{path}.selector"))
    template = spec.get("template")
    if template is None:
        errs.append(required(f"{path}.template"))
        return errs
    template = check_dict(template, f"{path}.template", errs)
    meta = check_dict(template.get("metadata"), f"{path}.template.metadata", errs)
    labels = meta.get("labels")
    errs.extend(validate_labels(labels, f"{path}.template.metadata.labels"))
    selects = isinstance(selector, dict) and (selector.get("matchLabels") or selector.get("matchExpressions"))
    if selects and not label_selector_matches(selector, labels if isinstance(labels, dict) else {}):
        errs.append(invalid(f"{path}.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    pod_spec = template.get("spec")
    errs.extend(validate_pod_spec(pod_spec, f"{path}.template.spec"))
    restart = as_dict(pod_spec).get("restartPolicy")
    if restart not in JOB_RESTART_POLICIES:
        errs.append(not_supported(f"{path}.template.spec.restartPolicy", restart, JOB_RESTART_POLICIES))
    return errs


# --------------------------------------------------------------------------- Job


def generate_selector(job: Obj) -> None:
    """Label the template with the job's uid and name and select on the uid (Kubernetes' generateSelector)."""
    spec = job.get("spec")
    meta = as_dict(job.get("metadata"))
    if not isinstance(spec, dict) or not isinstance(spec.get("template"), dict):
        return
    template = spec["template"]
    tmeta = template.get("metadata")
    if tmeta is None:
        tmeta = template["metadata"] = {}
    if not isinstance(tmeta, dict):
        return
    labels = tmeta.get("labels")
    if labels is None:
        labels = tmeta["labels"] = {}
    if not isinstance(labels, dict):
        return
    name, uid = meta.get("name") or "", meta.get("uid") or ""
    for key in (LEGACY_JOB_NAME_LABEL, JOB_NAME_LABEL):
        labels.setdefault(key, name)
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        labels.setdefault(key, uid)
    selector = spec.get("selector")
    if selector is None:
        selector = spec["selector"] = {}
    if not isinstance(selector, dict):
        return
    match = selector.get("matchLabels")
    if match is None:
        match = selector["matchLabels"] = {}
    if isinstance(match, dict):
        match.setdefault(CONTROLLER_UID_LABEL, uid)


def _validate_generated_selector(job: Obj) -> list[FieldError]:
    spec = as_dict(job.get("spec"))
    if spec.get("manualSelector") is True:
        return []
    labels = dig(spec, "template", "metadata", "labels")
    if not isinstance(labels, dict):
        return []
    uid = dig(job, "metadata", "uid")
    errs: list[FieldError] = []
    path = "spec.template.metadata.labels"
    for key in (LEGACY_CONTROLLER_UID_LABEL, CONTROLLER_UID_LABEL):
        if labels.get(key) != uid:
            errs.append(invalid(path, labels, f"`{key}` must be '{uid}'"))
    match = dig(spec, "selector", "matchLabels")
    if not isinstance(match, dict) or match.get(CONTROLLER_UID_LABEL) != uid:
        errs.append(invalid("spec.selector", spec.get("selector"), "`selector` not auto-generated"))
    return errs


def _validate_job_status(status: Any, errs: list[FieldError]) -> None:
    status = check_dict(status, "status", errs)
    for key in ("active", "succeeded", "failed", "ready", "terminating"):
        errs.extend(validate_nonnegative(status.get(key), f"status.{key}"))


class JobStrategy(KindStrategy):
    status_subresource = True

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        spec = obj.get("spec")
        if isinstance(spec, dict) and spec.get("manualSelector") is not True:
            generate_selector(obj)

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        default_job_spec(spec)
        default_pod_template(spec.get("template"))

    def validate(self, obj: Obj) -> list[FieldError]:
        if obj.get("spec") is None:
            return [required("spec")]
        errs = validate_job_spec(obj.get("spec"), "spec")
        errs.extend(_validate_generated_selector(obj))
        _validate_job_status(obj.get("status"), errs)
        return errs

    def validate_update(self, obj: Obj, old: Obj) -> list[FieldError]:
        errs = self.validate(obj)
        new_spec, old_spec = as_dict(obj.get("spec")), as_dict(old.get("spec"))
        errs.extend(validate_immutable(new_spec.get("selector"), old_spec.get("selector"), "spec.selector"))
        errs.extend(validate_immutable(new_spec.get("template"), old_spec.get("template"), "spec.template"))
        errs.extend(validate_immutable(new_spec.get("completionMode"), old_spec.get("completionMode"),
                                       "spec.completionMode"))
        if new_spec.get("completionMode") != "Indexed" or new_spec.get("completions") != new_spec.get("parallelism"):
            errs.extend(validate_immutable(new_spec.get("completions"), old_spec.get("completions"),
                                           "spec.completions"))
        return errs


# --------------------------------------------------------------------------- CronJob


def validate_schedule(schedule: Any, time_zone: Any, path: str = "spec.schedule") -> list[FieldError]:
    if schedule is None or schedule == "":
        return [required(path)]
    if not isinstance(schedule, str):
        return [type_error(path, schedule, "a string")]
    errs: list[FieldError] = []
    try:
        cron.parse(schedule)
    except cron.CronError as exc:
        errs.append(invalid(path, schedule, str(exc)))
    if "TZ" in schedule:
        errs.append(invalid(path, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    return errs


def validate_time_zone(tz: Any, path: str = "spec.timeZone") -> list[FieldError]:
    if tz is None:
        return []
    if not isinstance(tz, str):
        return [type_error(path, tz, "a string")]
    if tz == "" or tz.strip() != tz:
        return [invalid(path, tz, "unknown time zone " + tz)]
    try:
        cron.load_zone(tz)
    except cron.CronError as exc:
        return [invalid(path, tz, str(exc))]
    return []


class CronJobStrategy(KindStrategy):
    status_subresource = True

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return
        spec.setdefault("concurrencyPolicy", "Allow")
        spec.setdefault("suspend", False)
        spec.setdefault("successfulJobsHistoryLimit", 3)
        spec.setdefault("failedJobsHistoryLimit", 1)
        default_pod_template(dig(spec, "jobTemplate", "spec", "template"))

    def validate(self, obj: Obj) -> list[FieldError]:
        if obj.get("spec") is None:
            return [required("spec")]
        errs: list[FieldError] = []
        name = dig(obj, "metadata", "name")
        if isinstance(name, str) and len(name) > CRONJOB_NAME_MAX:
            errs.append(invalid("metadata.name", name, f"must be no more than {CRONJOB_NAME_MAX} characters"))
        spec = check_dict(obj.get("spec"), "spec", errs)
        errs.extend(validate_schedule(spec.get("schedule"), spec.get("timeZone")))
        errs.extend(validate_time_zone(spec.get("timeZone")))
        policy = spec.get("concurrencyPolicy")
        if policy is None:
            errs.append(required("spec.concurrencyPolicy"))
        elif policy not in CONCURRENCY_POLICIES:
            errs.append(not_supported("spec.concurrencyPolicy", policy, CONCURRENCY_POLICIES))
        for key in ("startingDeadlineSeconds", "successfulJobsHistoryLimit", "failedJobsHistoryLimit"):
            errs.extend(validate_nonnegative(spec.get(key), f"spec.{key}"))
        _check_bool(spec, "suspend", "spec", errs)
        template = spec.get("jobTemplate")
        if template is None:
            errs.append(required("spec.jobTemplate"))
        else:
            template = check_dict(template, "spec.jobTemplate", errs)
            tmeta = check_dict(template.get("metadata"), "spec.jobTemplate.metadata", errs)
            errs.extend(validate_labels(tmeta.get("labels"), "spec.jobTemplate.metadata.labels"))
            errs.extend(validate_job_spec(template.get("spec"), "spec.jobTemplate.spec", template_of_cronjob=True))
        status = check_dict(obj.get("status"), "status", errs)
        active = status.get("active")
        if active is not None and not isinstance(active, list):
            errs.append(type_error("status.active", active, "a list"))
        return errs


__all__ = [
    "CONTROLLER_UID_LABEL",
    "JOB_NAME_LABEL",
    "LEGACY_CONTROLLER_UID_LABEL",
    "LEGACY_JOB_NAME_LABEL",
    "CronJobStrategy",
    "JobStrategy",
    "default_job_spec",
    "generate_selector",
    "validate_job_spec",
    "validate_schedule",
    "validate_time_zone",
]
