#!/usr/bin/env python3
"""What a schema validator cannot see in deploy/ and the Dockerfile: that the pieces agree.

Subcommands (run from the repository's root, by run.sh):
  build-commands      print the RUN commands of the Dockerfile's `build` stage, one per line
  extract-config DIR  write the ConfigMap's files (banyan.toml, routing.toml) into DIR
  consistency         check that the manifests, the configuration and the Dockerfile agree

Each problem is printed as `file: message`; the exit code is 1 when there is one.
"""

import pathlib
import re
import shlex
import sys
import tomllib

import yaml

DEPLOY = pathlib.Path("deploy")
DOCKERFILE = pathlib.Path("Dockerfile")


def dockerfile_stages():
    """The Dockerfile's instructions per stage name: [(instruction, arguments)], continuations joined."""
    stages, current = {}, None
    text = DOCKERFILE.read_text()
    logical = re.sub(r"\\\n", " ", text)
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, arguments = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            words = arguments.split()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else words[0]
            current = stages.setdefault(name, [])
            current.append(("FROM", words[0]))
        elif current is not None:
            current.append((instruction, arguments.strip()))
    return stages


def build_commands():
    stages = dockerfile_stages()
    if "build" not in stages:
        sys.exit(f"{DOCKERFILE}: no stage named `build`")
    for instruction, arguments in stages["build"]:
        if instruction == "RUN":
            print(arguments)


def cargo_words(command):
    """The words of a `cargo build` command, after any leading `NAME=value` environment; None for
    any other command."""
    words = shlex.split(command)
    while words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
        words.pop(0)
    return words if words[:2] == ["cargo", "build"] else None


def configmap():
    document = yaml.safe_load((DEPLOY / "configmap.yaml").read_text())
    return document["data"]


def extract_config(directory):
    out = pathlib.Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in configmap().items():
        (out / name).write_text(text)


def seconds(duration):
    """A humantime duration of one unit, as the configuration writes them ("10s", "2m", "500ms")."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", duration)
    if not match:
        raise ValueError(f"cannot read the duration {duration!r}")
    value, unit = int(match.group(1)), match.group(2)
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def consistency():
    problems = []

    def problem(path, message):
        problems.append(f"{path}: {message}")

    # Every manifest is applied, and the kustomization names no missing file.
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    present = {p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml"}
    for name in sorted(present - listed):
        problem(DEPLOY / "kustomization.yaml", f"{name} is not in `resources`")
    for name in sorted(listed - present):
        problem(DEPLOY / "kustomization.yaml", f"`resources` names {name}, which does not exist")

    config = tomllib.loads(configmap()["banyan.toml"])
    server = config.get("server", {})
    deployment = yaml.safe_load((DEPLOY / "deployment.yaml").read_text())
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    where = DEPLOY / "deployment.yaml"

    # The port the container declares is the one Banyan listens on.
    listen_port = int(server.get("listen", "127.0.0.1:4000").rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    if ports.get("http") != listen_port:
        problem(where, f"containerPort `http` is {ports.get('http')}, server.listen's port is {listen_port}")
    if not server.get("listen", "").startswith("0.0.0.0:") and not server.get("listen", "").startswith("[::]:"):
        problem(DEPLOY / "configmap.yaml", "server.listen must be a wildcard address in a pod")

    # Probes: readiness on /readyz (it turns 503 first on SIGTERM), liveness on /healthz (a
    # backend outage must not restart pods).
    if container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
        problem(where, "the readiness probe must ask /readyz")
    if container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
        problem(where, "the liveness probe must ask /healthz")

    # The drain fits: the pre-stop delay outlasts the readiness probe's failure, and the kubelet
    # waits for the whole drain before SIGKILL.
    delay = seconds(server.get("shutdown_delay", "0s"))
    grace = seconds(server.get("shutdown_grace", "10s"))
    readiness = container["readinessProbe"]
    noticed = readiness.get("periodSeconds", 10) * readiness.get("failureThreshold", 3)
    if delay < noticed:
        problem(
            DEPLOY / "configmap.yaml",
            f"server.shutdown_delay ({delay:g}s) is shorter than the readiness probe needs to fail ({noticed}s)",
        )
    termination = pod.get("terminationGracePeriodSeconds", 30)
    if termination <= delay + grace:
        problem(
            where,
            f"terminationGracePeriodSeconds ({termination}) must exceed shutdown_delay + shutdown_grace ({delay + grace:g}s)",
        )

    # The configuration the pod reads is the ConfigMap's, mounted where the arguments say.
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    config_path = container["args"][container["args"].index("--config") + 1]
    if not config_path.startswith(mounts.get("config", "<none>") + "/"):
        problem(where, f"--config {config_path} is not in the ConfigMap's mount ({mounts.get('config')})")
    routing = config.get("migration", {}).get("routing_table")
    if routing and pathlib.PurePosixPath(routing).name not in configmap():
        problem(DEPLOY / "configmap.yaml", f"migration.routing_table {routing} is not one of its files")

    # The image's runtime stage runs as non-root and ships what the configuration points at.
    stages = dockerfile_stages()
    runtime = [s for s in stages if s != "build"]
    if not runtime:
        problem(DOCKERFILE, "no runtime stage")
    else:
        instructions = stages[runtime[-1]]
        users = [a for i, a in instructions if i == "USER"]
        if not users or users[-1].split(":")[0] in ("root", "0"):
            problem(DOCKERFILE, "the runtime stage must run as a non-root USER")
        copied = [shlex.split(a)[-1] for i, a in instructions if i == "COPY"]
        # The binary copied out of the build stage is the one its cargo command builds.
        builds = [w for w in (cargo_words(a) for i, a in stages.get("build", []) if i == "RUN") if w]
        profiles = [w[w.index("--profile") + 1] if "--profile" in w else "release" if "--release" in w else "debug"
                    for w in builds]
        binaries = [shlex.split(a)[-2] for i, a in instructions
                    if i == "COPY" and a.startswith("--from=build") and a.endswith("/usr/local/bin/banyan")]
        expected = [f"/src/target/{profile}/banyan" for profile in profiles]
        if not binaries or binaries[0] not in expected:
            problem(DOCKERFILE, f"the runtime stage copies {binaries[:1] or 'no binary'}, not what the build stage builds ({expected})")
        for key, path in (("persisted.manifest", config.get("persisted", {}).get("manifest")),
                          ("admin.contract", config.get("admin", {}).get("contract"))):
            if path and not any(path == c or path.startswith(c.rstrip("/") + "/") for c in copied):
                problem(DEPLOY / "configmap.yaml", f"{key} {path} is not in the image")
    # The build stage uses at least the toolchain the workspace declares.
    declared = tomllib.loads(pathlib.Path("Cargo.toml").read_text())["workspace"]["package"]["rust-version"]
    image = next((a for i, a in stages.get("build", []) if i == "FROM"), "")
    match = re.search(r"rust:(\d+)\.(\d+)", image)
    if not match or tuple(map(int, match.groups())) < tuple(map(int, declared.split(".")[:2])):
        problem(DOCKERFILE, f"the build image {image!r} is older than rust-version {declared}")

    # The autoscaler's metrics are series Banyan exports, and the adapter serves each of them.
    hpa = yaml.safe_load((DEPLOY / "hpa.yaml").read_text())
    metric_names = [m["pods"]["metric"]["name"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    exported = pathlib.Path("gateway/src/metrics.rs").read_text()
    adapter = yaml.safe_load(
        yaml.safe_load((DEPLOY / "prometheus-adapter/configmap.yaml").read_text())["data"]["config.yaml"]
    )
    served = {rule["name"]["as"] for rule in adapter["rules"]}
    for name in metric_names:
        if f'"{name}"' not in exported:
            problem(DEPLOY / "hpa.yaml", f"{name} is not a series gateway/src/metrics.rs registers")
        if name not in served:
            problem(DEPLOY / "prometheus-adapter/configmap.yaml", f"no rule serves {name}")
    if hpa["spec"]["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
        problem(DEPLOY / "hpa.yaml", "scaleTargetRef does not name the Deployment")

    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        sys.exit(1)
    print("deploy/ and the Dockerfile agree")


def main():
    command = sys.argv[1:2]
    if command == ["build-commands"]:
        build_commands()
    elif command == ["extract-config"] and len(sys.argv) == 3:
        extract_config(sys.argv[2])
    elif command == ["consistency"]:
        consistency()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
