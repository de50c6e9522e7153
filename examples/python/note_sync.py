#!/usr/bin/env python3
"""A note kept on a Tandem server, from Python through libtandem's C API with ctypes (no build
step): adds a line, waits until the server holds it durably, optionally waits until another
writer's line shows up, and prints the note.

  note_sync.py URL LINE [--wait-for TEXT] [--bold WORD] [--state FILE] [--lib PATH]

With --bold WORD it also makes the note's first WORD bold (rich text: every editor of the note
shows it, and the server's HTTP API lists it among the note's "spans").

With --state FILE the client goes on from that file and saves itself there at the end: a line the
server could not take yet (it was down) is kept and sent the next run. The library is found
through --lib, $TANDEM_LIB, or the system's loader (libtandem.so.0: after `cmake --install`, run
`ldconfig`, or set LD_LIBRARY_PATH to the install's lib folder)."""
import argparse, ctypes, os, sys, threading, time

p = argparse.ArgumentParser()
p.add_argument("url")
p.add_argument("line")
p.add_argument("--wait-for", default=None, help="wait until the note contains this text")
p.add_argument("--bold", default=None, help="make the first occurrence of this word bold")
p.add_argument("--state", default=None, help="keep the client (and what the server has not taken yet) in this file")
p.add_argument("--lib", default=os.environ.get("TANDEM_LIB", "libtandem.so.0"))
args = p.parse_args()

try:
    lib = ctypes.CDLL(args.lib)
except OSError as e:
    sys.exit(f"cannot load {args.lib} ({e}).\nBuild it (scripts/build.sh release: build/capi/libtandem.so.0) and pass "
             "--lib PATH or set TANDEM_LIB=PATH, or install it (cmake --install build) and run ldconfig, or set "
             "LD_LIBRARY_PATH to the folder that holds it.")
if not hasattr(lib, "tandem_client_restore"):
    sys.exit(f"{args.lib} is older than this example (it needs the C API version 2)")

class Patch(ctypes.Structure):
    _fields_ = [("pos", ctypes.c_uint32), ("deleted", ctypes.c_uint32), ("inserted", ctypes.c_void_p),
                ("inserted_len", ctypes.c_size_t), ("pos_utf16", ctypes.c_uint32), ("deleted_utf16", ctypes.c_uint32),
                ("inserted_utf16", ctypes.c_uint32)]

ON_CHANGE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(Patch), ctypes.c_size_t)
ON_STATE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int)
ON_ERROR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint16, ctypes.c_char_p)
ON_PRESENCE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_char_p, ctypes.c_char_p,
                               ctypes.c_int64, ctypes.c_int64)
ON_LEAVE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64)

class Callbacks(ctypes.Structure):
    _fields_ = [("on_change", ON_CHANGE), ("on_state", ON_STATE), ("on_error", ON_ERROR),
                ("on_presence", ON_PRESENCE), ("on_leave", ON_LEAVE)]

class Options(ctypes.Structure):
    _fields_ = [("url", ctypes.c_char_p), ("agent", ctypes.c_char_p), ("token", ctypes.c_char_p),
                ("min_backoff_ms", ctypes.c_uint32), ("max_backoff_ms", ctypes.c_uint32)]

lib.tandem_client_open.restype = ctypes.c_void_p
lib.tandem_client_open.argtypes = [ctypes.POINTER(Options), ctypes.POINTER(Callbacks), ctypes.c_void_p,
                                   ctypes.POINTER(ctypes.c_void_p)]
lib.tandem_client_free.argtypes = [ctypes.c_void_p]
lib.tandem_client_text.restype = ctypes.c_void_p  # freed with tandem_string_free
lib.tandem_client_text.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
lib.tandem_string_free.argtypes = [ctypes.c_void_p]
lib.tandem_client_insert.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_size_t,
                                     ctypes.POINTER(ctypes.c_void_p)]
lib.tandem_client_wait_synced.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
lib.tandem_client_agent.restype = ctypes.c_char_p
lib.tandem_client_agent.argtypes = [ctypes.c_void_p]
lib.tandem_error_message.restype = ctypes.c_char_p
lib.tandem_error_message.argtypes = [ctypes.c_void_p]
lib.tandem_error_free.argtypes = [ctypes.c_void_p]
lib.tandem_client_restore.restype = ctypes.c_void_p
lib.tandem_client_restore.argtypes = [ctypes.POINTER(Options), ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(Callbacks),
                                      ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
lib.tandem_client_save.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t),
                                   ctypes.POINTER(ctypes.c_void_p)]
lib.tandem_bytes_free.argtypes = [ctypes.c_void_p]
if args.bold and not hasattr(lib, "tandem_client_mark"):
    sys.exit(f"{args.lib} is older than --bold (it needs the C API version 3)")
if args.bold:
    lib.tandem_client_mark.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_char_p,
                                       ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.tandem_client_formats_json.restype = ctypes.c_void_p  # freed with tandem_string_free
    lib.tandem_client_formats_json.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)]
lib.tandem_client_refusal.restype = ctypes.c_void_p  # freed with tandem_string_free
lib.tandem_client_refusal.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint16)]

changed = threading.Event()
out_lock = threading.Lock()

def say(line):
    """One line to stdout, whole: callbacks print from the library's I/O thread too."""
    with out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

def on_change(user, patches, count):  # runs on the library's I/O thread
    for i in range(count):
        ins = ctypes.string_at(patches[i].inserted, patches[i].inserted_len).decode() if patches[i].inserted_len else ""
        say(f"remote: at {patches[i].pos} removed {patches[i].deleted}, inserted {ins!r}")
    changed.set()

def on_error(user, code, message):
    print(f"server error {code}: {message.decode()}", file=sys.stderr, flush=True)

# Keep the ctypes callback objects alive as long as the client.
callbacks = Callbacks(ON_CHANGE(on_change), ON_STATE(lambda u, s: None), ON_ERROR(on_error),
                      ON_PRESENCE(lambda *a: None), ON_LEAVE(lambda u, s: None))
options = Options(args.url.encode(), None, None, 0, 0)
err = ctypes.c_void_p()
saved = open(args.state, "rb").read() if args.state and os.path.exists(args.state) else None
if saved:
    client = lib.tandem_client_restore(ctypes.byref(options), saved, len(saved), ctypes.byref(callbacks), None,
                                       ctypes.byref(err))
else:
    client = lib.tandem_client_open(ctypes.byref(options), ctypes.byref(callbacks), None, ctypes.byref(err))
if not client:
    sys.exit(f"cannot open {args.url}: {lib.tandem_error_message(err).decode()}")

def refusal():
    """Why the server refused this client for good, or None."""
    code = ctypes.c_uint16()
    p = lib.tandem_client_refusal(client, ctypes.byref(code))
    if not p:
        return None
    why = ctypes.string_at(p).decode()
    lib.tandem_string_free(p)
    return f"{why} (error {code.value})"

def save():
    if not args.state:
        return False
    out, n = ctypes.c_void_p(), ctypes.c_size_t()
    if lib.tandem_client_save(client, ctypes.byref(out), ctypes.byref(n), ctypes.byref(err)) != 0:
        print(f"cannot save the client: {lib.tandem_error_message(err).decode()}", file=sys.stderr)
        return False
    with open(args.state, "wb") as f:
        f.write(ctypes.string_at(out, n.value))
    lib.tandem_bytes_free(out)
    return True

def text():
    n = ctypes.c_size_t()
    p = lib.tandem_client_text(client, ctypes.byref(n))
    s = ctypes.string_at(p, n.value).decode()
    lib.tandem_string_free(p)
    return s

try:
    if not lib.tandem_client_wait_synced(client, 10000) and refusal():  # catch up, so that the line goes at the end
        sys.exit(f"the server refused this client: {refusal()}")
    line = (args.line + "\n").encode()
    if lib.tandem_client_insert(client, len(text()), line, len(line), ctypes.byref(err)) != 0:  # len(): code points
        sys.exit(f"cannot add the line: {lib.tandem_error_message(err).decode()}")
    synced = lib.tandem_client_wait_synced(client, 10000)
    kept = save()
    if not synced:
        if refusal():
            sys.exit(f"the server refused this client: {refusal()}")
        sys.exit("the server did not acknowledge the line within 10 s; " +
                 (f"it is kept in {args.state} and sent when you run this again with --state {args.state}" if kept
                  else "it is lost with this process (give --state FILE to keep it)"))
    if args.bold:
        at = text().find(args.bold)  # Python indexes strings by code point, as the C API counts
        if at < 0:
            sys.exit(f"{args.bold!r} is not in the note")
        if lib.tandem_client_mark(client, at, len(args.bold), b"bold", b"true", ctypes.byref(err)) != 0:
            sys.exit(f"cannot make {args.bold!r} bold: {lib.tandem_error_message(err).decode()}")
        if not lib.tandem_client_wait_synced(client, 10000):
            sys.exit(f"the server did not acknowledge the bold {args.bold!r} within 10 s")
        p = lib.tandem_client_formats_json(client, None)
        say(f"formats: {ctypes.string_at(p).decode()}")
        lib.tandem_string_free(p)
    if args.wait_for:
        deadline = time.time() + 20
        while args.wait_for not in text():
            if time.time() > deadline:
                sys.exit(f"{args.wait_for!r} did not arrive within 20 s; the note is {text()!r}")
            changed.wait(0.1)
            changed.clear()
    say(f"stored as {lib.tandem_client_agent(client).decode()}\n---\n{text()}---")
finally:
    lib.tandem_client_free(client)
