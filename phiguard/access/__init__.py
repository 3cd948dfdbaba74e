"""Contractor access governance: vendors, contracts, assessments, training, time-limited
grants with approvals, break-glass, access reviews, the vendor kill switch, and the policy
decision point (Cedar policies, evaluated in-process)."""
