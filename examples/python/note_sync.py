#!/usr/bin/env python3
"""A note kept on a Tandem server, from Python through libtandem's C API with ctypes (no build
step): adds a line, waits until the server holds it durably, optionally waits until another
writer's line shows up, and prints the note.

  note_sync.py URL LINE [--wait-for TEXT] [--lib PATH]

The library is found through --lib, $TANDEM_LIB, or the system's loader (libtandem.so.0)."""
import argparse, ctypes, os, sys, threading, time

p = argparse.ArgumentParser()
p.add_argument("url")
p.add_argument("line")
p.add_argument("--wait-for", default=None, help="wait until the note contains this text")
p.add_argument("--lib", default=os.environ.get("TANDEM_LIB", "libtandem.so.0"))
args = p.parse_args()

lib = ctypes.CDLL(args.lib)

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

changed = threading.Event()

def on_change(user, patches, count):  # runs on the library's I/O thread
    for i in range(count):
        ins = ctypes.string_at(patches[i].inserted, patches[i].inserted_len).decode() if patches[i].inserted_len else ""
        print(f"remote: at {patches[i].pos} removed {patches[i].deleted}, inserted {ins!r}", flush=True)
    changed.set()

def on_error(user, code, message):
    print(f"server error {code}: {message.decode()}", file=sys.stderr, flush=True)

# Keep the ctypes callback objects alive as long as the client.
callbacks = Callbacks(ON_CHANGE(on_change), ON_STATE(lambda u, s: None), ON_ERROR(on_error),
                      ON_PRESENCE(lambda *a: None), ON_LEAVE(lambda u, s: None))
options = Options(args.url.encode(), None, None, 0, 0)
err = ctypes.c_void_p()
client = lib.tandem_client_open(ctypes.byref(options), ctypes.byref(callbacks), None, ctypes.byref(err))
if not client:
    sys.exit(f"cannot open {args.url}: {lib.tandem_error_message(err).decode()}")

def text():
    n = ctypes.c_size_t()
    p = lib.tandem_client_text(client, ctypes.byref(n))
    s = ctypes.string_at(p, n.value).decode()
    lib.tandem_string_free(p)
    return s

try:
    lib.tandem_client_wait_synced(client, 10000)  # catch up, so that the line goes at the end
    line = (args.line + "\n").encode()
    if lib.tandem_client_insert(client, len(text()), line, len(line), ctypes.byref(err)) != 0:
        sys.exit(f"cannot add the line: {lib.tandem_error_message(err).decode()}")
    if not lib.tandem_client_wait_synced(client, 10000):
        sys.exit("the server did not acknowledge the line within 10 s")
    if args.wait_for:
        deadline = time.time() + 20
        while args.wait_for not in text():
            if time.time() > deadline:
                sys.exit(f"{args.wait_for!r} did not arrive within 20 s; the note is {text()!r}")
            changed.wait(0.1)
            changed.clear()
    print(f"stored as {lib.tandem_client_agent(client).decode()}\n---\n{text()}---", flush=True)
finally:
    lib.tandem_client_free(client)
