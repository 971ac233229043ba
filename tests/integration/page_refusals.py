#!/usr/bin/env python3
"""The page's login under attack (it_page_actions.c), without a browser: plain HTTP requests
to the page at URL (http://127.0.0.1:PORT/). Prints a line per check and exits 1 at the
first that fails.

  page_refusals.py verifier PASSWORD ITERATIONS   prints a SCRAM-SHA-256 verifier
  page_refusals.py URL ALICE BOB SLOW             runs the checks

SLOW is a role whose verifier names many iterations: libpq computes them before the server
says whether the password is right, and while it does /health still answers at once.
ALICE's and BOB's passwords are ROLE-secret.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

if sys.argv[1] == "verifier":
    pw, n = sys.argv[2].encode(), int(sys.argv[3])
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", pw, salt, n)
    client = hmac.new(salted, b"Client Key", "sha256").digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    b64 = lambda b: base64.b64encode(b).decode()
    print("SCRAM-SHA-256$%d:%s$%s:%s" % (n, b64(salt), b64(hashlib.sha256(client).digest()),
                                         b64(server)))
    sys.exit(0)

url, alice, bob, slow = sys.argv[1:5]
origin = url.rstrip("/")


def request(path, fields=None, headers=None):
    """(status, body as JSON or text, Set-Cookie) of a GET, or of a POST of FIELDS."""
    data = urllib.parse.urlencode(fields).encode() if fields is not None else None
    req = urllib.request.Request(url + path, data=data, headers=headers or {})
    try:
        r = urllib.request.urlopen(req, timeout=60)
        status, text, cookie = r.status, r.read().decode(), r.headers.get("Set-Cookie", "")
    except urllib.error.HTTPError as e:
        status, text, cookie = e.code, e.read().decode(), ""
    try:
        return status, json.loads(text), cookie
    except ValueError:
        return status, text, cookie


def check(ok, what, *said):
    print("ok  " if ok else "FAIL", what, *said, flush=True)
    if not ok:
        sys.exit(1)


def login(role, password, headers=None):
    return request("login", {"role": role, "password": password}, headers)


# a login whose password check takes long does not hold up the daemon
out = {}


def slow_login(key):
    t = time.monotonic()
    out[key] = login(slow, "not-its-password")[0], time.monotonic() - t


first = threading.Thread(target=slow_login, args=("first",))
first.start()
time.sleep(0.2)
worst = 0.0
while first.is_alive():
    t = time.monotonic()
    status = request("health")[0]
    worst = max(worst, time.monotonic() - t)
    check(status == 200, "GET /health while a slow login is checked:", status)
    time.sleep(0.1)
first.join()
check(out["first"][0] == 401, "the slow login is refused:", out["first"])
check(out["first"][1] > 0.5, "the slow login took its time (s):", out["first"][1])
check(worst < 0.5, "GET /health answered within 0.5 s meanwhile; the slowest (s):", worst)

# logins in flight are capped per address: a third at once is turned away
threads = [threading.Thread(target=slow_login, args=(i,)) for i in range(3)]
for t in threads:
    t.start()
    time.sleep(0.05)
for t in threads:
    t.join()
statuses = sorted(out[i][0] for i in range(3))
check(statuses == [401, 401, 429], "three slow logins at once from one address:", statuses)

# a POST from another site is refused, whatever it carries
for h in ({"Origin": "http://evil.example"}, {"Origin": "null"},
          {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"}):
    status, body, cookie = login(alice, alice + "-secret", h)
    check(status == 403 and not cookie, "POST /login with %s:" % h, status, body)
own = {"Origin": origin, "Sec-Fetch-Site": "same-origin"}
status, body, cookie = login(alice, alice + "-secret", own)
check(status == 200 and body["role"] == alice, "POST /login from the page's own origin:",
      status, body)
check("Max-Age" not in cookie, "the session cookie ends with the browser's session:", cookie)
sid = cookie.split(";")[0]
csrf = body["csrf"]
status, body, _ = request("jobs/nosuch/pause", {"csrf": csrf},
                          {"Cookie": sid, "Origin": "http://evil.example"})
check(status == 403 and "another site" in body["error"], "an action with a foreign Origin:",
      status, body)
status, body, _ = request("jobs/nosuch/pause", {"csrf": csrf}, dict(own, Cookie=sid))
check(status == 400 and "nosuch" in body["error"], "the same action from the page's origin:",
      status, body)

# the cookie is found by its exact name
value = sid.split("=", 1)[1]
status = request("session.json", headers={"Cookie": "a=pgcrond_session=" + value})[0]
check(status == 401, "a cookie whose value holds the name does not log in:", status)
status = request("session.json", headers={"Cookie": "a=1; pgcrond_session=" + value})[0]
check(status == 200, "the cookie among others:", status)

# a role has at most 4 sessions
for i in range(3):
    check(login(alice, alice + "-secret")[0] == 200, "another session of", alice)
status, body, _ = login(alice, alice + "-secret")
check(status == 429 and "this role" in body["error"], "a fifth session:", status, body)

# every login counts from its start: 10 tries a minute for an address and role
for i in range(10):
    check(login(bob, "wrong")[0] == 401, "a wrong password for", bob)
status, body, _ = login(bob, bob + "-secret")
check(status == 429, "the eleventh login of %s, even with its password:" % bob, status, body)
print("all checks passed")
