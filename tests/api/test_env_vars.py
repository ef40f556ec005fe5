"""Every environment variable the binaries read is wired into the deployment artefacts and documented.

The source of truth is `--help` of bin/producer-api and bin/dispatcher (their config tables). Each variable must
appear in:
  - the Kubernetes base: the service's ConfigMap (deploy/k8s/base/configmap.yaml) or the Secret (secret.yaml);
  - the Helm chart's values.yaml: <service>.config or secret.env;
  - README.md's configuration table (a row starting with | `NAME` |).
And, the other way round, nothing is configured that the binaries do not read (a misspelt key would be silently
ignored): ConfigMap/values keys and the compose file's environment are subsets of --help (plus KAFKA_*
librdkafka properties). Dispatcher checks are skipped while bin/dispatcher does not exist.
"""

import os
import re
import subprocess

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("HOOKD_BIN", os.path.join(REPO, "bin"))
if not os.path.isabs(BIN):
    BIN = os.path.join(REPO, BIN)
SERVICES = ["producer-api", "dispatcher"]
VALUES_KEY = {"producer-api": "producerApi", "dispatcher": "dispatcher"}
NAME = re.compile(r"^  ([A-Z][A-Z0-9_]*)\s")


def help_vars(service):
    path = os.path.join(BIN, service)
    if not os.access(path, os.X_OK):
        if service == "dispatcher":
            pytest.skip("bin/dispatcher is not built yet")
        pytest.fail(f"{path} is missing: run make first")
    out = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10, check=True).stdout
    section = out.split("Configuration (environment variables):", 1)
    assert len(section) == 2, f"{service} --help has no 'Configuration (environment variables):' section"
    names = [m.group(1) for line in section[1].splitlines() if (m := NAME.match(line))]
    assert len(names) >= 5, f"{service} --help lists too few variables: {names}"
    return names


def load_yaml_docs(*parts):
    with open(os.path.join(REPO, *parts)) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def k8s_env(service):
    """(ConfigMap keys, Secret keys) the service's Deployment gets through envFrom."""
    configmaps = {d["metadata"]["name"]: d for d in load_yaml_docs("deploy", "k8s", "base", "configmap.yaml")}
    (secret,) = load_yaml_docs("deploy", "k8s", "base", "secret.yaml")
    cm = configmaps[f"hookd-{service}"]
    return set(cm.get("data", {})), set(secret.get("stringData", {})) | set(secret.get("data", {}) or {})


def chart_values():
    (values,) = load_yaml_docs("deploy", "helm", "hookd", "values.yaml")
    return values


def readme_table():
    path = os.path.join(REPO, "README.md")
    text = open(path).read() if os.path.exists(path) else ""
    has_section = re.search(r"^#+\s+Configuration\b", text, re.M) is not None
    return has_section, set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|", text, re.M))


def extra_names(names, allowed):
    """Names that are neither read by the binary nor librdkafka passthrough properties (KAFKA_*)."""
    return sorted(n for n in names if n not in allowed and not n.startswith("KAFKA_"))


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_in_configmap_or_secret(service):
    names = help_vars(service)
    data, secret = k8s_env(service)
    missing = [n for n in names if n not in data | secret]
    assert not missing, f"{service}: not in deploy/k8s/base ConfigMap hookd-{service} or Secret hookd: {missing}"
    assert "REDIS_URL" in secret and "REDIS_URL" not in data, "REDIS_URL belongs in the Secret (it may hold a password)"
    assert not extra_names(data, set(names)), f"{service}: ConfigMap keys the binary does not read: {extra_names(data, set(names))}"


@pytest.mark.parametrize("service", SERVICES)
def test_every_variable_in_chart_values(service):
    names = help_vars(service)
    values = chart_values()
    config = set(values[VALUES_KEY[service]]["config"])
    secret = set(values["secret"]["env"])
    missing = [n for n in names if n not in config | secret]
    assert not missing, f"{service}: not in values.yaml {VALUES_KEY[service]}.config or secret.env: {missing}"
    assert "REDIS_URL" in secret and "REDIS_URL" not in config
    assert not extra_names(config, set(names)), f"{service}: values keys the binary does not read: {extra_names(config, set(names))}"


@pytest.mark.parametrize("service", SERVICES)
def test_compose_sets_only_variables_the_binary_reads(service):
    names = set(help_vars(service))
    (compose,) = load_yaml_docs("deploy", "docker-compose.yml")
    env = compose["services"][service].get("environment", {})
    assert not extra_names(env, names), f"compose {service}: {extra_names(env, names)} are not read by {service}"


def _readme_check(service):
    names = help_vars(service)
    _, documented = readme_table()
    missing = [n for n in names if n not in documented]
    assert not missing, f"README.md configuration table lacks {service} variables: {missing}"


_has_config_section, _ = readme_table()


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.xfail(not _has_config_section, reason="README.md has no Configuration section yet", strict=False)
def test_every_variable_in_readme_table(service):
    _readme_check(service)
