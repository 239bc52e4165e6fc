"""Jobs and CronJobs on real containers, driven by kubectl as a user would.

A cluster of its own (etcd, API server, controller manager, scheduler, an `arktos node-agent` on a
private containerd): `kubectl create job` runs busybox to completion, `kubectl wait
--for=condition=complete` returns, `kubectl logs job/X` prints what it echoed; a job whose pods exit 1
with backoffLimit 1 fails with BackoffLimitExceeded; `kubectl create cronjob` and `kubectl create job
--from=cronjob/X` run the cron job's template at once; `kubectl get jobs|cronjobs` show Kubernetes'
columns; a bad schedule is refused naming spec.schedule.
"""

from __future__ import annotations

import json

import pytest

from arktos.cluster.images import BUSYBOX_IMAGE
from tests.conftest import ComponentProc, start_apiserver, write_dev_kubeconfig
from tests.e2e.test_containers import kubectl, wait_for

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(180)]

FAILING = f"""
apiVersion: batch/v1
kind: Job
metadata:
  name: fails
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: c
        image: {BUSYBOX_IMAGE}
        command: ["sh", "-c", "echo failing; exit 1"]
"""


@pytest.fixture
def cluster(private_etcd, containerd, tmp_path):
    server = start_apiserver(private_etcd.url, tmp_path / "apiserver.log")
    procs = [ComponentProc("controller-manager", tmp_path / "cm.log", [
                 "--master", server.url, "--no-leader-elect", "--job-pod-failure-backoff", "0.5",
                 "--controllers", "job,cronjob,garbagecollector,namespace,serviceaccount"]),
             ComponentProc("scheduler", tmp_path / "scheduler.log", ["--master", server.url, "--no-leader-elect"]),
             ComponentProc("node-agent", tmp_path / "agent.log", [
                 "--master", server.url, "--node-name", "jobs1", "--runtimes", "containerd",
                 "--container-runtime-endpoint", containerd.socket, "--root-dir", str(tmp_path / "agent"),
                 "--lease-renew-interval", "2", "--status-update-interval", "2", "--sync-frequency", "2"])]
    kubeconfig = write_dev_kubeconfig(tmp_path / "kubeconfig", server.url)
    try:
        yield kubeconfig, procs
    finally:
        kubectl(kubeconfig, "delete", "jobs,cronjobs", "--all", "--wait=false", check=False)
        for p in reversed(procs):
            p.stop()
        server.stop()
        for p in procs:
            assert "Traceback" not in p.text(), p.text()[-6000:]


def test_jobs_and_cronjobs_with_kubectl_on_real_containers(cluster):
    kc, _ = cluster
    wait_for(lambda: kubectl(kc, "get", "node", "jobs1", "-o",
                             "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False).stdout == "True",
             what="node jobs1 Ready")
    # Everything is started first, then waited for: the three run side by side.
    kubectl(kc, "create", "job", "hello", f"--image={BUSYBOX_IMAGE}", "--", "sh", "-c", "echo hi")
    kubectl(kc, "apply", "-f", "-", input=FAILING)
    kubectl(kc, "create", "cronjob", "tick", f"--image={BUSYBOX_IMAGE}", "--schedule=0 0 1 1 *", "--",
            "sh", "-c", "echo from-cron")
    kubectl(kc, "create", "job", "manual", "--from=cronjob/tick")

    kubectl(kc, "wait", "--for=condition=complete", "job/hello", "--timeout=60s", timeout=70)
    assert kubectl(kc, "logs", "job/hello").stdout == "hi\n"
    job = json.loads(kubectl(kc, "get", "job", "hello", "-o", "json").stdout)
    assert job["status"]["succeeded"] == 1 and job["status"]["completionTime"]
    assert job["spec"]["backoffLimit"] == 6 and job["spec"]["completionMode"] == "NonIndexed"
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"]["matchLabels"] == {"batch.kubernetes.io/controller-uid": uid}
    rows = kubectl(kc, "get", "jobs").stdout.splitlines()
    assert rows[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    hello = next(r.split() for r in rows if r.startswith("hello "))
    assert hello[1:3] == ["Complete", "1/1"], rows

    kubectl(kc, "wait", "--for=condition=complete", "job/manual", "--timeout=60s", timeout=70)
    assert kubectl(kc, "logs", "job/manual").stdout == "from-cron\n"
    manual = json.loads(kubectl(kc, "get", "job", "manual", "-o", "json").stdout)
    assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert manual["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    rows = kubectl(kc, "get", "cronjobs").stdout.splitlines()
    assert rows[0].split()[:3] == ["NAME", "SCHEDULE", "TIMEZONE"]
    assert rows[1].split() == ["tick", "0", "0", "1", "1", "*", "<none>", "False", "0", "<none>", rows[1].split()[-1]]

    kubectl(kc, "wait", "--for=condition=failed", "job/fails", "--timeout=60s", timeout=70)
    fails = json.loads(kubectl(kc, "get", "job", "fails", "-o", "json").stdout)
    (cond,) = [c for c in fails["status"]["conditions"] if c["type"] == "Failed"]
    assert cond["reason"] == "BackoffLimitExceeded" and fails["status"]["failed"] == 2
    assert "failing" in kubectl(kc, "logs", "job/fails").stdout

    bad = kubectl(kc, "create", "cronjob", "bad", f"--image={BUSYBOX_IMAGE}", "--schedule=every minute", "--",
                  "true", check=False)
    assert bad.returncode != 0 and "spec.schedule" in bad.stderr, bad.stderr

    # Deleting a job deletes its pods (the garbage collector follows the ownerReferences).
    kubectl(kc, "delete", "job", "hello")
    wait_for(lambda: kubectl(kc, "get", "pods", "-l", f"batch.kubernetes.io/controller-uid={uid}", "-o",
                             "name").stdout == "", 30, "hello's pod deleted")
