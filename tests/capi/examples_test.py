#!/usr/bin/python3
"""The C API's examples against a real `tandem serve` on loopback: the C example adds a line, then
two Python processes (examples/python/note_sync.py, ctypes, no build step) each add one and wait
for the other's; both end with the same note, which the server holds (read back through its
HTTP API).

usage: examples_test.py TANDEM_BIN LIBTANDEM NOTE_C_BIN NOTE_SYNC_PY [--no-python]"""
import json, os, shutil, signal, socket, subprocess, sys, tempfile, time, urllib.request

tandem, lib, note_c, note_py = sys.argv[1:5]
python = "--no-python" not in sys.argv[5:]

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

def wait_healthy(base):
    for _ in range(200):
        try:
            urllib.request.urlopen(base + "/healthz", timeout=1)
            return
        except OSError:
            time.sleep(0.05)

port = free_port()
data = tempfile.mkdtemp(prefix="tandem-capi-")
server = subprocess.Popen([tandem, "serve", "--port", str(port), "--data", data, "--quiet", "1"])
try:
    base = f"http://127.0.0.1:{port}"
    wait_healthy(base)
    url = f"ws://127.0.0.1:{port}/ws/shopping-list"
    c = subprocess.run([note_c, url, "milk from C"], capture_output=True, text=True, timeout=60)
    print(c.stdout, c.stderr)
    assert c.returncode == 0 and "stored as client-" in c.stdout and "milk from C\n" in c.stdout, "the C example"
    want = ["milk from C"]
    if python:
        env = dict(os.environ, TANDEM_LIB=lib)
        a = subprocess.Popen(["/usr/bin/python3", note_py, url, "eggs from Python A", "--wait-for", "tea from Python B"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        b = subprocess.Popen(["/usr/bin/python3", note_py, url, "tea from Python B", "--wait-for", "eggs from Python A"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        out_a, err_a = a.communicate(timeout=60)
        out_b, err_b = b.communicate(timeout=60)
        print(out_a, err_a, out_b, err_b)
        assert a.returncode == 0 and b.returncode == 0, "both Python processes"
        note_a = out_a.split("---\n")[1]
        note_b = out_b.split("---\n")[1]
        assert note_a == note_b, f"the two processes end with different notes: {note_a!r} / {note_b!r}"
        want += ["eggs from Python A", "tea from Python B"]
    # A line the server cannot take (nothing listens on port 9) is kept in the state file and sent
    # by the next run.
    state = os.path.join(data, "note.state")
    c = subprocess.run([note_c, "ws://127.0.0.1:9/ws/shopping-list", "bread while offline", state],
                       capture_output=True, text=True, timeout=60)
    print(c.stdout, c.stderr)
    assert c.returncode == 1 and f"the line is kept in {state}" in c.stdout, "the C example offline"
    c = subprocess.run([note_c, url, "butter", state], capture_output=True, text=True, timeout=60)
    print(c.stdout, c.stderr)
    assert c.returncode == 0 and "bread while offline\n" in c.stdout and "butter\n" in c.stdout, "the C example's next run"
    want += ["bread while offline", "butter"]
    if python:
        missing = subprocess.run(["/usr/bin/python3", note_py, url, "x", "--lib", "/nonexistent/libtandem.so.0"],
                                 capture_output=True, text=True, timeout=60)
        assert missing.returncode != 0 and "cannot load /nonexistent/libtandem.so.0" in missing.stderr \
            and "Traceback" not in missing.stderr, f"a missing library: {missing.stderr!r}"
    if python:
        # Rich text from Python: the first "butter" becomes bold on the server.
        bold = subprocess.run(["/usr/bin/python3", note_py, url, "jam", "--bold", "butter"], capture_output=True,
                              text=True, timeout=60, env=dict(os.environ, TANDEM_LIB=lib))
        print(bold.stdout, bold.stderr)
        assert bold.returncode == 0 and '"marks":{"bold":true}' in bold.stdout, "the Python example's --bold"
        doc = json.load(urllib.request.urlopen(base + "/api/docs/shopping-list", timeout=10))
        at = doc["text"].index("butter")
        assert doc["spans"] == [{"from": at, "to": at + 6, "marks": {"bold": True}}], f"the server's spans: {doc['spans']}"
        want.append("jam")
    stored = json.load(urllib.request.urlopen(base + "/api/docs/shopping-list", timeout=10))["text"]
    lines = stored.splitlines()
    assert sorted(lines) == sorted(want), f"the server holds {stored!r}"
    print(f"ok: the server holds {stored!r}")
    # A server that wants a token: the example says so at once instead of waiting out its timeout.
    port2 = free_port()
    secured = subprocess.Popen([tandem, "serve", "--port", str(port2), "--data", os.path.join(data, "secured"),
                                "--quiet", "--auth-secret", "s3cret"])
    try:
        wait_healthy(f"http://127.0.0.1:{port2}")
        t0 = time.time()
        c = subprocess.run([note_c, f"ws://127.0.0.1:{port2}/ws/shopping-list", "milk"], capture_output=True, text=True,
                           timeout=60)
        print(c.stdout, c.stderr)
        assert c.returncode == 1 and "the server refused this client (4401): a token is required" in c.stderr \
            and time.time() - t0 < 5, "the C example against a server that wants a token"
    finally:
        secured.send_signal(signal.SIGTERM)
        secured.wait(timeout=30)
finally:
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    shutil.rmtree(data, ignore_errors=True)
