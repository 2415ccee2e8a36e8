"""Checks that the deployment recipes in deploy/ fit together and fit the server.

The linters (hadolint, kubernetes-validate, the Compose schema, systemd-analyze)
check each file on its own; this checks what they cannot see:

- every MFA_* variable a recipe sets is read by the server as configuration:
  `mfa-server config show`, run with exactly that environment (the image's
  ENV first, then the recipe's), must succeed, name each variable as the
  source of a value, and warn about none (a misspelt top-level key would
  otherwise be ignored with a warning, and the replica run on a default);
- the image (deploy/Dockerfile's last stage): a numeric non-root user, the
  data directory as its volume, the health check `mfa-server health`, the
  listeners' ports exposed;
- compose.yaml: two replicas of the image, read-only, without capabilities,
  on the PostgreSQL service; HAProxy running deploy/haproxy/haproxy.cfg with
  every variable that file reads, pointed at both replicas' listeners, and
  trusted by them at its fixed address; Prometheus scraping both replicas in
  the job the alert rules expect, with the rules loaded; Grafana provisioned
  with the Prometheus data source and the shipped dashboard; every file it
  mounts exists;
- the Kubernetes manifests: selectors that select the Deployment's pods,
  probes on the right ports (readiness on gRPC health, liveness on /healthz),
  the security settings, a grace period longer than the server's drain, the
  NetworkPolicy's ports, the Secrets and ConfigMap wired in;
- the systemd unit and its example environment files: the hardening the
  issue names, two instances on distinct listeners, HAProxy's environment and
  the host's Prometheus pointed at them.

Usage: check_recipes.py PATH-TO-mfa-server (run by deploy/check-recipes.sh).
"""

import json
import re
import shlex
import subprocess
import sys
from ipaddress import ip_address, ip_network
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
UNIT = DEPLOY / "systemd" / "mfa-server@.service"
HAPROXY_CFG = DEPLOY / "haproxy" / "haproxy.cfg"
ALERTS = DEPLOY / "prometheus" / "mfa-alerts.yml"
# The scrape job the alert rules are written for (up{job="mfa-server"}).
JOB = "mfa-server"
# The server's drain on SIGTERM (server/src/server.rs, SHUTDOWN_GRACE).
DRAIN_SECONDS = 10
# The key files every replica must read from the same secret.
KEY_FILES = ("MFA_SERVER_KEY_FILE", "MFA_OFFLINE_CODE_KEY_FILE")

errors = []


def fail(where, message):
    errors.append(f"{where.relative_to(ROOT) if isinstance(where, Path) else where}: {message}")


def check(condition, where, message):
    if not condition:
        fail(where, message)
    return condition


def port_of(address):
    """The port of `host:port` (`[::]:port`, `:port`)."""
    return int(str(address).rsplit(":", 1)[1])


def host_of(address):
    return str(address).rsplit(":", 1)[0].strip("[]")


# ---------------------------------------------------------------------------
# The image


def dockerfile_stages(path):
    """Each stage's instructions as (INSTRUCTION, arguments), comments dropped
    and continuation lines joined."""
    logical, current = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    stages = []
    for line in logical:
        instruction, _, arguments = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((instruction.upper(), arguments.strip()))
    return stages


class Image:
    def __init__(self, path):
        final = dockerfile_stages(path)[-1]
        self.env, self.exposed, self.runs = {}, set(), []
        self.user = self.volume = self.healthcheck = self.entrypoint = None
        for instruction, arguments in final:
            if instruction == "ENV":
                for pair in shlex.split(arguments):
                    name, _, value = pair.partition("=")
                    self.env[name] = value
            elif instruction == "RUN":
                self.runs.append(arguments)
            elif instruction == "USER":
                self.user = arguments
            elif instruction == "VOLUME":
                self.volume = json.loads(arguments)
            elif instruction == "EXPOSE":
                self.exposed |= {int(p.split("/")[0]) for p in arguments.split()}
            elif instruction == "ENTRYPOINT":
                self.entrypoint = json.loads(arguments)
            elif instruction == "HEALTHCHECK":
                command = arguments.split(" CMD ", 1)
                self.healthcheck = json.loads(command[1]) if len(command) == 2 else None
        uid, _, gid = (self.user or "").partition(":")
        self.uid = int(uid) if uid.isdigit() else None
        self.gid = int(gid) if gid.isdigit() else None
        if check(self.uid not in (None, 0), path, f"USER {self.user!r}: a numeric uid other than 0 (Kubernetes' runAsNonRoot checks it)"):
            check(self.gid not in (None, 0), path, f"USER {self.user!r}: give a numeric non-root gid too")
        check(self.volume == [self.env.get("MFA_DATA_DIR")], path,
              f"VOLUME {self.volume} must be the data directory MFA_DATA_DIR={self.env.get('MFA_DATA_DIR')!r}")
        check(self.entrypoint and self.entrypoint[0].endswith("/mfa-server"), path,
              f"ENTRYPOINT {self.entrypoint}: the mfa-server binary, exec form")
        check(self.healthcheck == (self.entrypoint or [])[:1] + ["health"], path,
              f"HEALTHCHECK CMD {self.healthcheck}: expected [entrypoint, \"health\"]")
        # The user exists in the image and owns the volume's directory, whose
        # owner a new volume takes.
        run = " ".join(self.runs)
        check(f"--uid {self.uid}" in run and f"--gid {self.gid}" in run, path,
              f"the last stage must create the user {self.uid}:{self.gid} (useradd --uid, groupadd --gid)")
        check(re.search(rf"install -d -o \S+ -g \S+ -m 0?700 {re.escape(self.volume[0] if self.volume else '?')}", run),
              path, "the last stage must create the volume's directory, owned by the user, mode 0700")
        self.grpc_port = port_of(self.env.get("MFA_LISTEN", ":0"))
        self.metrics_port = port_of(self.env.get("MFA_METRICS_LISTEN", ":0"))
        for name in ("MFA_LISTEN", "MFA_METRICS_LISTEN"):
            address = self.env.get(name, "")
            check(host_of(address) in ("0.0.0.0", "::"), path,
                  f"{name}={address!r}: a container listens on every address")
            check(address and port_of(address) in self.exposed, path,
                  f"{name}={address!r}: its port is not EXPOSEd ({sorted(self.exposed)})")


# ---------------------------------------------------------------------------
# The server's own reading of the configuration


def config_show(server, where, environment):
    """Runs `mfa-server config show` with exactly `environment` and checks
    that each MFA_* variable in it is read as a configuration value."""
    result = subprocess.run(
        [server, "config", "show"],
        env={"PATH": "/usr/bin:/bin", **environment},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        fail(where, f"mfa-server refuses its configuration: {result.stderr.strip()}")
        return
    if "not configuration keys" in result.stderr:
        fail(where, f"sets MFA_* variables the server ignores: {result.stderr.strip()}")
    sources = set(re.findall(r"# environment (MFA_\w+)$", result.stdout, re.M))
    for name in sorted(n for n in environment if n.startswith("MFA_")):
        check(name in sources, where, f"{name} is not read as configuration by mfa-server")


def compose_interpolate(value, where):
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?message}, with a
    stand-in for every variable the operator must set."""
    def replace(match):
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if op == ":-":
            return rest
        if op == ":?":
            return f"stand-in-{name.lower()}"
        fail(where, f"${{{name}}} has neither a default (:-) nor a message (:?) for an unset variable")
        return ""
    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", replace, str(value))


def haproxy_variables():
    """The variables haproxy.cfg reads ("${NAME}"), outside its comments."""
    lines = HAPROXY_CFG.read_text(encoding="utf-8").splitlines()
    text = "\n".join(line.split("#", 1)[0] for line in lines)
    return set(re.findall(r'"\$\{(\w+)\}"', text))


def scrape_targets(prometheus_config):
    config = yaml.safe_load(prometheus_config.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config.get("scrape_configs", [])}
    job = jobs.get(JOB)
    if not check(job is not None, prometheus_config, f"no scrape job {JOB!r} (the alert rules select job={JOB!r})"):
        return set()
    check(ALERTS.name in config.get("rule_files", []), prometheus_config,
          f"rule_files must load {ALERTS.name} (relative: it sits beside this file)")
    return {t for static in job.get("static_configs", []) for t in static.get("targets", [])}


# ---------------------------------------------------------------------------
# compose.yaml


def check_compose(server, image):
    where = COMPOSE
    compose = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    services = compose.get("services", {})
    for name in ("postgres", "haproxy", "prometheus", "grafana"):
        check(name in services, where, f"no service {name!r}")
    replicas = sorted(name for name, s in services.items()
                      if (s.get("build") or {}).get("dockerfile") == "deploy/Dockerfile")
    check(len(replicas) == 2, where, f"two replicas built from deploy/Dockerfile, found {replicas}")

    # Every file or directory it mounts exists (the server key is the
    # operator's, made as the README says, and never committed).
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("."):
                check((DEPLOY / source).exists(), where, f"service {name} mounts {source}, which does not exist")
        for dependency in service.get("depends_on", []):
            check(dependency in services, where, f"service {name} depends on unknown {dependency!r}")
        for secret in service.get("secrets", []):
            check(secret in compose.get("secrets", {}), where, f"service {name}: unknown secret {secret!r}")
    for secret, definition in compose.get("secrets", {}).items():
        path = (DEPLOY / definition.get("file", "")).resolve()
        check(path.parent == (DEPLOY / "secrets").resolve(), where,
              f"secret {secret}: its file belongs in deploy/secrets/ (ignored by git)")

    # HAProxy's fixed address, which the replicas trust.
    haproxy = services.get("haproxy", {})
    networks = haproxy.get("networks") or {}
    haproxy_ip = next((n.get("ipv4_address") for n in networks.values() if isinstance(n, dict)), None) \
        if isinstance(networks, dict) else None
    subnets = [ip_network(c["subnet"]) for n in compose.get("networks", {}).values()
               for c in ((n or {}).get("ipam") or {}).get("config", [])]
    check(haproxy_ip and any(ip_address(haproxy_ip) in s for s in subnets), where,
          f"haproxy needs a fixed ipv4_address inside the network's subnet {subnets}, has {haproxy_ip}")

    for name in replicas:
        replica, at = services[name], f"{where.relative_to(ROOT)} service {name}"
        check(replica.get("read_only") is True, at, "read_only: true (the image writes only to its volume)")
        check("ALL" in replica.get("cap_drop", []), at, "cap_drop: [ALL]")
        check("no-new-privileges:true" in replica.get("security_opt", []), at, "security_opt no-new-privileges:true")
        check(replica.get("user") in (None, image.user), at, f"user {replica.get('user')} is not the image's")
        grace = replica.get("stop_grace_period", "10s")
        check(int(str(grace).rstrip("s")) > DRAIN_SECONDS, at,
              f"stop_grace_period {grace}: longer than the server's {DRAIN_SECONDS} s drain")
        environment = {k: compose_interpolate(v, at) for k, v in replica.get("environment", {}).items()}
        database = environment.get("MFA_DATABASE_URL", "")
        check(re.match(r"postgres(ql)?://[^@]+@postgres:\d+/", database), at,
              "MFA_DATABASE_URL must name the postgres service")
        for name in KEY_FILES:
            key_file = environment.get(name, "")
            check(key_file in {f"/run/secrets/{s}" for s in replica.get("secrets", [])}, at,
                  f"{name}={key_file!r}: the same key on both replicas, from a secret")
        trusted = yaml.safe_load(environment.get("MFA_TRUSTED_PROXIES", "[]"))
        check(haproxy_ip and any(ip_address(haproxy_ip) in ip_network(t, strict=False) for t in trusted), at,
              f"MFA_TRUSTED_PROXIES {trusted} must hold HAProxy's address {haproxy_ip}")
        config_show(server, at, {**image.env, **environment})

    # HAProxy: the tested file, every variable it reads, both replicas.
    at = f"{where.relative_to(ROOT)} service haproxy"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in haproxy.get("volumes", []) if isinstance(v, str)}
    check(mounts.get("/usr/local/etc/haproxy/haproxy.cfg") == "./haproxy/haproxy.cfg", at,
          "must mount ./haproxy/haproxy.cfg at /usr/local/etc/haproxy/haproxy.cfg")
    environment = haproxy.get("environment", {})
    missing = haproxy_variables() - set(environment)
    check(not missing, at, f"haproxy.cfg reads {sorted(missing)}, which are not set")
    backends = {environment.get(f"REPLICA_{i}") for i in (1, 2)}
    check(backends == {f"{r}:{image.grpc_port}" for r in replicas}, at,
          f"REPLICA_1/2 {sorted(map(str, backends))} must be the replicas' gRPC listeners")
    for i in (1, 2):
        check(str(environment.get(f"REPLICA_{i}_HEALTH_PORT")) == str(image.metrics_port), at,
              f"REPLICA_{i}_HEALTH_PORT must be the replicas' metrics port {image.metrics_port}")
    published = {str(p).rsplit(":", 1)[-1] for p in haproxy.get("ports", [])}
    check(str(port_of(environment.get("LB_BIND", ":0"))) in published, at, "LB_BIND's port is not published")

    # Prometheus scrapes both replicas and loads the rules.
    at = f"{where.relative_to(ROOT)} service prometheus"
    prometheus = services.get("prometheus", {})
    mounts = {v.split(":")[1]: v.split(":")[0] for v in prometheus.get("volumes", []) if isinstance(v, str)}
    check(mounts.get("/etc/prometheus/prometheus.yml") == "./prometheus/prometheus.yml", at,
          "must mount ./prometheus/prometheus.yml at /etc/prometheus/prometheus.yml")
    check(mounts.get(f"/etc/prometheus/{ALERTS.name}") == f"./prometheus/{ALERTS.name}", at,
          f"must mount ./prometheus/{ALERTS.name} beside it")
    targets = scrape_targets(DEPLOY / "prometheus" / "prometheus.yml")
    check(targets == {f"{r}:{image.metrics_port}" for r in replicas}, DEPLOY / "prometheus" / "prometheus.yml",
          f"targets {sorted(targets)} must be both replicas' metrics listeners")

    # Grafana: the data source and the dashboard, provisioned.
    at = f"{where.relative_to(ROOT)} service grafana"
    grafana = services.get("grafana", {})
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana.get("volumes", []) if isinstance(v, str)}
    datasources = DEPLOY / "grafana" / "provisioning" / "datasources"
    providers = DEPLOY / "grafana" / "provisioning" / "dashboards"
    check(mounts.get("/etc/grafana/provisioning/datasources") == "./grafana/provisioning/datasources", at,
          "must mount ./grafana/provisioning/datasources")
    check(mounts.get("/etc/grafana/provisioning/dashboards") == "./grafana/provisioning/dashboards", at,
          "must mount ./grafana/provisioning/dashboards")
    sources = [d for f in sorted(datasources.glob("*.yaml"))
               for d in (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("datasources", [])]
    check(any(d.get("type") == "prometheus" and d.get("url") == "http://prometheus:9090" for d in sources),
          datasources, "needs a prometheus data source at http://prometheus:9090")
    paths = [p.get("options", {}).get("path") for f in sorted(providers.glob("*.yaml"))
             for p in (yaml.safe_load(f.read_text(encoding="utf-8")) or {}).get("providers", [])
             if p.get("type") == "file"]
    dashboard = [target for target, source in mounts.items() if source == "./grafana/mfa-dashboard.json"]
    check(len(dashboard) == 1 and any(p and dashboard[0].startswith(p.rstrip("/") + "/") for p in paths), at,
          f"the dashboard must be mounted under a file provider's path {paths}, is at {dashboard}")


# ---------------------------------------------------------------------------
# Kubernetes


def selects(selector, labels):
    match = (selector or {}).get("matchLabels", {})
    return bool(match) and all(labels.get(k) == v for k, v in match.items())


def check_kubernetes(server, image):
    documents = []
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document:
                documents.append((path, document))
    kinds = {}
    for path, document in documents:
        kinds.setdefault(document["kind"], []).append((path, document))
    for kind in ("Deployment", "Service", "PodDisruptionBudget", "ConfigMap", "NetworkPolicy"):
        if not check(len(kinds.get(kind, [])) == 1, KUBERNETES, f"exactly one {kind}, found {len(kinds.get(kind, []))}"):
            return
    path, deployment = kinds["Deployment"][0]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels", {})
    check(spec.get("replicas") == 2, path, "two replicas")
    check(selects(spec.get("selector"), labels), path, "the selector must select the pod template's labels")
    containers = pod.get("containers", [])
    if not check(len(containers) == 1, path, "one container"):
        return
    container = containers[0]
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    check(ports.get("grpc") == image.grpc_port, path, f"port grpc must be the image's {image.grpc_port}")
    check(ports.get("metrics") == image.metrics_port, path, f"port metrics must be the image's {image.metrics_port}")

    def port_number(port):
        return ports.get(port) if isinstance(port, str) else port

    readiness = container.get("readinessProbe", {})
    check(port_number(readiness.get("grpc", {}).get("port")) == image.grpc_port, path,
          "readinessProbe: grpc on the gRPC port")
    for probe in ("livenessProbe", "startupProbe"):
        http = container.get(probe, {}).get("httpGet", {})
        check(http.get("path") == "/healthz" and port_number(http.get("port")) == image.metrics_port, path,
              f"{probe}: httpGet /healthz on the metrics port")

    security = pod.get("securityContext", {})
    check(security.get("runAsNonRoot") is True, path, "pod securityContext.runAsNonRoot: true")
    check(security.get("runAsUser") == image.uid and security.get("runAsGroup") == image.gid, path,
          f"pod securityContext runAsUser/runAsGroup: the image's {image.uid}:{image.gid}")
    check(security.get("seccompProfile", {}).get("type") == "RuntimeDefault", path, "seccompProfile RuntimeDefault")
    security = container.get("securityContext", {})
    check(security.get("readOnlyRootFilesystem") is True, path, "readOnlyRootFilesystem: true")
    check(security.get("allowPrivilegeEscalation") is False, path, "allowPrivilegeEscalation: false")
    check(security.get("capabilities", {}).get("drop") == ["ALL"], path, "capabilities: drop ALL")
    resources = container.get("resources", {})
    check(resources.get("requests", {}).get("cpu") and resources.get("requests", {}).get("memory")
          and resources.get("limits", {}).get("memory"), path, "resources: cpu and memory requests, a memory limit")
    pause = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pause = int(pause[1]) if len(pause) == 2 and pause[0] == "sleep" else 0
    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace > pause + DRAIN_SECONDS, path,
          f"terminationGracePeriodSeconds {grace} must exceed the preStop pause ({pause} s) and the drain ({DRAIN_SECONDS} s)")
    check(pod.get("enableServiceLinks") is False, path,
          "enableServiceLinks: false (else Services add MFA_SERVER_PORT-style variables)")

    # Configuration: the ConfigMap, then the Secrets (stand-in values).
    config_path, config_map = kinds["ConfigMap"][0]
    check([e.get("configMapRef", {}).get("name") for e in container.get("envFrom", [])]
          == [config_map["metadata"]["name"]], path, "envFrom: the ConfigMap")
    environment = dict(config_map.get("data", {}))
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        elif "secretKeyRef" in variable.get("valueFrom", {}):
            environment[variable["name"]] = "postgres://mfa:stand-in@db.example.com:5432/mfa"
        else:
            fail(path, f"env {variable['name']}: a value or a Secret")
    check("secretKeyRef" in next((v.get("valueFrom", {}) for v in container.get("env", [])
                                  if v["name"] == "MFA_DATABASE_URL"), {}), path,
          "MFA_DATABASE_URL (it holds the password) from a Secret")
    secret_volumes = {v["name"] for v in pod.get("volumes", []) if "secret" in v}
    secret_mounts = [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in secret_volumes]
    for name in KEY_FILES:
        key_file = environment.get(name, "")
        check(any(key_file.startswith(m.rstrip("/") + "/") for m in secret_mounts), path,
              f"{name}={key_file!r} must be in a mounted Secret")
    check(not [v for v in pod.get("volumes", []) if "secret" not in v], path,
          "on PostgreSQL a replica writes nothing: no volume other than Secrets")
    trusted = yaml.safe_load(environment.get("MFA_TRUSTED_PROXIES", "[]"))
    check(bool(trusted), config_path, "MFA_TRUSTED_PROXIES: the ingress controller's network")
    config_show(server, f"{path.relative_to(ROOT)} with {config_path.relative_to(ROOT)}",
                {**image.env, **environment})

    # The rest select the same pods and use its ports.
    for kind, field in (("Service", "selector"), ("PodDisruptionBudget", "selector"),
                        ("NetworkPolicy", "podSelector")):
        where, document = kinds[kind][0]
        selector = document["spec"].get(field, {})
        if kind == "Service":
            selector = {"matchLabels": selector}
        check(selects(selector, labels), where, f"{kind} must select the Deployment's pods")
    where, service = kinds["Service"][0]
    for port in service["spec"].get("ports", []):
        check(port_number(port.get("targetPort")) in ports.values(), where, f"targetPort {port.get('targetPort')} is not a container port")
    check(kinds["PodDisruptionBudget"][0][1]["spec"].get("minAvailable") == 1, kinds["PodDisruptionBudget"][0][0],
          "minAvailable: 1 of the two replicas")

    where, policy = kinds["NetworkPolicy"][0]
    policy = policy["spec"]
    check(sorted(policy.get("policyTypes", [])) == ["Egress", "Ingress"], where, "policyTypes Ingress and Egress")
    rules = {}
    for rule in policy.get("ingress", []):
        for port in rule.get("ports", []):
            rules[port_number(port.get("port"))] = rule.get("from")
    check(image.grpc_port in rules and rules[image.grpc_port] is None, where, "gRPC from anywhere")
    monitoring = rules.get(image.metrics_port) or []
    check(len(monitoring) == 1 and "namespaceSelector" in monitoring[0] and "podSelector" not in monitoring[0], where,
          "the metrics port only from the monitoring namespace")
    egress = {(p.get("port"), p.get("protocol", "TCP")) for rule in policy.get("egress", []) for p in rule.get("ports", [])}
    for needed in ((53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")):
        check(needed in egress, where, f"egress to port {needed[0]}/{needed[1]}")

    for where, ingress in kinds.get("Ingress", []):
        for rule in ingress["spec"].get("rules", []):
            for http_path in rule.get("http", {}).get("paths", []):
                backend = http_path["backend"]["service"]
                check(backend["name"] == service["metadata"]["name"]
                      and backend["port"].get("name") in {p["name"] for p in service["spec"]["ports"]},
                      where, f"backend {backend} is not a port of the Service")
    for where, monitor in kinds.get("PodMonitor", []):
        spec = monitor["spec"]
        check(selects(spec.get("selector"), labels), where, "must select the Deployment's pods")
        check(labels.get(spec.get("jobLabel")) == JOB, where,
              f"jobLabel must name a pod label whose value is {JOB!r} (the alert rules' job)")
        check({e.get("port") for e in spec.get("podMetricsEndpoints", [])} == {"metrics"}, where,
              "scrape the metrics port")


# ---------------------------------------------------------------------------
# systemd


def unit_settings(path):
    settings = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")) and "=" in line:
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def environment_file(path):
    """KEY=value lines. Quotes and backslashes, which systemd and a shell
    read differently, are refused rather than interpreted."""
    environment = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, separator, value = line.partition("=")
        if not separator or not re.fullmatch(r"[A-Z_][A-Z0-9_]*", key):
            fail(path, f"line {number}: not KEY=value")
        elif re.search(r"[\"'\\]", value):
            fail(path, f"line {number}: no quotes or backslashes (systemd would read them its own way)")
        else:
            environment[key] = value
    return environment


def check_systemd(server):
    settings = unit_settings(UNIT)
    for key, value in (("DynamicUser", "yes"), ("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"),
                       ("PrivateTmp", "yes"), ("ProtectHome", "yes"), ("CapabilityBoundingSet", "")):
        check(settings.get(key) == [value], UNIT, f"{key}={value}")
    check(settings.get("StateDirectory") == ["mfa/%i"], UNIT, "StateDirectory=mfa/%i")
    stop = settings.get("TimeoutStopSec", ["90s"])[-1]
    check(int(stop.rstrip("s")) > DRAIN_SECONDS, UNIT, f"TimeoutStopSec={stop}: longer than the drain")
    files = [f for f in settings.get("EnvironmentFile", [])]
    check(files == ["/etc/mfa/mfa.env", "-/etc/mfa/%i.env"], UNIT,
          "EnvironmentFile=/etc/mfa/mfa.env, then the optional -/etc/mfa/%i.env")
    credentials = [c.split(":", 1)[0] for c in settings.get("LoadCredential", [])]

    listeners = {}
    for instance in ("1", "2"):
        def specifiers(value):
            return (value.replace("%S", "/var/lib").replace("%i", instance)
                    .replace("%d", f"/run/credentials/mfa-server@{instance}.service"))
        environment = {}
        for assignment in settings.get("Environment", []):
            for pair in shlex.split(assignment):
                key, _, value = pair.partition("=")
                environment[key] = specifiers(value)
        environment.update(environment_file(DEPLOY / "systemd" / "mfa.env"))
        environment.update(environment_file(DEPLOY / "systemd" / f"{instance}.env"))
        for name in KEY_FILES:
            key_file = environment.get(name, "")
            check(key_file.rsplit("/", 1)[-1] in credentials
                  and key_file.startswith(f"/run/credentials/mfa-server@{instance}.service/"), UNIT,
                  f"{name}={key_file!r} must be a LoadCredential= in %d")
        check(host_of(environment.get("MFA_LISTEN", "")) in ("127.0.0.1", "::1")
              or environment.get("MFA_TLS__ALLOW_PLAINTEXT") == "true"
              or "MFA_TLS__CERT_FILE" in environment, DEPLOY / "systemd" / f"{instance}.env",
              "a listener off loopback needs TLS or MFA_TLS__ALLOW_PLAINTEXT=true")
        listeners[instance] = (environment.get("MFA_LISTEN"), environment.get("MFA_METRICS_LISTEN"))
        config_show(server, f"{UNIT.relative_to(ROOT)} instance {instance}", environment)
        trusted = yaml.safe_load(environment.get("MFA_TRUSTED_PROXIES", "[]"))
        check(any(ip_address("127.0.0.1") in ip_network(t, strict=False) for t in trusted),
              DEPLOY / "systemd" / "mfa.env", "MFA_TRUSTED_PROXIES must hold HAProxy's loopback address")
    addresses = [a for pair in listeners.values() for a in pair]
    check(len(set(addresses)) == 4 and None not in addresses, DEPLOY / "systemd",
          f"the two instances need distinct listeners: {listeners}")

    haproxy_env = environment_file(DEPLOY / "systemd" / "haproxy.env")
    missing = haproxy_variables() - set(haproxy_env)
    check(not missing, DEPLOY / "systemd" / "haproxy.env", f"haproxy.cfg reads {sorted(missing)}, which are not set")
    for i in ("1", "2"):
        grpc, metrics = listeners[i]
        check(haproxy_env.get(f"REPLICA_{i}") == grpc, DEPLOY / "systemd" / "haproxy.env",
              f"REPLICA_{i} must be mfa-server@{i}'s listener {grpc}")
        check(metrics and haproxy_env.get(f"REPLICA_{i}_HEALTH_PORT") == str(port_of(metrics)),
              DEPLOY / "systemd" / "haproxy.env", f"REPLICA_{i}_HEALTH_PORT must be the port of {metrics}")
    host_config = DEPLOY / "prometheus" / "prometheus-host.yml"
    targets = scrape_targets(host_config)
    check(targets == {metrics for _, metrics in listeners.values()}, host_config,
          f"targets {sorted(targets)} must be the instances' metrics listeners")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    server = sys.argv[1]
    image = Image(DOCKERFILE)
    config_show(server, DOCKERFILE.relative_to(ROOT), image.env)
    check_compose(server, image)
    check_kubernetes(server, image)
    check_systemd(server)
    if errors:
        for error in errors:
            print(error, file=sys.stderr)
        sys.exit(1)
    print("image, compose.yaml, Kubernetes manifests and systemd unit agree with each other and with mfa-server")


if __name__ == "__main__":
    main()
