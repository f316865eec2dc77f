"""Installs what the harness needs and the repository must not hold: nginx and wrk from Debian,
and, for the peer comparison, LiteLLM's proxy, Portkey's gateway and py-spy in scratch folders
under PEERS_DIR (outside the repository), reused when already there. Says what it does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

PEERS_DIR = Path(os.environ.get("BENCH_PEERS_DIR", "/tmp/crossroads-bench-peers"))
LITELLM_VENV = PEERS_DIR / "litellm"
TOOLS_VENV = PEERS_DIR / "tools"
PORTKEY_DIR = PEERS_DIR / "portkey"

# The peers and tools, pinned so that two runs compare the same programs (the versions of
# 2026-12-03's runs); a new version is a deliberate change here, and the stamps below carry the
# version, so changing it reinstalls.
LITELLM_VERSION = "1.108.7"
PORTKEY_VERSION = "1.15.2"
PYSPY_VERSION = "0.4.3"

# Streaming through Portkey fails with HTTP 500 "TypeError: immutable" on the @hono/node-server
# that npm resolves today; 1.13.8 works (see /work/shared/bench-notes.md).
HONO_NODE_SERVER = "1.13.8"

# Portkey listens on every interface; this preload makes every listen() bind 127.0.0.1.
_LOCALHOST_PRELOAD = """\
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (args[0] !== null && typeof args[0] === 'object') {
    args[0] = { ...args[0], host: '127.0.0.1' };
  } else if (typeof args[0] === 'number' || /^\\d+$/.test(String(args[0]))) {
    if (typeof args[1] === 'string') args[1] = '127.0.0.1';
    else args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
"""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def _run(argv: list[str], **kwargs: object) -> None:
    print("    $ " + " ".join(argv), flush=True)
    subprocess.run(argv, check=True, **kwargs)  # type: ignore[call-overload]


def ensure_debian_tools() -> None:
    """nginx and wrk from apt when missing. Raises CalledProcessError if apt fails, and
    RuntimeError when not root (then install them yourself)."""
    missing = [name for name in ("nginx", "wrk") if not _which(name)]
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"missing {', '.join(missing)}: install them (apt-get install ...)")
    packages = []
    if "nginx" in missing:
        packages.append("nginx-light" if _apt_has("nginx-light") else "nginx")
    if "wrk" in missing:
        packages.append("wrk")
    say(f"Installing {' '.join(packages)} from Debian (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], env=env)
    _run(["apt-get", "install", "-y", "-qq", *packages], env=env)


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for d in ("/usr/sbin", "/sbin") if (p := Path(d) / name).exists()), None
    )


def _apt_has(package: str) -> bool:
    out = subprocess.run(
        ["apt-cache", "show", package], capture_output=True, text=True, check=False
    )
    return out.returncode == 0 and "Package:" in out.stdout


def _venv_with(venv: Path, spec: str, marker: str) -> Path:
    stamp = venv / f".installed-{marker}"
    if stamp.exists():
        return venv
    say(f"Installing {spec} into the scratch venv {venv} (first time only; can take minutes)")
    if not (venv / "bin/python").exists():
        # The base interpreter, not the project's venv, so nothing leaks into .venv.
        base = getattr(sys, "_base_executable", sys.executable)
        _run([base, "-m", "venv", str(venv)])
    _run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--progress-bar", "off", spec])
    stamp.touch()
    return venv


def ensure_litellm() -> Path:
    """The `litellm` executable of the scratch venv, installed with `pip install
    'litellm[proxy]'` the first time."""
    spec = f"litellm[proxy]=={LITELLM_VERSION}"
    return _venv_with(LITELLM_VENV, spec, f"litellm-{LITELLM_VERSION}") / "bin/litellm"


def ensure_pyspy() -> Path:
    spec = f"py-spy=={PYSPY_VERSION}"
    return _venv_with(TOOLS_VENV, spec, f"py-spy-{PYSPY_VERSION}") / "bin/py-spy"


def ensure_portkey() -> tuple[Path, Path]:
    """Installs @portkey-ai/gateway with npm (the @hono/node-server override pinned) the first
    time. Returns (its start-server.js, the 127.0.0.1 preload)."""
    entry = PORTKEY_DIR / "node_modules/@portkey-ai/gateway/build/start-server.js"
    preload = PORTKEY_DIR / "listen-localhost.js"
    stamp = PORTKEY_DIR / f".installed-{PORTKEY_VERSION}"
    if not stamp.exists():
        if not _which("npm"):
            raise RuntimeError("npm is needed for the Portkey comparison (apt-get install npm)")
        say(f"Installing @portkey-ai/gateway with npm into {PORTKEY_DIR} (first time only)")
        PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
        package = {
            "name": "crossroads-bench-portkey",
            "private": True,
            "dependencies": {"@portkey-ai/gateway": PORTKEY_VERSION},
            "overrides": {"@hono/node-server": HONO_NODE_SERVER},
        }
        (PORTKEY_DIR / "package.json").write_text(json.dumps(package, indent=2) + "\n")
        _run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PORTKEY_DIR)
        if not entry.exists():
            raise RuntimeError(f"npm installed Portkey but {entry} is missing")
        stamp.touch()
    preload.write_text(_LOCALHOST_PRELOAD)
    return entry, preload


def versions() -> dict[str, str]:
    """Versions of the tools and peers in use, for the results file."""
    found: dict[str, str] = {}
    nginx = _which("nginx")
    if nginx:
        out = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
        found["nginx"] = out.stderr.strip().removeprefix("nginx version: ")
    wrk = _which("wrk")
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        found["wrk"] = (out.stdout or out.stderr).split("Copyright")[0].strip()
    pip = LITELLM_VENV / "bin/python"
    if (LITELLM_VENV / f".installed-litellm-{LITELLM_VERSION}").exists():
        out = subprocess.run(
            [str(pip), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            check=False,
        )
        found["litellm"] = out.stdout.strip()
    pkg = PORTKEY_DIR / "node_modules/@portkey-ai/gateway/package.json"
    if pkg.exists():
        found["portkey"] = json.loads(pkg.read_text()).get("version", "?")
        hono = PORTKEY_DIR / "node_modules/@hono/node-server/package.json"
        if hono.exists():
            found["@hono/node-server"] = json.loads(hono.read_text()).get("version", "?")
    return found
