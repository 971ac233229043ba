#!/usr/bin/env python3
"""POST /login to the page at URL as ROLE with PASSWORD (it_page_actions.c), over HTTPS
without checking the certificate (a test's self-signed one, reached by an address it does
not name). Prints the status and body, the Set-Cookie header, and with a session the status
of GET /session.json with that cookie, a line each.

  page_login.py URL ROLE PASSWORD
"""
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request

url, role, password = sys.argv[1:4]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
body = urllib.parse.urlencode({"role": role, "password": password}).encode()
try:
    r = urllib.request.urlopen(url + "login", data=body, context=ctx, timeout=10)
    status, text, cookie = r.status, r.read().decode(), r.headers.get("Set-Cookie", "")
except urllib.error.HTTPError as e:
    status, text, cookie = e.code, e.read().decode(), ""
print(status, text)
print("Set-Cookie:", cookie)
if cookie:
    req = urllib.request.Request(url + "session.json",
                                 headers={"Cookie": cookie.split(";")[0]})
    r = urllib.request.urlopen(req, context=ctx, timeout=10)
    print("session.json:", r.status, r.read().decode())
