"""Breach response: incidents, playbooks, ENISA risk, regulator clocks, reports, notices.

Services: :mod:`.cases` (open, attach, view, assess, notes, close), :mod:`.containment`,
:mod:`.playbook`, :mod:`.risk`, :mod:`.clocks`, :mod:`.reports` (+ :mod:`.pdf`),
:mod:`.notify` and :mod:`.delivery` (campaigns, dispatch, fallback, receipts),
:mod:`.letters`, :mod:`.verification`, :mod:`.enquiries`, :mod:`.transports`; the
sources an incident opens from are read by :mod:`.sources`, the words of a notice live in
:mod:`.wording` and ``templates/``. The CLI (``phiguard incidents``, ``phiguard notices``)
and the web layer call these and nothing else; docs/dev/incidents.md explains the design.
"""
