"""Starting the zoo's servers (tests/zoo/): Custom CRMs other people wrote from the docs, in real stacks.

Each server is started the way its README says, as a subprocess on a free port of 127.0.0.1, and is
ready once it prints its `listening on` line. A server whose runtime is missing (node_modules not
installed, no javac or Jackson) is reported with the reason, so that a test can skip saying why;
under CI=true, .ci/run installs all of them and nothing may skip.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ZOO = Path(__file__).resolve().parents[1] / "zoo"
JACKSON = [
    Path("/usr/share/java/jackson-databind.jar"),
    Path("/usr/share/java/jackson-core.jar"),
    Path("/usr/share/java/jackson-annotations.jar"),
]
_LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


@dataclass(frozen=True)
class ZooServer:
    name: str
    stack: str
    command: Callable[[], list[str]]  # the program and its fixed arguments, without port/key/bugs
    missing: Callable[[], str | None]  # why it cannot run here, or None

    def bugs(self) -> list[dict[str, Any]]:
        done = subprocess.run(
            [*self.command(), "--list-bugs"], capture_output=True, text=True, timeout=60, check=True
        )
        bugs: list[dict[str, Any]] = json.loads(done.stdout)
        return bugs


def _python(name: str) -> ZooServer:
    return ZooServer(
        name=name.removesuffix("_crm"),
        stack=name,
        command=lambda: [sys.executable, str(ZOO / f"{name}.py")],
        missing=lambda: None,
    )


def _node_missing(folder: str) -> Callable[[], str | None]:
    def missing() -> str | None:
        if shutil.which("node") is None:
            return "node is not installed (Debian: apt-get install nodejs)"
        if not (ZOO / folder / "node_modules" / "express").is_dir():
            return (
                f"the {folder} zoo server's packages are not installed (npm ci --prefix tests/zoo/{folder})"
            )
        return None

    return missing


def _java_missing() -> str | None:
    if shutil.which("javac") is None or shutil.which("java") is None:
        return "javac/java are not installed (Debian: apt-get install default-jdk-headless)"
    absent = [str(jar) for jar in JACKSON if not jar.exists()]
    if absent:
        return f"Jackson is not installed (Debian: apt-get install libjackson2-databind-java): {absent[0]}"
    return None


@functools.cache
def _compiled_spring() -> Path:
    out = Path(tempfile.mkdtemp(prefix="zoo-spring-"))
    classpath = ":".join(str(jar) for jar in JACKSON)
    subprocess.run(
        [
            "javac",
            "-nowarn",
            "-cp",
            classpath,
            "-d",
            str(out),
            str(ZOO / "spring_style" / "SpringStyleCrm.java"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return out


def _spring_command() -> list[str]:
    classpath = ":".join([str(_compiled_spring()), *(str(jar) for jar in JACKSON)])
    return ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", classpath, "SpringStyleCrm"]


SERVERS: dict[str, ZooServer] = {
    server.name: server
    for server in (
        _python("fastapi_crm"),
        ZooServer(
            name="express",
            stack="express",
            command=lambda: ["node", str(ZOO / "express" / "server.js")],
            missing=_node_missing("express"),
        ),
        _python("flask_crm"),
        _python("drf_crm"),
        ZooServer(name="spring", stack="spring_style", command=_spring_command, missing=_java_missing),
        _python("per_item_crm"),
        ZooServer(
            name="enginy_example",
            stack="enginy_example",
            command=lambda: ["node", str(ZOO / "enginy_example" / "server.js")],
            missing=_node_missing("enginy_example"),
        ),
    )
}


_STARTING = threading.Lock()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running(server: ZooServer, *bugs: str, key: str, wait_s: float = 60.0) -> Iterator[str]:
    """Start the server with these bugs switched on; yield its base URL; stop it afterwards.

    Raises RuntimeError when the server died while in use: its port may then have been taken by
    another server of the zoo, and whatever verdict came out of it judged that other server.
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGINY_")}
    # A free port is free only until someone binds it: servers started side by side (the zoo judges
    # several at once) are started one at a time, each holding the lock until it listens.
    with _STARTING:
        command = [*server.command(), "--port", str(free_port()), "--key", key]
        for bug in bugs:
            command += ["--bug", bug]
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        url = _await_listening(process, server, wait_s)
    try:
        yield url
        if process.poll() is not None:
            raise RuntimeError(
                f"The {server.name} zoo server ({', '.join(bugs) or 'as written'}) exited with "
                f"{process.returncode} while it was being judged."
            )
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def _await_listening(process: subprocess.Popen[str], server: ZooServer, wait_s: float) -> str:
    lines: list[str] = []
    stdout = process.stdout
    assert stdout is not None
    reader = threading.Thread(target=lambda: lines.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(wait_s)
    match = _LISTENING.search(lines[0]) if lines else None
    if match is None:
        process.kill()
        errors = process.stderr.read() if process.stderr is not None else ""
        raise RuntimeError(f"The {server.name} zoo server did not start: {lines[:1]!r} {errors[-500:]!r}")
    # Drain stdout and stderr so that a chatty server never blocks on a full pipe.
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            threading.Thread(target=stream.read, daemon=True).start()
    return match.group(1)
