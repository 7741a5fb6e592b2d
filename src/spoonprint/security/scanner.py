"""Recognising scanner and attack traffic (pure).

What real clients of spoonprint send is small and known: a handful of paths and the methods GET,
POST, HEAD and OPTIONS. Anything matching the patterns that internet scanners try (admin pages,
``.env`` files, CGI, WordPress, phpMyAdmin, path traversal) or any other method is a strike.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

NORMAL_METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS"})
_PROBES = re.compile(
    r"""(
        ^/(admin|administrator|login|manager|console|phpmyadmin|pma|myadmin|wp-[^/]*|wordpress
           |cgi-bin|boaform|actuator|solr|jenkins|hudson|owa|ecp|autodiscover|remote|hnap1
           |vendor|telescope|server-status|debug|shell|cmd|setup\.cgi|\.git|\.svn|\.aws
           |\.ssh|config|xmlrpc\.php)(/|$|\.|\?)
        | /\.env | \.php($|\?) | \.asp(x)?($|\?) | \.jsp($|\?) | \.cgi($|\?)
        | /etc/passwd | /proc/self | win\.ini
    )""",
    re.IGNORECASE | re.VERBOSE,
)


def probe_reason(method: str, raw_path: str) -> str | None:
    """Why this request looks like an attack, or None."""
    if method.upper() not in NORMAL_METHODS:
        return f"unusual method {method[:16]}"
    path = unquote(unquote(raw_path))
    if ".." in path.split("?")[0] or "\\" in path or "\x00" in path:
        return "path traversal"
    if _PROBES.search(path):
        return "scanner path"
    return None
