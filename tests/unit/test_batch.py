"""batch/v1: the cron parser, Job and CronJob defaults and validation, their Table rows."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from arktos.api import cron
from arktos.api.resources import builtin_registry
from arktos.api.strategies import strategy_for
from arktos.api.tables import table

UTC = dt.UTC
Obj = dict[str, Any]


def at(*args: int, tz: dt.tzinfo = UTC) -> dt.datetime:
    return dt.datetime(*args, tzinfo=tz)


# --------------------------------------------------------------------------- cron


@pytest.mark.parametrize(("spec", "after", "expected"), [
    ("*/15 * * * *", at(2024, 1, 1, 10, 7), at(2024, 1, 1, 10, 15)),
    ("*/15 * * * *", at(2024, 1, 1, 10, 15), at(2024, 1, 1, 10, 30)),  # strictly after
    ("0 0 * * *", at(2024, 1, 31, 23, 59, 59), at(2024, 2, 1)),
    ("@hourly", at(2024, 1, 1, 10, 0, 30), at(2024, 1, 1, 11)),
    ("@daily", at(2024, 12, 31, 12), at(2025, 1, 1)),
    ("@midnight", at(2024, 12, 31, 12), at(2025, 1, 1)),
    ("@weekly", at(2024, 1, 3), at(2024, 1, 7)),  # Sunday
    ("@monthly", at(2024, 1, 3), at(2024, 2, 1)),
    ("@yearly", at(2024, 1, 3), at(2025, 1, 1)),
    ("@annually", at(2024, 1, 3), at(2025, 1, 1)),
    ("30 9 * * mon-fri", at(2024, 1, 5, 10), at(2024, 1, 8, 9, 30)),  # Friday -> Monday
    ("0 12 29 feb *", at(2023, 3, 1), at(2024, 2, 29, 12)),
    ("5/20 * * * *", at(2024, 1, 1, 0, 46), at(2024, 1, 1, 1, 5)),  # N/step = N-59/step
    ("0 0 1,15 * 3", at(2024, 1, 2), at(2024, 1, 3)),  # day of month OR day of week when both set
    ("0 0 */1 * 3", at(2024, 1, 2), at(2024, 1, 3)),  # */1 counts as '*': AND
    ("0 0 */2 * 3", at(2024, 1, 2), at(2024, 1, 3)),  # */2 restricts: OR (3rd is odd, a Wednesday)
    ("0 0 ? * 0", at(2024, 1, 2), at(2024, 1, 7)),
    ("@every 90s", at(2024, 1, 1, 0, 0, 10), at(2024, 1, 1, 0, 1, 40)),
])
def test_next_time(spec, after, expected):
    assert cron.parse(spec).next(after) == expected


def test_no_such_day_gives_none():
    assert cron.parse("0 0 30 2 *").next(at(2024, 1, 1)) is None


def test_time_zones_and_dst():
    ny = cron.load_zone("America/New_York")
    s = cron.parse("30 2 * * *")
    # 2024-03-10 02:30 does not exist in New York: it runs at 03:30 EDT (07:30 UTC).
    assert s.times_between(at(2024, 3, 9, 12), at(2024, 3, 11, 12), ny) == [at(2024, 3, 10, 7, 30),
                                                                            at(2024, 3, 11, 6, 30)]
    # 09:00 in Tokyo is midnight UTC.
    assert cron.parse("0 9 * * *").next(at(2024, 1, 1, 1), cron.load_zone("Asia/Tokyo")) == at(2024, 1, 2)
    with pytest.raises(cron.CronError, match="unknown time zone Mars/Base"):
        cron.load_zone("Mars/Base")


def test_times_between_limit():
    s = cron.parse("* * * * *")
    got = s.times_between(at(2024, 1, 1), at(2024, 1, 1, 2), limit=5)
    assert len(got) == 5 and got[0] == at(2024, 1, 1, 0, 1)


@pytest.mark.parametrize(("spec", "message"), [
    ("", "empty spec string"),
    ("bad", "expected exactly 5 fields, found 1: [bad]"),
    ("* * * * * *", "expected exactly 5 fields, found 6"),
    ("60 * * * *", "end of range (60) above maximum (59): 60"),
    ("* 24 * * *", "end of range (24) above maximum (23): 24"),
    ("* * 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("* * * 13 *", "end of range (13) above maximum (12): 13"),
    ("* * * * 7", "end of range (7) above maximum (6): 7"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
    ("*/2/3 * * * *", "too many slashes: */2/3"),
    ("x * * * *", "failed to parse int from x"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"),
])
def test_parse_errors(spec, message):
    with pytest.raises(cron.CronError) as err:
        cron.parse(spec)
    assert message in str(err.value)


# --------------------------------------------------------------------------- Job


def job(**spec: Any) -> Obj:
    body: Obj = {"metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
                 "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                "containers": [{"name": "c", "image": "busybox"}]}}}}
    body["spec"].update(spec)
    return body


def create(group: str, kind: str, obj: Obj):
    s = strategy_for(group, kind)
    obj = copy.deepcopy(obj)
    s.prepare_for_create(obj)
    s.default(obj)
    return obj, s.validate(obj)


def test_job_defaults_and_generated_selector():
    obj, errs = create("batch", "Job", job())
    assert errs == []
    spec = obj["spec"]
    assert (spec["completions"], spec["parallelism"], spec["backoffLimit"]) == (1, 1, 6)
    assert spec["completionMode"] == "NonIndexed" and spec["manualSelector"] is False and spec["suspend"] is False
    assert spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    assert spec["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": "u-1", "controller-uid": "u-1",
        "batch.kubernetes.io/job-name": "pi", "job-name": "pi"}
    # A work queue (parallelism without completions) keeps completions unset.
    obj, errs = create("batch", "Job", job(parallelism=3))
    assert errs == [] and "completions" not in obj["spec"] and obj["spec"]["parallelism"] == 3


def test_job_validation():
    def fields(obj: Obj) -> list[str]:
        return [e.field for e in create("batch", "Job", obj)[1]]

    always = job()
    always["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    errs = create("batch", "Job", always)[1]
    assert [e.field for e in errs] == ["spec.template.spec.restartPolicy"]
    assert 'supported values: "OnFailure", "Never"' in errs[0].message()
    unset = job()
    del unset["spec"]["template"]["spec"]["restartPolicy"]  # defaults to Always, refused as Kubernetes does
    assert fields(unset) == ["spec.template.spec.restartPolicy"]
    assert fields(job(backoffLimit=-1)) == ["spec.backoffLimit"]
    assert fields(job(parallelism=-1, completions=-2)) == ["spec.parallelism", "spec.completions"]
    assert fields(job(activeDeadlineSeconds=0)) == ["spec.activeDeadlineSeconds"]
    assert fields(job(completionMode="Sometimes")) == ["spec.completionMode"]
    # A selector of one's own without manualSelector gets the uid added, and no longer matches the template.
    assert fields(job(selector={"matchLabels": {"app": "x"}})) == ["spec.template.metadata.labels"]
    wrong = job(selector={"matchLabels": {"batch.kubernetes.io/controller-uid": "other"}})
    assert "spec.selector" in fields(wrong)
    manual = job(manualSelector=True, selector={"matchLabels": {"app": "x"}})
    manual["spec"]["template"]["metadata"] = {"labels": {"app": "x"}}
    assert fields(manual) == []
    manual["spec"]["template"]["metadata"] = {"labels": {"app": "y"}}
    assert fields(manual) == ["spec.template.metadata.labels"]


def test_job_update_keeps_template_and_selector():
    s = strategy_for("batch", "Job")
    old, errs = create("batch", "Job", job())
    assert errs == []
    new = copy.deepcopy(old)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    new["spec"]["completions"] = 5
    new["spec"]["parallelism"] = 2  # parallelism may change
    s.default(new)
    assert [e.field for e in s.validate_update(new, old)] == ["spec.template", "spec.completions"]


# --------------------------------------------------------------------------- CronJob


def cronjob(schedule: Any = "*/5 * * * *", **spec: Any) -> Obj:
    body: Obj = {"metadata": {"name": "tick", "namespace": "default", "uid": "u-2"},
                 "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
                     "restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}}
    body["spec"].update(spec)
    return body


def test_cronjob_defaults():
    obj, errs = create("batch", "CronJob", cronjob())
    assert errs == []
    spec = obj["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    # The job template's own spec is not defaulted (Kubernetes leaves it to the Job), its pod spec is.
    job_spec = spec["jobTemplate"]["spec"]
    assert "backoffLimit" not in job_spec and "selector" not in job_spec
    assert job_spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"


@pytest.mark.parametrize("schedule", ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "0 */2 * * 1-5",
                                      "15,45 8-18 1 jan,jul *"])
def test_cronjob_good_schedules(schedule):
    assert create("batch", "CronJob", cronjob(schedule))[1] == []


@pytest.mark.parametrize(("schedule", "detail"), [
    ("not a schedule", "expected exactly 5 fields, found 3"),
    ("61 * * * *", "end of range (61) above maximum (59)"),
    ("@sometimes", "unrecognized descriptor"),
    ("TZ=UTC 0 * * * *", "cannot use TZ or CRON_TZ in schedule"),
])
def test_cronjob_bad_schedule_names_spec_schedule(schedule, detail):
    errs = create("batch", "CronJob", cronjob(schedule))[1]
    assert errs and all(e.field == "spec.schedule" for e in errs)
    assert any(detail in e.message() for e in errs)


def test_cronjob_other_validation():
    def fields(obj: Obj) -> list[str]:
        return [e.field for e in create("batch", "CronJob", obj)[1]]

    assert fields(cronjob(None)) == ["spec.schedule"]
    assert fields(cronjob(timeZone="Europe/Berlin")) == []
    assert fields(cronjob(timeZone="Nowhere/Special")) == ["spec.timeZone"]
    assert fields(cronjob(concurrencyPolicy="Sometimes")) == ["spec.concurrencyPolicy"]
    assert fields(cronjob(startingDeadlineSeconds=-1, successfulJobsHistoryLimit=-1)) == [
        "spec.startingDeadlineSeconds", "spec.successfulJobsHistoryLimit"]
    always = cronjob()
    always["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    assert fields(always) == ["spec.jobTemplate.spec.template.spec.restartPolicy"]
    long = cronjob()
    long["metadata"]["name"] = "x" * 53
    assert fields(long) == ["metadata.name"]


# --------------------------------------------------------------------------- tables


def test_job_and_cronjob_rows():
    reg = builtin_registry()
    now = at(2024, 1, 1, 12)
    j, _ = create("batch", "Job", job())
    j["metadata"]["creationTimestamp"] = "2024-01-01T11:58:00Z"
    j["status"] = {"succeeded": 1, "startTime": "2024-01-01T11:58:00Z", "completionTime": "2024-01-01T11:58:05Z",
                   "conditions": [{"type": "Complete", "status": "True"}]}
    t = table(reg.get("batch", "v1", "jobs"), [j], now=now, list_meta={})
    assert [c["name"] for c in t["columnDefinitions"]][:5] == ["Name", "Status", "Completions", "Duration", "Age"]
    assert t["rows"][0]["cells"][:5] == ["pi", "Complete", "1/1", "5s", "2m"]
    del j["status"]["completionTime"], j["status"]["conditions"]
    j["status"]["succeeded"] = 0
    row = table(reg.get("batch", "v1", "jobs"), [j], now=now, list_meta={})["rows"][0]
    assert row["cells"][1:4] == ["Running", "0/1", "2m"]
    cj, _ = create("batch", "CronJob", cronjob())
    cj["metadata"]["creationTimestamp"] = "2024-01-01T10:00:00Z"
    cj["status"] = {"active": [{"name": "tick-1"}], "lastScheduleTime": "2024-01-01T11:55:00Z"}
    t = table(reg.get("batch", "v1", "cronjobs"), [cj], now=now, list_meta={})
    assert [c["name"] for c in t["columnDefinitions"]][:7] == ["Name", "Schedule", "Timezone", "Suspend", "Active",
                                                              "Last Schedule", "Age"]
    assert t["rows"][0]["cells"][:7] == ["tick", "*/5 * * * *", "<none>", "False", 1, "5m", "120m"]


# --------------------------------------------------------------------------- the cron job controller's arithmetic


def test_most_recent_schedule_and_job_names():
    from arktos.controllers.cronjob import job_name, most_recent_schedule

    sched = cron.parse("*/5 * * * *")
    cj = {"metadata": {"name": "tick", "creationTimestamp": "2024-01-01T00:00:00Z"}, "spec": {}, "status": {}}
    assert most_recent_schedule(cj, sched, UTC, at(2024, 1, 1, 0, 4)) == (None, 0)
    assert most_recent_schedule(cj, sched, UTC, at(2024, 1, 1, 0, 17)) == (at(2024, 1, 1, 0, 15), 3)
    cj["status"]["lastScheduleTime"] = "2024-01-01T00:15:00Z"
    assert most_recent_schedule(cj, sched, UTC, at(2024, 1, 1, 0, 17)) == (None, 0)
    # Down for a year: the latest time only, found without walking all 100,000 of them.
    assert most_recent_schedule(cj, sched, UTC, at(2025, 1, 1, 0, 7)) == (at(2025, 1, 1, 0, 5), 101)
    # startingDeadlineSeconds: nothing older than now minus the deadline counts.
    cj["spec"]["startingDeadlineSeconds"] = 60
    assert most_recent_schedule(cj, sched, UTC, at(2024, 1, 1, 0, 22)) == (None, 0)
    assert most_recent_schedule(cj, sched, UTC, at(2024, 1, 1, 0, 20, 30)) == (at(2024, 1, 1, 0, 20), 1)
    assert job_name("tick", at(2024, 1, 1)) == f"tick-{1704067200 // 60}"
