#!/usr/bin/python3
"""Renders every kustomize overlay of deploy/ with `kubectl kustomize` and checks what a
deployment relies on: probes on the gRPC port and grpc.health.v1, the server's flags real and
consistent with the ports, limits, a locked-down security context, a grace period that covers
the preStop sleep and the server's --shutdown_grace, and the HPA, PDB, Service and
ServiceMonitor pointing at the right objects.

  /usr/bin/python3 tests/deploy/manifests_test.py ROOT RECSYS_SERVER_BINARY

Exits 77 (CTest: skipped) when kubectl is not installed.
"""

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import unittest

import yaml

ROOT = "."
SERVER = ""
OVERLAYS = ["cpu", "gpu"]


def render(overlay):
    out = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, "deploy/overlays", overlay)],
                         check=True, capture_output=True, text=True).stdout
    by_kind = {}
    for doc in yaml.safe_load_all(out):
        if doc:
            by_kind.setdefault(doc["kind"], []).append(doc)
    return by_kind


def server_flags():
    """Every flag recsys_server defines (from --helpfull)."""
    out = subprocess.run([SERVER, "--helpfull"], capture_output=True, text=True)
    return set(re.findall(r"^\s+--([a-z_]+) \(", out.stdout + out.stderr, re.M))


def seconds(duration):
    m = re.fullmatch(r"(\d+)s", duration)
    assert m, f"expected a duration in seconds, got {duration}"
    return int(m.group(1))


class OverlayTest(unittest.TestCase):
    flags = None

    @classmethod
    def setUpClass(cls):
        cls.flags = server_flags()

    def check_overlay(self, overlay):
        objects = render(overlay)
        for kind in ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                     "ServiceMonitor", "ConfigMap"]:
            self.assertEqual(len(objects.get(kind, [])), 1, f"{overlay}: one {kind}")
        deployment = objects["Deployment"][0]
        pod = deployment["spec"]["template"]
        labels = pod["metadata"]["labels"]
        spec = pod["spec"]
        (container,) = spec["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        self.assertIn("grpc", ports)
        self.assertIn("metrics", ports)

        # The server's flags exist and agree with the ports.
        args = dict(a[2:].split("=", 1) if "=" in a else (a[2:], "true")
                    for a in container["args"])
        for name in args:
            self.assertIn(name, self.flags, f"{overlay}: --{name} is not a recsys_server flag")
        self.assertEqual(args["address"], f"0.0.0.0:{ports['grpc']}")
        self.assertEqual(int(args["metrics_port"]), ports["metrics"])
        self.assertEqual(args["metrics_host"], "0.0.0.0")

        # Native gRPC probes on the gRPC port (plaintext: kubelet's gRPC probes have no TLS).
        for probe in ["startupProbe", "readinessProbe", "livenessProbe"]:
            self.assertIn("grpc", container[probe], f"{overlay}: {probe} is a gRPC probe")
            self.assertEqual(container[probe]["grpc"]["port"], ports["grpc"], probe)
        # The server refuses to start without --plaintext or --tls_cert, and kubelet's gRPC
        # probes cannot speak TLS.
        self.assertIn("plaintext", args, "gRPC probes need the plaintext port")
        self.assertEqual(container["readinessProbe"]["grpc"]["service"], "recsys.v1.Recommender")

        # Limits, equal to requests for CPU (the server sizes its workers from the quota).
        resources = container["resources"]
        for r in ["cpu", "memory"]:
            self.assertIn(r, resources["limits"])
            self.assertIn(r, resources["requests"])
        self.assertEqual(resources["limits"]["cpu"], resources["requests"]["cpu"])

        # Security context.
        self.assertTrue(spec["securityContext"]["runAsNonRoot"])
        self.assertGreater(spec["securityContext"]["runAsUser"], 0)
        self.assertFalse(spec.get("automountServiceAccountToken", True))
        sc = container["securityContext"]
        self.assertTrue(sc["readOnlyRootFilesystem"])
        self.assertFalse(sc["allowPrivilegeEscalation"])
        self.assertEqual(sc["capabilities"]["drop"], ["ALL"])

        # Grace: preStop sleep + the server's shutdown grace + margin fits in the pod's grace.
        pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        self.assertEqual(pre_stop[0], "sleep")
        needed = int(pre_stop[1]) + seconds(args.get("shutdown_grace", "10s")) + 5
        self.assertGreaterEqual(spec["terminationGracePeriodSeconds"], needed)

        # The feedback log: the directory the server writes is a volume that the collector, a
        # native sidecar (stopped after the server, so it ships the file rotated at shutdown),
        # mounts at the same path; it reads only rotated files there (removing the current one
        # would lose what the server appends next) and removes them once read.
        log_dir = args["feedback_log_dir"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        self.assertIn(log_dir, mounts, f"{overlay}: --feedback_log_dir is not a volume")
        self.assertIn(mounts[log_dir], {v["name"] for v in spec["volumes"]})
        collectors = [c for c in spec.get("initContainers", []) if c["name"] == "log-collector"]
        self.assertEqual(len(collectors), 1, f"{overlay}: one log-collector sidecar")
        collector = collectors[0]
        self.assertEqual(collector.get("restartPolicy"), "Always", "a native sidecar")
        self.assertIn((mounts[log_dir], log_dir),
                      [(m["name"], m["mountPath"]) for m in collector["volumeMounts"]])
        self.assertTrue(collector["securityContext"]["readOnlyRootFilesystem"])
        self.assertEqual(collector["securityContext"]["capabilities"]["drop"], ["ALL"])
        self.assertIn("memory", collector["resources"]["limits"])
        (config_map,) = objects["ConfigMap"]
        self.assertIn(config_map["metadata"]["name"],
                      {v.get("configMap", {}).get("name") for v in spec["volumes"]})
        source = yaml.safe_load(config_map["data"]["vector.yaml"])["sources"]["feedback_log"]
        for pattern in source["include"]:
            self.assertEqual(os.path.dirname(pattern), log_dir)
            self.assertTrue(fnmatch.fnmatch("feedback-20261130T150405.123Z-000001.jsonl",
                                            os.path.basename(pattern)), pattern)
            self.assertFalse(fnmatch.fnmatch("feedback.jsonl", os.path.basename(pattern)),
                             f"{pattern} matches the current file")
        self.assertGreater(source["remove_after_secs"], 0)

        # Service, HPA, PDB, ServiceMonitor point at this Deployment's pods and ports.
        service = objects["Service"][0]
        self.assertLessEqual(service["spec"]["selector"].items(), labels.items())
        self.assertEqual({p["targetPort"] for p in service["spec"]["ports"]}, set(ports))
        hpa = objects["HorizontalPodAutoscaler"][0]
        self.assertEqual(hpa["spec"]["scaleTargetRef"]["name"], deployment["metadata"]["name"])
        self.assertGreaterEqual(hpa["spec"]["minReplicas"], 1)
        pdb = objects["PodDisruptionBudget"][0]
        self.assertLessEqual(pdb["spec"]["selector"]["matchLabels"].items(), labels.items())
        monitor = objects["ServiceMonitor"][0]
        self.assertLessEqual(monitor["spec"]["selector"]["matchLabels"].items(),
                             service["metadata"]["labels"].items())
        self.assertEqual(monitor["spec"]["endpoints"][0]["port"], "metrics")
        return container, args

    def test_cpu(self):
        container, args = self.check_overlay("cpu")
        self.assertEqual(args.get("device", "cpu"), "cpu")
        self.assertEqual(container["image"], "recsys-server:latest")

    def test_gpu(self):
        container, args = self.check_overlay("gpu")
        self.assertEqual(args["device"], "cuda:0")
        self.assertEqual(container["resources"]["limits"]["nvidia.com/gpu"], 1)
        self.assertEqual(container["image"], "recsys-server-cuda:latest")


if __name__ == "__main__":
    if shutil.which("kubectl") is None:
        print("SKIPPED: kubectl is not installed")
        sys.exit(77)
    ROOT, SERVER = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
