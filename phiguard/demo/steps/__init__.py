"""One module per chapter of ``phiguard demo``; each defines ``run(story: Story) -> None``.

Chapters run in the order of ``CHAPTERS``; a chapter reads what earlier ones left in
``story.state`` (e.g. ``alert_id``, ``scan``, ``incident_id``).
"""

CHAPTERS = ("hospital", "audit", "access", "detection", "leaks", "incidents", "gateway", "console")
