#!/usr/bin/python3
"""Runs every ```sh block of docs/http-api.md, as written, in one bash session in a folder of its
own, and checks each block's output against the ```json block right after it (if any): the same
JSON values, one per line of output, where "*" in the document matches anything. The server the
first block starts is stopped at the end.

usage: http_api_doc.py DOC TANDEM_BIN"""
import json, os, re, shutil, signal, socket, subprocess, sys, tempfile, time

doc_path, tandem = sys.argv[1], os.path.abspath(sys.argv[2])
text = open(doc_path, encoding="utf-8").read()
blocks = re.findall(r"```(\w+)\n(.*?)```", text, re.S)

# (shell, expected JSON text or None)
steps = []
for i, (lang, body) in enumerate(blocks):
    if lang != "sh":
        continue
    expect = blocks[i + 1][1] if i + 1 < len(blocks) and blocks[i + 1][0] == "json" else None
    steps.append((body, expect))
if len(steps) < 5:
    sys.exit(f"only {len(steps)} shell blocks in {doc_path}")

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

def matches(want, got):
    if want == "*":
        return True
    if isinstance(want, dict):
        return isinstance(got, dict) and want.keys() == got.keys() and all(matches(want[k], got[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(want) == len(got) and all(matches(w, g) for w, g in zip(want, got))
    return want == got

def json_values(s):
    dec, out, at = json.JSONDecoder(), [], 0
    while True:
        while at < len(s) and s[at].isspace():
            at += 1
        if at == len(s):
            return out
        v, at = dec.raw_decode(s, at)
        out.append(v)

work = tempfile.mkdtemp(prefix="tandem-doc-")
outs = [os.path.join(work, f"out-{k}") for k in range(len(steps))]
script = ["set -euo pipefail"]
for k, (body, _) in enumerate(steps):
    script.append(f"{{\n{body}\n}} > {outs[k]}")
env = dict(os.environ)
env["PATH"] = os.path.dirname(tandem) + ":/usr/bin:/bin"  # Debian's python3 (python3-jwt), the tandem built here
env["PORT"] = str(free_port())
proc = subprocess.Popen(["bash", "-c", "\n".join(script)], cwd=work, env=env, start_new_session=True)
failed = []
try:
    rc = proc.wait(timeout=120)
    if rc != 0:
        failed.append(f"the shell blocks exited with {rc}")
    for k, (body, expect) in enumerate(steps):
        got = open(outs[k], encoding="utf-8").read() if os.path.exists(outs[k]) else None
        if got is None:
            failed.append(f"block {k + 1} did not run:\n{body}")
            continue
        if expect is None:
            continue
        want_values, got_values = json_values(expect), json_values(got) if got.strip() else []
        if len(want_values) != len(got_values) or not all(matches(w, g) for w, g in zip(want_values, got_values)):
            failed.append(f"block {k + 1}:\n{body}\nprinted:\n{got}\nthe document shows:\n{expect}")
        else:
            print(f"ok: block {k + 1} printed what the document shows")
finally:
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the server the examples started: it stops cleanly
        for _ in range(100):
            time.sleep(0.05)
            os.killpg(proc.pid, 0)
        os.killpg(proc.pid, signal.SIGKILL)
        failed.append("the server did not stop within 5 s of SIGTERM")
    except ProcessLookupError:
        pass
    shutil.rmtree(work, ignore_errors=True)
if failed:
    sys.exit("\n\n".join(failed))
print(f"all {len(steps)} shell blocks of {doc_path} ran; their output is what it shows")
