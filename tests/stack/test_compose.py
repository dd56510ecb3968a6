"""Structure checks for the Collector + Jaeger stack, made without a Docker engine.

The configs are read the way the collector reads them: an ``${env:VAR:-default}`` that is a whole
value is replaced by the YAML value of the variable (or of the default), one inside a longer string
by its text. Every check crosses files where a mismatch would only show at ``docker compose up``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
COLLECTOR_CONFIG = REPO / "collector" / "otelcol-config.yml"
JAEGER_CONFIG = REPO / "jaeger" / "config.yml"

COLLECTOR = "otel-collector"
JAEGER = "jaeger"
PROBE_TOOLS = "probe-tools"

_ENV_REF = re.compile(r"\$\{env:(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}")
_ANY_REF = re.compile(r"\$\{[^}]*\}")
_PINNED_TAG = re.compile(r"^\d+\.\d+\.\d+(?:-[a-z0-9]+)?$")


# --- reading the files -------------------------------------------------------------------------


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: top level is not a mapping"
    return data


def _resolve(value: Any, env: Mapping[str, str]) -> Any:
    """Apply the collector's ``${env:...}`` expansion to a loaded config."""
    if isinstance(value, dict):
        return {key: _resolve(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [_resolve(item, env) for item in value]
    if not isinstance(value, str):
        return value
    whole = _ENV_REF.fullmatch(value)
    if whole is not None:
        return yaml.safe_load(_lookup(whole, env))
    return _ENV_REF.sub(lambda match: _lookup(match, env), value)


def _strings(value: Any) -> list[str]:
    """Every string in a loaded config (comments are gone by then, as for the collector)."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [value] if isinstance(value, str) else []


def _env_names(path: Path) -> set[str]:
    return {match.group("name") for text in _strings(_load(path)) for match in _ENV_REF.finditer(text)}


def _lookup(match: re.Match[str], env: Mapping[str, str]) -> str:
    name, default = match.group("name"), match.group("default")
    if name in env:
        return env[name]
    assert default is not None, f"${{env:{name}}} has no default"
    return default


def _config(path: Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    resolved = _resolve(_load(path), env or {})
    assert isinstance(resolved, dict)
    return resolved


def _compose() -> dict[str, Any]:
    return _load(COMPOSE_FILE)


def _service(name: str) -> dict[str, Any]:
    services = _compose()["services"]
    assert name in services, f"docker-compose.yml has no service {name!r}"
    service = services[name]
    assert isinstance(service, dict)
    return service


def _component_type(component_id: str) -> str:
    """``otlp_grpc/jaeger`` -> ``otlp_grpc``: the part before the slash names the component type."""
    return component_id.split("/", 1)[0]


def _host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def _published(service: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) for each short-syntax port entry."""
    entries = []
    for entry in service.get("ports", []):
        assert isinstance(entry, str), f"port {entry!r}: use the short 'IP:HOST:CONTAINER' form"
        parts = entry.split("/")[0].split(":")
        assert len(parts) == 3, f"port {entry!r} does not name a host IP"
        entries.append((parts[0], int(parts[1]), int(parts[2])))
    return entries


def _command_config_path(service: Mapping[str, Any]) -> str:
    flags = [arg for arg in service["command"] if arg.startswith("--config=")]
    assert len(flags) == 1, f"command {service['command']!r} must name exactly one --config=PATH"
    return str(flags[0].removeprefix("--config="))


def _mounts(service: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Container path -> (source, mode) for each short-syntax volume entry."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        mounts[target] = (source, mode[0] if mode else "rw")
    return mounts


# --- collector config --------------------------------------------------------------------------

_DEBUG_ON = {"OTELCOL_TRACES_EXPORTERS": "[otlp_grpc/jaeger, debug]"}
_CONFIGS = {
    "collector": (COLLECTOR_CONFIG, {}),
    "collector with debug exporter": (COLLECTOR_CONFIG, _DEBUG_ON),
    "jaeger": (JAEGER_CONFIG, {}),
}


@pytest.mark.parametrize("name", list(_CONFIGS))
def test_every_pipeline_names_defined_components(name: str) -> None:
    path, env = _CONFIGS[name]
    config = _config(path, env)
    service = config["service"]
    assert service["pipelines"], "no pipeline"
    for pipeline_id, pipeline in service["pipelines"].items():
        assert pipeline.get("receivers"), f"{pipeline_id}: no receiver"
        assert pipeline.get("exporters"), f"{pipeline_id}: no exporter"
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind) or []:
                defined = config.get(kind) or {}
                assert component in defined, f"{pipeline_id}: {kind} {component!r} is not defined"
    for extension in service.get("extensions", []):
        assert extension in config["extensions"], f"extension {extension!r} is enabled but not defined"


def test_memory_limiter_is_first_then_batch() -> None:
    for pipeline_id, pipeline in _config(COLLECTOR_CONFIG)["service"]["pipelines"].items():
        types = [_component_type(processor) for processor in pipeline["processors"]]
        assert types[:1] == ["memory_limiter"], f"{pipeline_id}: {types} does not start with memory_limiter"
        assert "batch" in types, f"{pipeline_id}: no batch processor"


def test_memory_limiter_fits_inside_the_container_limit() -> None:
    limiter = _config(COLLECTOR_CONFIG)["processors"]["memory_limiter"]
    mem_limit_mib = _mebibytes(_service(COLLECTOR)["mem_limit"])
    assert limiter["check_interval"] == "1s"
    assert 0 < limiter["spike_limit_mib"] < limiter["limit_mib"] < mem_limit_mib


def _mebibytes(size: str) -> int:
    match = re.fullmatch(r"(\d+)([mg])", size.lower())
    assert match is not None, f"mem_limit {size!r}: expected a number with m or g"
    return int(match.group(1)) * (1024 if match.group(2) == "g" else 1)


def test_otlp_receivers_listen_on_the_ports_compose_publishes() -> None:
    protocols = _config(COLLECTOR_CONFIG)["receivers"]["otlp"]["protocols"]
    grpc_host, grpc_port = _host_port(protocols["grpc"]["endpoint"])
    http_host, http_port = _host_port(protocols["http"]["endpoint"])
    # Inside the container the receivers must listen on every interface, or the published
    # ports reach nothing; loopback-only exposure is the job of the compose port binding.
    assert (grpc_host, grpc_port) == ("0.0.0.0", 4317)
    assert (http_host, http_port) == ("0.0.0.0", 4318)
    published = {container: host for _, host, container in _published(_service(COLLECTOR))}
    assert published == {4317: 4317, 4318: 4318}


def test_exporter_sends_to_jaegers_otlp_grpc_receiver() -> None:
    collector = _config(COLLECTOR_CONFIG)
    (exporter_id,) = collector["service"]["pipelines"]["traces"]["exporters"]
    assert _component_type(exporter_id) == "otlp_grpc"
    exporter = collector["exporters"][exporter_id]
    host, port = _host_port(exporter["endpoint"])
    assert host == JAEGER and host in _compose()["services"]
    jaeger_grpc = _config(JAEGER_CONFIG)["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert _host_port(jaeger_grpc) == ("0.0.0.0", port)
    assert exporter["tls"]["insecure"] is True, "Jaeger's receiver in the stack speaks plaintext"


def test_jaeger_endpoint_can_be_changed_by_environment() -> None:
    collector = _config(COLLECTOR_CONFIG, {"JAEGER_OTLP_ENDPOINT": "tempo:4317"})
    assert collector["exporters"]["otlp_grpc/jaeger"]["endpoint"] == "tempo:4317"


def test_debug_exporter_is_defined_but_off_by_default() -> None:
    config = _config(COLLECTOR_CONFIG)
    assert config["exporters"]["debug"]["verbosity"] == "detailed"
    for pipeline in config["service"]["pipelines"].values():
        assert "debug" not in pipeline["exporters"]


def test_debug_exporter_is_switched_on_by_environment() -> None:
    config = _config(COLLECTOR_CONFIG, {**_DEBUG_ON, "OTELCOL_DEBUG_VERBOSITY": "basic"})
    assert config["service"]["pipelines"]["traces"]["exporters"] == ["otlp_grpc/jaeger", "debug"]
    assert config["exporters"]["debug"]["verbosity"] == "basic"


@pytest.mark.parametrize("path", [COLLECTOR_CONFIG, JAEGER_CONFIG], ids=lambda path: path.parent.name)
def test_every_env_substitution_has_a_default(path: Path) -> None:
    references = [reference for text in _strings(_load(path)) for reference in _ANY_REF.findall(text)]
    assert references, "no ${env:...} substitution: nothing for a user to change"
    for reference in references:
        match = _ENV_REF.fullmatch(reference)
        assert match is not None, f"{reference}: not of the form ${{env:VAR:-default}}"
        assert match.group("default"), f"{reference}: no default after ':-'"


@pytest.mark.parametrize(
    ("path", "service"), [(COLLECTOR_CONFIG, COLLECTOR), (JAEGER_CONFIG, JAEGER)], ids=[COLLECTOR, JAEGER]
)
def test_compose_passes_every_config_variable_through(path: Path, service: str) -> None:
    referenced = _env_names(path)
    environment = _service(service)["environment"]
    # Bare names: the variable is taken from the shell when set, so the config's default applies
    # otherwise (NAME= would pass an empty string, which the collector does not replace).
    passed = {entry for entry in environment if "=" not in entry}
    assert referenced <= passed, f"not passed through by compose: {sorted(referenced - passed)}"


def test_compose_file_interpolations_have_defaults() -> None:
    for reference in re.findall(r"\$\{[^}]*\}", COMPOSE_FILE.read_text(encoding="utf-8")):
        assert ":-" in reference, f"{reference}: compose interpolation without a default"


# --- health checks -----------------------------------------------------------------------------


def _probe_url(service: Mapping[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    # Exec form: the collector image has no shell to run a CMD-SHELL string.
    assert test[0] == "CMD", f"health check {test!r} is not in exec form"
    (url,) = [arg for arg in test if arg.startswith("http://")]
    return str(url)


def test_collector_health_check_probes_its_health_check_extension() -> None:
    config = _config(COLLECTOR_CONFIG)
    assert "health_check" in config["service"]["extensions"]
    endpoint = config["extensions"]["health_check"]["endpoint"]
    assert _probe_url(_service(COLLECTOR)) == f"http://{endpoint}/"


def test_jaeger_health_check_probes_healthcheckv2_status() -> None:
    config = _config(JAEGER_CONFIG)
    assert "healthcheckv2" in config["service"]["extensions"]
    extension = config["extensions"]["healthcheckv2"]
    assert extension["use_v2"] is True
    status_path = extension["http"].get("status", {}).get("path", "/status")
    assert _probe_url(_service(JAEGER)) == f"http://{extension['http']['endpoint']}{status_path}"


def test_collector_probe_binary_comes_from_the_probe_tools_volume() -> None:
    collector, tools = _service(COLLECTOR), _service(PROBE_TOOLS)
    probe = Path(collector["healthcheck"]["test"][1])
    mounts = _mounts(collector)
    (target,) = [target for target in mounts if probe.parent == Path(target)]
    volume, mode = mounts[target]
    assert mode == "ro"
    assert volume in _compose()["volumes"], f"{volume!r} is not a named volume"
    # probe-tools writes the binary into the same volume, under the same name.
    tools_target = next(path for path, (source, _) in _mounts(tools).items() if source == volume)
    assert f"{tools_target}/{probe.name}" in " ".join(tools["command"])
    assert re.fullmatch(r"busybox:[\d.]+-musl", tools["image"]), "needs the statically linked BusyBox"
    assert collector["depends_on"][PROBE_TOOLS] == {"condition": "service_completed_successfully"}
    assert tools.get("restart") == "no"


def test_collector_waits_for_a_healthy_jaeger() -> None:
    assert _service(COLLECTOR)["depends_on"][JAEGER] == {"condition": "service_healthy"}


def test_every_depends_on_names_a_condition() -> None:
    services = _compose()["services"]
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on must be a mapping with conditions"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown service {dependency!r}"
            assert spec.get("condition") in conditions, f"{name} -> {dependency}: no valid condition"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no health check to wait for"


# --- compose file ------------------------------------------------------------------------------


def test_ports_are_published_on_loopback_only() -> None:
    published = {name: _published(service) for name, service in _compose()["services"].items()}
    for name, entries in published.items():
        for host_ip, _, _ in entries:
            assert host_ip == "127.0.0.1", f"{name} publishes on {host_ip}"
    assert {(host, container) for _, host, container in published[COLLECTOR]} == {(4317, 4317), (4318, 4318)}
    assert {(host, container) for _, host, container in published[JAEGER]} == {(16686, 16686)}
    assert published[PROBE_TOOLS] == []


def test_jaeger_ui_listens_on_the_published_port() -> None:
    endpoint = _config(JAEGER_CONFIG)["extensions"]["jaeger_query"]["http"]["endpoint"]
    assert _host_port(endpoint) == ("0.0.0.0", 16686)


def test_images_are_pinned() -> None:
    for name, service in _compose()["services"].items():
        image, _, tag = service["image"].rpartition(":")
        assert image and "/" not in tag, f"{name}: image {service['image']!r} has no tag"
        assert _PINNED_TAG.match(tag), f"{name}: tag {tag!r} is not a pinned release"


def test_stack_runs_jaeger_v2_and_collector_contrib() -> None:
    jaeger_image, _, jaeger_tag = _service(JAEGER)["image"].rpartition(":")
    assert jaeger_image == "jaegertracing/jaeger", "not the Jaeger v2 image (all-in-one is v1)"
    assert jaeger_tag.split(".")[0] == "2"
    collector_image = _service(COLLECTOR)["image"].rpartition(":")[0]
    assert collector_image == "otel/opentelemetry-collector-contrib"


def test_every_service_has_a_memory_limit() -> None:
    for name, service in _compose()["services"].items():
        assert re.fullmatch(r"\d+[mg]", str(service.get("mem_limit", ""))), f"{name}: no mem_limit"


def test_jaeger_memory_store_is_bounded() -> None:
    extensions = _config(JAEGER_CONFIG)["extensions"]
    backends = extensions["jaeger_storage"]["backends"]
    for name, backend in backends.items():
        assert set(backend) == {"memory"}, f"{name}: only the in-memory store is expected"
        max_traces = backend["memory"]["max_traces"]
        assert isinstance(max_traces, int) and max_traces > 0, f"{name}: unbounded memory store"
    assert extensions["jaeger_query"]["storage"]["traces"] in backends
    assert _config(JAEGER_CONFIG)["exporters"]["jaeger_storage_exporter"]["trace_storage"] in backends
    smaller = _config(JAEGER_CONFIG, {"JAEGER_MAX_TRACES": "200"})["extensions"]["jaeger_storage"]
    assert smaller["backends"] == {name: {"memory": {"max_traces": 200}} for name in backends}


@pytest.mark.parametrize(
    ("service", "config"), [(COLLECTOR, COLLECTOR_CONFIG), (JAEGER, JAEGER_CONFIG)], ids=[COLLECTOR, JAEGER]
)
def test_config_file_is_mounted_where_the_command_reads_it(service: str, config: Path) -> None:
    spec = _service(service)
    source, mode = _mounts(spec)[_command_config_path(spec)]
    assert (REPO / source).resolve() == config
    assert mode == "ro"


# --- the real tool -----------------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose is not installed")
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
