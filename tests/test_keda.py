"""KEDA: `autoscaler keda serve` answered over real gRPC, on a real Redis holding Laravel
payloads; `autoscaler export keda` validated against KEDA's ScaledObject CRD.

The scaler runs as the CLI runs it (a subprocess, `--port 0`); its metric must be exactly
what `autoscaler status --format json` reports as `desired` for the same queues and workers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import pytest
import redis
import yaml

from autoscaler.cli.main import build_parser, main
from autoscaler.kubernetes.externalscaler import externalscaler_pb2 as pb
from autoscaler.kubernetes.externalscaler import externalscaler_pb2_grpc as pb_grpc
from autoscaler.policy.model import SloKnobs
from autoscaler.testing.laravel import make_payload, pop, push
from autoscaler.testing.stack import RedisServer, Supervisord
from tests.conftest import FIXTURES, REPO
from tests.policy_helpers import write_policy

PREFIX = "shop_database_"
CRD = FIXTURES / "keda" / "keda.sh_scaledobjects.yaml"
DEADLINE_S = 60.0  # bounds a wait for the scaler; never asserted on


def scaled_object_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def validate(document: dict[str, Any]) -> None:
    """jsonschema over the CRD's OpenAPI schema, plus the CRD's one CEL rule (min <= max),
    which jsonschema does not read."""
    jsonschema.validate(document, scaled_object_schema())
    spec = document["spec"]
    assert spec.get("minReplicaCount", 0) <= spec.get("maxReplicaCount", 100)


def write_pools(directory: Path) -> None:
    write_policy(
        directory,
        "emails",
        min_processes=1,
        static_processes=2,
        max_processes=10,
        memory_per_worker_mb=64,
        expected_run_time_s=1.0,
        strategy={"slo": {"scale_down_window_s": 0.5, "scale_down_step": 10}},
    )
    write_policy(
        directory,
        "gift_card_exchange",
        queues=["gift_card_exchange"],
        program="gift-worker",
        command="php artisan queue:work redis --queue=gift_card_exchange --timeout=120",
        min_processes=0,
        static_processes=0,
        max_processes=6,
        memory_per_worker_mb=96,
        slo={"wait_s": 10.0, "percentile": 95.0},
        expected_run_time_s=2.0,
        supervisor={"stopwaitsecs": 180, "directory": "/srv/app", "environment": {"A": "b"}},
    )


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, redis_server: RedisServer) -> Path:
    """Settings through the environment, for the CLI in process and the served subprocess."""
    monkeypatch.chdir(tmp_path)
    policies = tmp_path / "policies"
    write_pools(policies)
    monkeypatch.setenv("AUTOSCALER_POLICIES_DIR", str(policies))
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", redis_server.url)
    monkeypatch.setenv("AUTOSCALER_REDIS_PREFIX", PREFIX)
    monkeypatch.setenv("AUTOSCALER_MEMORY_BUDGET_MB", "100000")
    monkeypatch.setenv("AUTOSCALER_SUPERVISOR_URL", f"unix://{tmp_path}/none.sock")
    return policies


class Scaler:
    """`autoscaler keda serve --port 0` as a subprocess, and a gRPC client to it."""

    def __init__(self, *, interval_s: float, cwd: Path) -> None:
        environ = {**os.environ, "AUTOSCALER_INTERVAL_S": str(interval_s)}
        environ["PYTHONPATH"] = str(REPO)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "autoscaler", "keda", "serve", "--port", "0"],
            cwd=cwd,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            _, err = self.process.communicate()
            raise AssertionError(f"keda serve did not start: {line!r} {err}")
        self.port = int(line.rsplit(":", 1)[1])
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = pb_grpc.ExternalScalerStub(self.channel)

    def ref(self, pool: str | None) -> pb.ScaledObjectRef:
        metadata = {} if pool is None else {"pool": pool, "scalerAddress": "ignored"}
        return pb.ScaledObjectRef(name="so", namespace="ns", scalerMetadata=metadata)

    def metric(self, pool: str) -> int:
        spec = self.stub.GetMetricSpec(self.ref(pool), timeout=10)
        (metric_spec,) = spec.metricSpecs
        request = pb.GetMetricsRequest(
            scaledObjectRef=self.ref(pool), metricName=metric_spec.metricName
        )
        (value,) = self.stub.GetMetrics(request, timeout=10).metricValues
        assert value.metricName == metric_spec.metricName
        assert value.metricValueFloat == value.metricValue
        return value.metricValue

    def active(self, pool: str) -> bool:
        return self.stub.IsActive(self.ref(pool), timeout=10).result

    def close(self) -> str:
        """SIGTERM, as Kubernetes stops a pod; returns what it logged (once)."""
        if self.process.returncode is not None:
            return ""
        self.channel.close()
        self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


@pytest.fixture
def serve(env: Path, tmp_path: Path) -> Iterator[Callable[[float], Scaler]]:
    started: list[Scaler] = []

    def start(interval_s: float) -> Scaler:
        scaler = Scaler(interval_s=interval_s, cwd=tmp_path)
        started.append(scaler)
        return scaler

    yield start
    for scaler in started:
        err = scaler.close()
        assert scaler.process.returncode == 0, err  # SIGTERM: a clean stop


def wait_for(probe: Callable[[], Any], done: Callable[[Any], bool]) -> list[Any]:
    """Call `probe` until `done(result)`; every result seen, in order."""
    seen: list[Any] = []
    deadline = time.monotonic() + DEADLINE_S
    while True:
        seen.append(probe())
        if done(seen[-1]):
            return seen
        assert time.monotonic() < deadline, f"never done; saw {seen[-10:]}"
        time.sleep(0.05)


def grpc_code(call: Callable[[], Any]) -> grpc.StatusCode | None:
    try:
        call()
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()
        return code
    return None


# -- keda serve ---------------------------------------------------------------------------


@pytest.mark.integration
def test_the_metric_spec_is_one_per_replica(serve: Callable[[float], Scaler]) -> None:
    scaler = serve(0.2)
    (spec,) = scaler.stub.GetMetricSpec(scaler.ref("gift_card_exchange"), timeout=10).metricSpecs
    assert (spec.targetSize, spec.targetSizeFloat) == (1, 1.0)
    assert spec.metricName == "autoscaler-workers-gift-card-exchange"


@pytest.mark.integration
def test_an_idle_pool_asks_for_its_minimum(
    serve: Callable[[float], Scaler], redis_client: redis.Redis
) -> None:
    scaler = serve(0.2)
    # emails starts from static_processes (2), the count it is taken to run, and steps down
    # once slo's scale-down window (0.5 s) has passed; it never asks below min_processes.
    asks = wait_for(lambda: scaler.metric("emails"), lambda n: n == 1)
    assert all(1 <= n <= 2 for n in asks)
    assert scaler.active("emails")
    # min_processes = 0: the idle pool asks for none and is inactive (KEDA scales it to zero)
    assert scaler.metric("gift_card_exchange") == 0
    assert not scaler.active("gift_card_exchange")


@pytest.mark.integration
def test_a_backlog_raises_the_ask_exactly_as_status_desired(
    serve: Callable[[float], Scaler],
    redis_client: redis.Redis,
    supervisord: Supervisord,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    now = time.time()
    # emails: Laravel 12.11+ payloads (createdAt), 2 minutes old: far past the 30 s SLO
    for _ in range(7):
        push(redis_client, PREFIX, "emails", make_payload(created_at=now - 120))
    pop(redis_client, PREFIX, "emails")  # one in flight (:reserved)
    # gift cards: Laravel 8 payloads (no timestamp: the age is learned, unknown at first)
    for _ in range(18):
        push(redis_client, PREFIX, "gift_card_exchange", make_payload())
    # status sees what the scaler assumes before its first ask: static_processes running
    # (emails 2, gift cards 0); `sleep` slots, so nothing consumes the backlog meanwhile.
    sections = "".join(
        f"[program:emails-worker_{index:02d}]\ncommand=sleep 600\nstartsecs=0\n"
        for index in range(2)
    )
    (supervisord.include_dir / "w.conf").write_text(sections)
    proxy = supervisord.proxy()
    proxy.supervisor.reloadConfig()
    for index in range(2):
        proxy.supervisor.addProcessGroup(f"emails-worker_{index:02d}")
    wait_for(
        lambda: [p["statename"] for p in proxy.supervisor.getAllProcessInfo()],
        lambda states: states == ["RUNNING", "RUNNING"],
    )
    monkeypatch.setenv("AUTOSCALER_SUPERVISOR_URL", supervisord.url)
    # One tick only (interval 1 h): the scaler's first decision, from a fresh state, as status.
    scaler = serve(3600)
    asks = {pool: scaler.metric(pool) for pool in ("emails", "gift_card_exchange")}
    assert main(["status", "--format", "json", "--window", "0"]) == 0
    rows = {row["pool"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["emails"]["workers"] == 2 and rows["gift_card_exchange"]["workers"] == 0
    assert (rows["emails"]["pending"], rows["emails"]["reserved"]) == (6, 1)
    assert asks == {pool: row["desired"] for pool, row in rows.items()}
    assert not any(row["desired_held"] for row in rows.values())
    # the backlog raised both asks above what runs, within max_processes
    assert 2 < asks["emails"] < 10 and 0 < asks["gift_card_exchange"] < 6
    assert scaler.active("gift_card_exchange")


@pytest.mark.integration
def test_stream_is_active_follows_a_pool_from_zero(
    serve: Callable[[float], Scaler], redis_client: redis.Redis
) -> None:
    scaler = serve(0.2)
    stream = scaler.stub.StreamIsActive(scaler.ref("gift_card_exchange"), timeout=DEADLINE_S)
    assert next(stream).result is False  # the activity now, at once
    push(redis_client, PREFIX, "gift_card_exchange", make_payload())
    assert next(stream).result is True  # sent when a tick changes it
    stream.cancel()


@pytest.mark.integration
def test_redis_down_is_an_error_never_a_zero(
    env: Path,
    own_redis: RedisServer,
    serve: Callable[[float], Scaler],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", own_redis.url)
    scaler = serve(0.2)
    assert scaler.metric("emails") >= 1
    own_redis.stop()
    codes = wait_for(lambda: grpc_code(lambda: scaler.metric("emails")), lambda c: c is not None)
    assert codes[-1] == grpc.StatusCode.UNAVAILABLE
    assert grpc_code(lambda: scaler.active("emails")) == grpc.StatusCode.UNAVAILABLE
    # the spec needs no observation: KEDA can still build its HPA
    assert scaler.stub.GetMetricSpec(scaler.ref("emails"), timeout=10).metricSpecs
    own_redis.start()
    asks = wait_for(lambda: grpc_code(lambda: scaler.metric("emails")), lambda c: c is None)
    assert asks[-1] is None and scaler.metric("emails") >= 1
    log = scaler.close()
    assert scaler.process.returncode == 0
    # the outage is logged when it starts and when it ends, not at every tick
    assert log.count("emails: no count to serve") == 1, log
    assert log.count("emails: serving counts again") == 1, log


@pytest.mark.integration
def test_a_pool_without_a_policy_or_a_trigger_without_pool(
    serve: Callable[[float], Scaler],
) -> None:
    scaler = serve(0.2)
    for call in (
        lambda: scaler.stub.GetMetricSpec(scaler.ref("nope"), timeout=10),
        lambda: scaler.metric("nope"),
        lambda: scaler.active("nope"),
    ):
        assert grpc_code(call) == grpc.StatusCode.NOT_FOUND
    try:
        scaler.stub.IsActive(scaler.ref(None), timeout=10)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "pool" in (exc.details() or "")
    else:
        raise AssertionError("a trigger without `pool` was answered")


def test_serve_without_grpcio_says_which_extra(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "grpc", None)  # as if grpcio were not installed
    monkeypatch.delitem(sys.modules, "autoscaler.kubernetes.service", raising=False)
    assert main(["keda", "serve", "--port", "0"]) == 1
    assert "autoscaler[kubernetes]" in capsys.readouterr().err


# -- export keda ---------------------------------------------------------------------------


def export(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[list[Any], str]:
    assert main(["export", "keda", *args]) == 0
    captured = capsys.readouterr()
    return list(yaml.safe_load_all(captured.out)), captured.err


def by_kind(documents: list[Any], kind: str) -> dict[str, Any]:
    return {d["metadata"]["name"]: d for d in documents if d["kind"] == kind}


def test_export_validates_against_keda_crd(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    documents, err = export(
        ["--namespace", "shop", "--scaler-address", "scaler.shop:6000", "--image", "app:1"],
        capsys,
    )
    assert "--image" not in err
    objects = by_kind(documents, "ScaledObject")
    assert set(objects) == {"emails-worker", "gift-worker"}
    for document in objects.values():
        validate(document)
    gift = objects["gift-worker"]
    spec = gift["spec"]
    assert gift["apiVersion"] == "keda.sh/v1alpha1" and gift["metadata"]["namespace"] == "shop"
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (0, 6)
    assert spec["scaleTargetRef"]["name"] == "gift-worker"
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "external" and trigger["metricType"] == "AverageValue"
    assert trigger["metadata"] == {
        "scalerAddress": "scaler.shop:6000",
        "pool": "gift_card_exchange",
    }
    # min_processes = 0: KEDA's cooldown takes it to zero; the HPA follows the metric as is
    assert spec["cooldownPeriod"] > 0
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    for direction in ("scaleUp", "scaleDown"):
        assert behavior[direction]["stabilizationWindowSeconds"] == 0
        assert behavior[direction]["tolerance"] == "0"
        assert behavior[direction]["policies"] == [
            {"type": "Pods", "value": 6, "periodSeconds": 15}
        ]
    assert spec["fallback"]["behavior"] == "currentReplicas"
    assert "cooldownPeriod" not in objects["emails-worker"]["spec"]  # min 1: never to zero


def test_export_deployment_runs_the_policy_command(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    documents, err = export([], capsys)
    assert "--image not given" in err
    deployment = by_kind(documents, "Deployment")["gift-worker"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == [
        "php", "artisan", "queue:work", "redis", "--queue=gift_card_exchange", "--timeout=120"
    ]  # fmt: skip
    assert pod["terminationGracePeriodSeconds"] == 180  # stopwaitsecs
    assert container["resources"]["requests"]["memory"] == "96Mi"
    assert container["workingDir"] == "/srv/app"
    assert container["env"] == [{"name": "A", "value": "b"}]
    assert deployment["spec"]["replicas"] == 0  # static_processes
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert labels.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    emails = by_kind(documents, "Deployment")["emails-worker"]["spec"]["template"]["spec"]
    assert emails["terminationGracePeriodSeconds"] == 90  # --timeout 60 + 30


def test_export_native_uses_keda_redis_list_scaler(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("AUTOSCALER_REDIS_URL", "rediss://:secret@redis.shop:6380/3")
    documents, err = export(["--native"], capsys)
    objects = by_kind(documents, "ScaledObject")
    for document in objects.values():
        validate(document)
    (trigger,) = objects["gift-worker"]["spec"]["triggers"]
    assert trigger["type"] == "redis"
    assert trigger["metadata"] == {
        "address": "redis.shop:6380",
        "listName": f"{PREFIX}queues:gift_card_exchange",
        "listLength": "4",  # (SLO 10 s - startup 1 s) / run time 2 s
        "activationListLength": "0",
        "databaseIndex": "3",
        "enableTLS": "true",
    }
    assert "secret" not in json.dumps(documents)
    down = objects["gift-worker"]["spec"]["advanced"]["horizontalPodAutoscalerConfig"]
    window_s = SloKnobs().scale_down_window_s  # the policy leaves slo's default window
    assert down["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == window_s
    for loss in ("reserved", "job age", "memory budget"):
        assert loss in err
    assert "TriggerAuthentication" in err


def test_crd_validation_catches_a_broken_scaled_object(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The schema check is not vacuous: what KEDA's CRD refuses, the test refuses too."""
    documents, _ = export([], capsys)
    broken = by_kind(documents, "ScaledObject")["emails-worker"]
    del broken["spec"]["triggers"][0]["metadata"]
    with pytest.raises(jsonschema.ValidationError, match="metadata"):
        validate(broken)
    broken = by_kind(documents, "ScaledObject")["gift-worker"]
    broken["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"][
        "tolerance"
    ] = "ten percent"
    with pytest.raises(jsonschema.ValidationError):
        validate(broken)


def test_export_refuses_programs_that_clash_as_kubernetes_names(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_policy(env, "other", queues=["other"], program="emails_worker",
                 command="php artisan queue:work redis --queue=other")  # fmt: skip
    assert main(["export", "keda"]) == 2
    assert "emails-worker" in capsys.readouterr().err


def test_the_deployed_scaler_is_where_the_export_points(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """deploy/kubernetes/autoscaler-keda.yaml runs a `keda serve` the CLI accepts, behind the
    Service and port that `export keda` names by default."""
    deployment, service = yaml.safe_load_all(
        (REPO / "deploy/kubernetes/autoscaler-keda.yaml").read_text()
    )
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    program, *argv = container["command"]
    args = build_parser().parse_args(argv)
    assert program == "autoscaler" and (args.verb, args.action) == ("keda", "serve")
    (port,) = service["spec"]["ports"]
    assert port["port"] == args.port == container["ports"][0]["containerPort"]
    documents, _ = export(["--namespace", "shop"], capsys)
    (trigger,) = by_kind(documents, "ScaledObject")["emails-worker"]["spec"]["triggers"]
    name = service["metadata"]["name"]
    assert trigger["metadata"]["scalerAddress"] == f"{name}.shop.svc:{args.port}"
    env_names = {e["name"] for e in container["env"]}
    assert {"AUTOSCALER_POLICIES_DIR", "AUTOSCALER_REDIS_URL"} <= env_names
