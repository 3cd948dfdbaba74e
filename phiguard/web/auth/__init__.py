"""Who may use the console and API, and how they prove it.

Plain services without FastAPI, so the CLI (`phiguard users …`, `phiguard tokens …`) and the
web layer share them: :mod:`roles` (the permission table), :mod:`passwords` (argon2id and
the password policy), :mod:`totp` (one-time codes with replay protection), :mod:`users`,
:mod:`sessions`, :mod:`throttle`, :mod:`tokens`, :mod:`webauthn_keys`, :mod:`portal`.
"""
