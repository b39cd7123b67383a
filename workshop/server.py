"""Drives the real ComfyUI ``main.py`` in a subprocess: start with the pack, queue API graphs, wait, stop.

Used by the server and browser test tiers and by the demo job, so all three run ComfyUI the same way.
The ComfyUI tree is never written to: models, outputs, user settings and the database live under a base
directory (``--base-directory`` plus an in-memory sqlite database).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from .env import COMFYUI, PACK_DIR_NAME, REPO

log = logging.getLogger(__name__)

MODEL_FOLDERS = ("checkpoints", "vae", "loras", "clip_vision", "controlnet", "animatediff_models",
                 "animatediff_motion_lora", "dreampose", "densepose")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LEGACY_DIR_NAME = "animapose"  # the link name provisioning once used


def prepare_base_dir(base: Path, files: dict[str, list[tuple[str, Path]]] | None = None) -> Path:
    """A ComfyUI base directory with the pack linked into custom_nodes/ and the given files placed under their
    names (``{folder relative to the base, e.g. "models/checkpoints" or "input": [(name, source path)]}``): model
    files are linked, input files are copied, because the pack refuses links that lead out of the input folder."""
    for d in ("custom_nodes", "input", "output", "temp", "user/default"):
        (base / d).mkdir(parents=True, exist_ok=True)
    for d in MODEL_FOLDERS:
        (base / "models" / d).mkdir(parents=True, exist_ok=True)
    link = base / "custom_nodes" / PACK_DIR_NAME
    for entry in (base / "custom_nodes").iterdir():
        # one name for the checkout: a link of the pack's earlier name (``animapose``) or any other link to this
        # checkout would make ComfyUI import the pack twice, under two names
        if entry.is_symlink() and entry.name != PACK_DIR_NAME and (entry.name == LEGACY_DIR_NAME
                                                                    or entry.resolve() == REPO):
            entry.unlink()
    if link.is_symlink() or link.exists():
        if link.resolve() != REPO:
            link.unlink()
    if not link.exists():
        link.symlink_to(REPO, target_is_directory=True)
    settings = base / "user" / "default" / "comfy.settings.json"
    if not settings.exists():
        # The first-run template dialog would cover the canvas in browser runs.
        settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    for folder, entries in (files or {}).items():
        copy = folder == "input"
        for name, src in entries:
            src, dest = Path(src).resolve(), base / folder / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.is_symlink() or dest.exists():
                if (_same_tree(dest, src) if copy else dest.resolve() == src):
                    continue
                if dest.is_dir() and not dest.is_symlink():
                    shutil.rmtree(dest)
                else:
                    dest.unlink()
            if not copy:
                dest.symlink_to(src, target_is_directory=src.is_dir())
            elif src.is_dir():
                shutil.copytree(src, dest)
            else:
                shutil.copy2(src, dest)
    return base


def _same_tree(dest: Path, src: Path) -> bool:
    """Whether ``dest`` is a plain copy of ``src`` (same names, same bytes)."""
    import filecmp

    if dest.is_symlink() or dest.is_dir() != src.is_dir():
        return False
    if not src.is_dir():
        return filecmp.cmp(dest, src, shallow=False)
    names = sorted(p.name for p in src.iterdir())
    return names == sorted(p.name for p in dest.iterdir()) and all(_same_tree(dest / n, src / n) for n in names)


class ExecutionFailed(RuntimeError):
    def __init__(self, message: str, details: dict):
        super().__init__(message)
        self.details = details


# Test servers compute tiny graphs while the test process (and, in the browser tier, Chromium) also runs: with a
# second torch thread, their OpenMP workers wait on each other whenever the other core is busy (measured on 2 cores:
# the server tier's workflow runs took 149 s with one thread, 507 s with two). Every test server uses the same count,
# so that byte-for-byte comparisons between servers hold. Override with ANIMAPOSE_SERVER_THREADS.
TEST_SERVER_THREADS = int(os.environ.get("ANIMAPOSE_SERVER_THREADS", "1"))


@dataclass
class ComfyServer:
    base: Path
    port: int = field(default_factory=free_port)
    python: str = sys.executable
    extra_args: tuple[str, ...] = ()
    threads: int | None = None  # torch/OpenMP threads of the server process (None: torch's default)
    cpu: bool = True  # False: ComfyUI picks its device (the GPUs the process may see)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> "ComfyServer":
        self.log_path = self.base / f"comfyui-{self.port}.log"
        cmd = [self.python, "main.py", *(["--cpu"] if self.cpu else []), "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--base-directory", str(self.base),
               "--database-url", "sqlite:///:memory:", "--disable-api-nodes", *self.extra_args]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.threads:
            env.update(OMP_NUM_THREADS=str(self.threads), MKL_NUM_THREADS=str(self.threads))
        logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=COMFYUI, stdout=logf, stderr=subprocess.STDOUT, env=env,
                                     preexec_fn=_end_with_parent)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}")
            try:
                self.get("/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout}s:\n{self.log_text()[-4000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def pack_import_error(self) -> str | None:
        """ComfyUI only logs a pack that fails to import; this turns the log line into something to assert on."""
        text = self.log_text()
        for line in text.splitlines():
            if PACK_DIR_NAME in line and any(m in line for m in ("IMPORT FAILED", "Cannot import", "comfy_entrypoint")):
                return text
        return None

    # -- HTTP -----------------------------------------------------------------------------------------------
    def get(self, path: str, timeout: float = 30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def post(self, path: str, payload: dict, timeout: float = 30):
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                body = r.read()
            return json.loads(body) if body else None
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")
            raise ExecutionFailed(f"POST {path} -> HTTP {e.code}: {body}", _maybe_json(body)) from None

    def object_info(self) -> dict:
        return self.get("/object_info")

    def queue(self, prompt: dict, client_id: str | None = None) -> str:
        res = self.post("/prompt", {"prompt": prompt, "client_id": client_id or uuid.uuid4().hex})
        return res["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 600) -> dict:
        """History entry of a finished prompt; raises ExecutionFailed with ComfyUI's own error message."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.alive():
                raise RuntimeError(f"ComfyUI died while running {prompt_id}:\n{self.log_text()[-4000:]}")
            hist = self.get(f"/history/{urllib.parse.quote(prompt_id)}")
            entry = (hist or {}).get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if status.get("status_str") == "error":
                    msg = _execution_error(status)
                    raise ExecutionFailed(msg, entry)
                return entry
            time.sleep(0.25)
        raise TimeoutError(f"prompt {prompt_id} did not finish in {timeout}s")

    def run(self, prompt: dict, timeout: float = 600) -> dict:
        return self.wait(self.queue(prompt), timeout=timeout)

    def interrupt(self) -> None:
        self.post("/interrupt", {})

    def output_files(self, entry: dict) -> list[Path]:
        """Every file a finished prompt wrote, as paths under the base directory."""
        files = []
        for node_out in entry.get("outputs", {}).values():
            for kind in ("images", "gifs", "videos", "animated"):
                for item in node_out.get(kind, []) or []:
                    if isinstance(item, dict) and "filename" in item:
                        files.append(self.base / item.get("type", "output") / item.get("subfolder", "") / item["filename"])
        return files


def _end_with_parent() -> None:
    """In the server's process before ComfyUI starts: the kernel ends it when the process that started it dies, so
    a killed test run or sweep worker leaves no ComfyUI running (Linux; elsewhere nothing happens)."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _maybe_json(body: str):
    try:
        return json.loads(body)
    except ValueError:
        return {"raw": body}


def _execution_error(status: dict) -> str:
    for kind, data in status.get("messages", []):
        if kind == "execution_error":
            return f"{data.get('node_type')} (node {data.get('node_id')}): {data.get('exception_message', '').strip()}"
        if kind == "execution_interrupted":
            return "execution interrupted"
    return f"execution failed: {status}"


def cached_nodes(entry) -> set[str]:
    return {n for kind, data in entry["status"]["messages"] if kind == "execution_cached" for n in data["nodes"]}


class Listener(threading.Thread):
    """The frontend's view of a run: ComfyUI's websocket messages for one client id, as (kind, data) pairs; the
    binary TEXT events (a node's progress text) become ("text", (node_id, text))."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.url = server.url.replace("http", "ws", 1)
        self.client_id = uuid.uuid4().hex
        self.messages: list[tuple[str, object]] = []
        self.ready = threading.Event()
        self.stopped = threading.Event()

    def run(self):
        asyncio.run(self._listen())

    async def _listen(self):
        import aiohttp

        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{self.url}/ws?clientId={self.client_id}") as ws:
                self.ready.set()
                while not self.stopped.is_set():
                    try:
                        msg = await ws.receive(timeout=0.5)
                    except asyncio.TimeoutError:
                        continue
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        data = json.loads(msg.data)
                        self.messages.append((data["type"], data.get("data")))
                    elif msg.type == aiohttp.WSMsgType.BINARY and struct.unpack(">I", msg.data[:4])[0] == 3:
                        (n,) = struct.unpack(">I", msg.data[4:8])
                        self.messages.append(("text", (msg.data[8:8 + n].decode(), msg.data[8 + n:].decode())))
                    elif msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break

    def texts(self, node: str) -> list[str]:
        return [text for kind, data in list(self.messages) if kind == "text" and data[0] == node for text in [data[1]]]

    def progress(self, node: str) -> list[tuple[int, int]]:
        return [(d["value"], d["max"]) for kind, d in list(self.messages) if kind == "progress" and d["node"] == node]

    def wait_for(self, predicate, timeout: float) -> None:
        deadline = time.time() + timeout
        while not predicate():
            if time.time() > deadline:
                raise TimeoutError(f"not seen within {timeout}s; messages: {self.messages[-20:]}")
            time.sleep(0.1)


def interrupt_training(server, prompt: dict, node: str, steps: int, start_timeout: float,
                       stop_timeout: float) -> Listener:
    """Queues a training prompt, waits until ``node``'s progress bar moves and it shows the loss (the run is under
    way), interrupts it and waits for ComfyUI to report the interruption; returns what the frontend saw."""
    listener = Listener(server)
    listener.start()
    try:
        if not listener.ready.wait(30):
            raise TimeoutError("the websocket did not connect")
        prompt_id = server.queue(prompt, client_id=listener.client_id)
        listener.wait_for(lambda: any(v >= 1 and m == steps for v, m in listener.progress(node))
                          and any("loss" in t for t in listener.texts(node)), timeout=start_timeout)
        server.interrupt()
        try:
            server.wait(prompt_id, timeout=stop_timeout)
        except ExecutionFailed as e:
            if "interrupted" not in str(e):
                raise
        else:
            raise AssertionError("the interrupted run completed")
    finally:
        listener.stopped.set()
        listener.join(10)
    return listener


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m comfyui_animapose.workshop.server",
                                 description="Prepares a ComfyUI base directory (provisioning's last step): the pack "
                                             f"linked in as custom_nodes/{PACK_DIR_NAME} (a stale link of another "
                                             "name removed), the model folders, first-run settings.")
    ap.add_argument("base", type=Path)
    print(prepare_base_dir(ap.parse_args().base))


if __name__ == "__main__":
    main()
