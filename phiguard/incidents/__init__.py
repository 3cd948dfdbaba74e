"""Breach response: incidents, playbooks, ENISA risk, regulator clocks, reports, notices.

The services live in :mod:`.cases` (open, contain, timeline), :mod:`.playbook`,
:mod:`.risk`, :mod:`.clocks`, :mod:`.reports`, :mod:`.notify`, :mod:`.letters`,
:mod:`.verification` and :mod:`.transports`; the CLI (``phiguard incidents``, ``phiguard
notices``) and the web layer call them and nothing else.
"""
