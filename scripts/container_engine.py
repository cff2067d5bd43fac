"""The Docker engine of the container proof (scripts/containers.py): the one that answers, or one
started here, and afterwards the host as it was.

An engine started here is quiet and private. `--iptables=false --ip-forward=false --ip-masq=false`
leave the host's firewall and kernel settings alone (published ports still work, through
docker-proxy; containers cannot reach beyond the host, which nothing here needs: image builds use
the host's network). It listens on a socket of its own, not /var/run/docker.sock, attaches
containers to a bridge of its own (`tenantry0`, made here), and puts their cgroups under
`tenantry-containers`, so it cannot collide with another engine on the machine. Its data root lives
in the cache folder, so the images it built are there for the next run; everything else it leaves
(the bridge, the network namespace mount, cgroup folders, containerd's socket folder, its run
folder) is removed when it stops, and also at the next start if a run was killed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

RUN_DIR = Path("/run/tenantry-containers")
BRIDGE = "tenantry0"
CGROUP_PARENT = "tenantry-containers"
CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTAINERD_RUN = Path("/run/containerd")  # containerd 1.6 puts its shims' sockets in ./s
# The first of these that no route or address of the host overlaps becomes the bridge's network.
BRIDGE_NETWORKS = ("172.31.250.0/24", "172.30.250.0/24", "192.168.250.0/24", "10.250.250.0/24")
# What the proof needs from Debian: the engine (dockerd, docker, containerd, runc, docker-proxy),
# Compose v1 (bookworm has no Compose v2 package), debootstrap for the base image, ip for the bridge.
PACKAGES = {"dockerd": "docker.io", "docker": "docker.io", "debootstrap": "debootstrap", "ip": "iproute2"}
COMPOSE_PACKAGE = "docker-compose"


class EngineUnavailable(Exception):
    """No engine answers and none can be started here: the proof is skipped, loudly."""


class EngineError(Exception):
    """An engine was expected to start (or stop) and did not: the proof fails."""


def _quiet(
    command: list[str], env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def docker_answers(env: dict[str, str]) -> bool:
    """True when `docker info` reaches an engine with this environment (DOCKER_HOST or the default)."""
    if not shutil.which("docker"):
        return False
    try:
        return _quiet(["docker", "info", "--format", "{{.ServerVersion}}"], env, timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def compose_command(env: dict[str, str]) -> list[str] | None:
    """`docker compose` (v2) when the plugin is installed, else `docker-compose` (v1), else None."""
    if shutil.which("docker") and _quiet(["docker", "compose", "version"], env).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def missing_packages(need_daemon: bool, need_compose: bool) -> list[str]:
    packages = set()
    for tool, package in PACKAGES.items():
        if (need_daemon or tool in {"docker", "debootstrap"}) and not shutil.which(tool):
            packages.add(package)
    if need_compose:
        packages.add(COMPOSE_PACKAGE)
    return sorted(packages)


def install_packages(packages: list[str], log: Path) -> str | None:
    """apt-get install `packages`; None when done, else why not (one line)."""
    if os.geteuid() != 0:
        return "not root (installing docker.io needs root)"
    if not shutil.which("apt-get"):
        return "no apt-get on this machine"
    # Package scripts must not start services here (this host may run no init system, and a
    # default dockerd would rewrite the firewall): Debian's policy-rc.d says "not now" (101).
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = not policy.exists()
    if made_policy:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        with log.open("w") as out:
            for command in (
                ["apt-get", "update", "-q"],
                ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
            ):
                if subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=900).returncode:
                    tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                    return f"`{' '.join(command)}` failed: " + " | ".join(tail)
    except subprocess.TimeoutExpired:
        return "apt-get took longer than 15 minutes"
    finally:
        if made_policy:
            policy.unlink(missing_ok=True)
    return None


@dataclass
class Daemon:
    """A dockerd started by this run, and what must be removed when it stops."""

    process: subprocess.Popen[bytes]
    data_root: Path
    log: Path
    containerd_run_existed: bool
    cgroups_before: set[Path] = field(default_factory=set)

    @property
    def socket(self) -> Path:
        return RUN_DIR / "docker.sock"

    def stop(self) -> list[str]:
        """Stop the daemon and clean up after it; returns what could not be cleaned (empty: all)."""
        problems = []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=45)
            except subprocess.TimeoutExpired:
                problems.append(f"dockerd (pid {self.process.pid}) ignored SIGTERM for 45 s: killed")
                self.process.kill()
                self.process.wait(timeout=15)
        problems += clean_host(self.data_root, self.containerd_run_existed, self.cgroups_before)
        return problems


def _our_processes() -> list[int]:
    """containerd, its shims and docker-proxy of our dockerd: their command lines name our run folder."""
    pids = []
    marker = str(RUN_DIR).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().startswith(("containerd", "docker", "runc")) and marker in (
                entry / "cmdline"
            ).read_bytes():
                pids.append(int(entry.name))
    return pids


def _containerd_running() -> bool:
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().startswith("containerd"):
                return True
    return False


def _mounts_under(*roots: Path) -> list[str]:
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            # Field 5 is the mount point, with space, tab, newline and backslash octal-escaped.
            point = line.split()[4].encode().decode("unicode_escape")
            if any(point == str(root) or point.startswith(f"{root}/") for root in roots):
                found.append(point)
    return sorted(set(found), key=len, reverse=True)


def _cgroup_dirs(name: str) -> set[Path]:
    found = set()
    with contextlib.suppress(OSError):
        for controller in CGROUP_ROOT.iterdir():
            if (controller / name).is_dir():
                found.add(controller / name)
    return found


def _remove_empty_tree(top: Path) -> bool:
    """rmdir `top` and its subfolders, deepest first (cgroup folders can only be rmdir'ed)."""
    if not top.is_dir():
        return True
    for sub in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            sub.rmdir()
    try:
        top.rmdir()
    except OSError:
        return False
    return True


def clean_host(data_root: Path, containerd_run_existed: bool, cgroups_before: set[Path]) -> list[str]:
    """Remove what a stopped dockerd of ours leaves on the host. Returns what stayed."""
    problems = []
    for pid in _our_processes():  # only when dockerd died without stopping its containerd
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            problems.append(f"killed a leftover process of our engine (pid {pid})")
    for point in _mounts_under(RUN_DIR, data_root):
        if _quiet(["umount", point]).returncode and _quiet(["umount", "-l", point]).returncode:
            problems.append(f"could not unmount {point}")
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    if RUN_DIR.exists():
        problems.append(f"could not remove {RUN_DIR}")
    if Path(f"/sys/class/net/{BRIDGE}").exists() and _quiet(["ip", "link", "delete", BRIDGE]).returncode:
        problems.append(f"could not delete the bridge {BRIDGE}")
    for name in (CGROUP_PARENT, "docker"):
        for folder in _cgroup_dirs(name) - cgroups_before:
            if not _remove_empty_tree(folder):
                problems.append(f"could not remove the cgroup folder {folder}")
    if not containerd_run_existed:
        _remove_empty_tree(CONTAINERD_RUN)
    return problems


def _overlaps_host(network: ipaddress.IPv4Network) -> bool:
    listing = (
        _quiet(["ip", "-4", "-o", "route", "show", "table", "all"]).stdout + _quiet(["ip", "-4", "-o", "addr"]).stdout
    )
    for word in listing.split():
        with contextlib.suppress(ValueError):
            other = ipaddress.ip_network(word, strict=False)
            if other.prefixlen > 0 and network.overlaps(other):
                return True
    return False


def _make_bridge() -> str:
    for candidate in BRIDGE_NETWORKS:
        network = ipaddress.ip_network(candidate)
        if _overlaps_host(network):
            continue
        gateway = f"{next(network.hosts())}/{network.prefixlen}"
        for command in (
            ["ip", "link", "add", "name", BRIDGE, "type", "bridge"],
            ["ip", "address", "add", gateway, "dev", BRIDGE],
            ["ip", "link", "set", BRIDGE, "up"],
        ):
            result = _quiet(command)
            if result.returncode:
                raise EngineError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
        return gateway
    raise EngineError(f"every network for the bridge overlaps a route of this host: {', '.join(BRIDGE_NETWORKS)}")


def clean_leftovers(data_root: Path) -> list[str]:
    """Stop and clean up after an engine of an earlier run that was killed before it could."""
    notes = []
    with contextlib.suppress(OSError, ValueError):
        pid = int((RUN_DIR / "dockerd.pid").read_text().strip())
        if str(RUN_DIR).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)
            notes.append(f"stopped the engine an earlier run left running (pid {pid})")
            for _ in range(45):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(1)
            else:
                os.kill(pid, signal.SIGKILL)
    if RUN_DIR.exists() or Path(f"/sys/class/net/{BRIDGE}").exists() or _cgroup_dirs(CGROUP_PARENT):
        notes.append("removed what an earlier run's engine left behind")
        # `docker` cgroups are not known to be ours, so they stay; /run/containerd goes if it is empty
        # and no containerd runs on the machine (ours made it, and a killed run could not remove it).
        notes += clean_host(
            data_root, containerd_run_existed=_containerd_running(), cgroups_before=_cgroup_dirs("docker")
        )
    return notes


def start_daemon(data_root: Path, log: Path) -> Daemon:
    """Start a quiet, private dockerd (see the module's docstring) and wait until it answers."""
    if os.geteuid() != 0:
        raise EngineUnavailable("not root: starting a Docker engine needs root")
    for note in clean_leftovers(data_root):
        print(f"   {note}", flush=True)
    data_root.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    containerd_run_existed = CONTAINERD_RUN.exists()
    cgroups_before = _cgroup_dirs("docker") | _cgroup_dirs(CGROUP_PARENT)
    RUN_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    gateway = _make_bridge()
    command = [
        "dockerd",
        f"--host=unix://{RUN_DIR / 'docker.sock'}",
        f"--data-root={data_root}",
        f"--exec-root={RUN_DIR / 'exec'}",
        f"--pidfile={RUN_DIR / 'dockerd.pid'}",
        "--storage-driver=overlay2",
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        f"--bridge={BRIDGE}",
        f"--cgroup-parent={CGROUP_PARENT}",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    daemon = Daemon(process, data_root, log, containerd_run_existed, cgroups_before)
    env = {**os.environ, "DOCKER_HOST": f"unix://{daemon.socket}"}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        if docker_answers(env):
            print(f"   dockerd (pid {process.pid}) answers on {daemon.socket}; bridge {BRIDGE} {gateway}", flush=True)
            return daemon
        time.sleep(1)
    tail = log.read_text(errors="replace").strip().splitlines()[-15:]
    problems = daemon.stop()
    raise EngineError("dockerd did not answer within 90 s:\n" + "\n".join(tail + problems))
